"""Fault rows of the replicated mode (HARBOR_HA_MODE=replicated) on the registry stack: each node
runs its own Harbor-like stack of real programs on a local data dir, the two replicate every
push to each other (the lab's core with skopeo, the endpoint and event-based policy made by
``harbor-ha replication setup``), harbor-ha moves the VIP and starts the catch-up run when a
peer's Harbor comes back.  Through the VIP (and, under a partition, at each node's own address)
skopeo pushes fresh images all along; every push acknowledged must end up on BOTH nodes (each
asked at its own address), and never two MASTERs where the mode promises one.

Its own lab (module-scoped: /var/tmp/hhfltr, netns prefix hhfltr, 10.96.0.0/24)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lab
from lab import LabState
from lab.pair_images import (
    Pusher,
    Pushes,
    executions,
    restart_harbor,
    stop_harbor,
    traffic_to,
    wait_replicated,
)
from lab.replicated import wait_serving
from tests.e2e import helpers
from tests.e2e.conftest import vip_client
from tests.e2e.test_replicated import MasterWatch, flap_core, master_overlaps
from tests.faults.conftest import LOGS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

LABDIR = Path("/var/tmp/hhfltr")
PREFIX = "hhfltr"
SUBNET = "10.96.0.0/24"
WITHIN_S = 180.0
"""Bound on every acknowledged push reaching both nodes after the fault ended."""


@pytest.fixture(scope="module")
def pair(request: pytest.FixtureRequest) -> Iterator[LabState]:
    """The replicated pair on the registry stack, replication set up; node logs kept under
    /var/tmp/hhflt-logs/ if a test of the module failed."""
    if os.geteuid() != 0:
        pytest.skip("the fault suite needs root (netns, dockerd)")
    failed_before = request.session.testsfailed
    st = lab.up(
        LABDIR, prefix=PREFIX, subnet=SUBNET, stack="registry", mode="replicated",
        say=lambda m: print(m, flush=True),
    )  # fmt: skip
    try:
        yield st
    finally:
        if request.session.testsfailed > failed_before:
            dest = LOGS / f"test_replicated_registry-{time.strftime('%Y%m%dT%H%M%S')}"
            lab.collect_logs(st, dest)
            print(f"replicated rows: node logs kept in {dest}", flush=True)
        lab.down(LABDIR, say=lambda m: print(m, flush=True))


@pytest.fixture(scope="module")
def pushes() -> Pushes:
    """The module's acknowledged pushes: ONE tag numbering for all its rows.  A tag pushed
    again with other content in a later row could be reverted by a catch-up run of the node
    that still has the old one (both nodes start one after a partition; override is on):
    each row checks its own pushes, and a tag is pushed once."""
    return Pushes()


def good(st: LabState) -> tuple[str, str]:
    """Heal, clear every switch, both Harbors serving, then the good state: one MASTER with
    the VIP, the other a clean BACKUP; (master, backup)."""
    lab.heal(st)
    for name in st.nodes:
        lab.set_unhealthy(st, name, "core", False)
    wait_serving(st, say=lambda line: None)
    with vip_client(st) as client:
        return helpers.wait_good(st, client, within_s=180)


def when() -> str:
    """The row's date and the machine's load (docs' figures say both)."""
    return f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}"


def one_master(st: LabState, within_s: float = 120) -> str:
    def probe() -> tuple[str | None, str]:
        masters, holders = lab.masters(st), lab.vip_holders(st)
        ok = len(masters) == 1 and holders == masters
        return (masters[0] if ok else None), f"MASTER {masters}, VIP on {holders}"

    return helpers.wait_for("one MASTER holding the VIP", probe, within_s, every_s=0.5)


def test_peer_down_during_pushes_loses_no_acknowledged_push(
    pair: LabState, pushes: Pushes, record: Any, tmp_path: Path
) -> None:
    """Pushes through the VIP every 0.3 s while the standby's whole Harbor is stopped for
    ~20 s (its event pushes fail: Failed, not retried by Harbor) and started again: the
    master's harbor-ha sees the peer back and starts one manual run; then every acknowledged
    push is on both nodes."""
    m, b = good(pair)
    t0, failed0 = time.time(), pushes.failed
    with Pusher(pushes, traffic_to(pair, "vip", tmp_path), "vip"):
        time.sleep(3)
        t_stop = time.time()
        stop_harbor(pair.nodes[b])
        time.sleep(20)
        t_back = time.time()
        restart_harbor(pair.nodes[b])
        wait_serving(pair, say=lambda line: None)
        time.sleep(3)
    during = pushes.since(t_stop)
    took, missing = wait_replicated(pair, (mine := pushes.since(t0)), tmp_path, WITHIN_S)
    manual = [e for e in executions(pair, m) if e["trigger"] == "manual"]
    failed = [e for e in executions(pair, m) if e["status"] == "Failed"]
    lost = sum(len(v) for v in missing.values())
    record(
        injected=f"standby {b}'s Harbor stopped ~{t_back - t_stop:.0f} s during pushes "
        "through the VIP (replicated pair, registry stack)",
        expected="every acknowledged push on both nodes after the standby's return (the "
        "master's catch-up run)",
        observed=f"{len(mine)} pushes acknowledged ({len(during)} after the stop), "
        f"{pushes.failed - failed0} failed; missing per node after replication {missing}; "
        f"{len(failed)} event runs Failed on {m}, {len(manual)} manual run(s) "
        f"{[e['status'] for e in manual]}",
        figures=f"all on both nodes {took} s after the last push; run {time.time() - t0:.0f} s "
        f"({when()})",
    )
    assert lost == 0, f"acknowledged pushes missing: {missing}"
    assert manual, f"no manual run on {m} after {b}'s return"


def test_health_flap_on_the_master_during_pushes(
    pair: LabState, pushes: Pushes, record: Any, tmp_path: Path
) -> None:
    """Pushes through the VIP while the master's core flaps unhealthy 3 s / healthy 3 s four
    times (the VIP moves, both Harbors keep running and replicating): never two MASTERs (both
    /status sampled, both logs replayed), and every acknowledged push on both nodes."""
    m, b = good(pair)
    t0, failed0 = time.time(), pushes.failed
    with MasterWatch(pair) as watch, Pusher(pushes, traffic_to(pair, "vip", tmp_path), "vip"):
        flap_core(pair, m)
        final = one_master(pair)
    overlaps = master_overlaps(pair, t0, {m: "MASTER", b: "BACKUP"})
    took, missing = wait_replicated(pair, (mine := pushes.since(t0)), tmp_path, WITHIN_S)
    lost = sum(len(v) for v in missing.values())
    where = sorted({w for n, (_, _, w) in pushes.acked.items() if n in mine})
    record(
        injected=f"master {m}'s core unhealthy 3 s / healthy 3 s x4 during pushes through "
        "the VIP (replicated pair, registry stack)",
        expected="never two MASTERs; every acknowledged push on both nodes",
        observed=f"{watch.samples} samples, {len(watch.doubles)} with both MASTER; both MASTER "
        f"per the logs: {overlaps or 'never'}; {final} MASTER at the end; "
        f"{len(mine)} pushes acknowledged ({where}), {pushes.failed - failed0} failed; "
        f"missing per node {missing}",
        figures=f"all on both nodes {took} s after the last push ({when()})",
    )
    assert watch.doubles == [] and overlaps == [], f"two MASTERs: {watch.doubles} {overlaps}"
    assert lost == 0, f"acknowledged pushes missing: {missing}"


@pytest.mark.full
def test_partition_during_pushes_each_sides_pushes_reach_both(
    pair: LabState, pushes: Pushes, record: Any, tmp_path: Path
) -> None:
    """Pushes through the VIP and at each node's own address while the two nodes are cut from
    each other for ~20 s (both may accept pushes; each side's event pushes to the other
    fail); after the heal: one MASTER, and each side's acknowledged pushes on both nodes
    (each harbor-ha sees its peer back and starts a manual run)."""
    m, b = good(pair)
    t0, failed0 = time.time(), pushes.failed
    clients = {w: traffic_to(pair, w, tmp_path) for w in ("vip", m, b)}
    pushers = [Pusher(pushes, t, w, every_s=0.5) for w, t in clients.items()]
    for p in pushers:
        p.__enter__()
    try:
        time.sleep(3)
        t_cut = time.time()
        lab.partition(pair)
        time.sleep(20)
        t_heal = time.time()
        lab.heal(pair)
        time.sleep(3)
    finally:
        lab.heal(pair)
        for p in pushers:
            p.stop()
    final = one_master(pair)
    cut = {w: len(pushes.since(t_cut, w)) for w in clients}
    took, missing = wait_replicated(pair, (mine := pushes.since(t0)), tmp_path, WITHIN_S)
    manual = {n: [e["status"] for e in executions(pair, n) if e["trigger"] == "manual"]
              for n in pair.nodes}  # fmt: skip
    lost = sum(len(v) for v in missing.values())
    record(
        injected=f"partition between the nodes ~{t_heal - t_cut:.0f} s during pushes through "
        "the VIP and at each node's address (replicated pair, registry stack)",
        expected="one MASTER after the heal; each side's acknowledged pushes on both nodes",
        observed=f"{final} MASTER after the heal; pushes acknowledged since the cut by target "
        f"{cut}, {pushes.failed - failed0} failed, {len(mine)} acknowledged in all; manual "
        f"runs {manual}; missing per node {missing}",
        figures=f"all on both nodes {took} s after the last push ({when()})",
    )
    assert lost == 0, f"acknowledged pushes missing: {missing}"
