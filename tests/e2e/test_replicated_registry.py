"""End-to-end, the replicated pair on the registry stack: each node runs its own Harbor-like
stack of real programs on its local data dir (distribution, PostgreSQL, nginx TLS, the lab's
core), ``harbor-ha replication setup`` (the real CLI) made on each an endpoint at the peer's
own address and an event-based policy, and each core replicates every push to the peer with
skopeo (lab/registry_stack/replicator.py).  The client pushes through the VIP with skopeo and
reads each node at its own address.

What is pinned: a push through the VIP is pulled from the OTHER node's own address; after the
master's node goes down (keepalived + harbor-ha kill -9, its Harbor stopped) the VIP moves,
pushes land on the new master, and once the old node is back the pushes it missed reach it
by harbor-ha's recovery (a manual execution on the new master's Harbor: Harbor does not retry
the event pushes that failed meanwhile); no acknowledged push is missing on either node.  Two
outages: one long enough for the new master's watch to count the old node down (2 failed
looks: the peer's return owes the run), one shorter (the old node back at once: the failed
event-based executions owe the run; recovery.py).

Its own lab (module-scoped: /var/tmp/hhe2q, netns prefix hhe2q, 10.97.0.0/24), run before the
session's lab (conftest FIRST_MODULES).  Figures are printed, never asserted; deadlines only
bound a hang.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab as labmod
from lab import timeline
from lab.client import Client
from lab.pair_images import (
    Pushes,
    executions,
    restart_harbor,
    stop_harbor,
    traffic_to,
    wait_replicated,
)
from lab.replicated import wait_serving
from tests.e2e import helpers
from tests.e2e.conftest import Lab, bring_up, vip_client

pytestmark = pytest.mark.e2e

LABDIR = Path("/var/tmp/hhe2q")
PREFIX = "hhe2q"
SUBNET = "10.97.0.0/24"
REPLICATED_WITHIN_S = 120.0
"""Bound on a push reaching the other node (event-based: seconds; the catch-up: the watch's
2 s looks, the peer seen down then back, then the manual run)."""


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[labmod.LabState]:
    """The replicated pair on the registry stack, replication set up (see conftest.bring_up)."""
    with bring_up(request, LABDIR, PREFIX, "registry", subnet=SUBNET, mode="replicated") as st:
        yield st


@pytest.fixture(scope="module")
def client(lab: labmod.LabState) -> Iterator[Client]:
    """Harbor's health through the VIP (what the good-state restore waits for)."""
    with vip_client(lab) as c:
        yield c


@pytest.fixture(scope="module")
def pushes() -> Pushes:
    """Every push acknowledged in this module (one tag numbering)."""
    return Pushes()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


def test_a_push_through_the_vip_is_pulled_from_the_other_node(
    good_lab: Lab, pushes: Pushes, work: Path
) -> None:
    """An image pushed through the VIP (to the master's Harbor) pulls back, blobs and all,
    with its digest from the OTHER node's own address once replicated, and the master's core
    recorded that push's execution as event-based and Succeed."""
    lab, m, b = good_lab.st, good_lab.master, good_lab.backup
    n = pushes.push(traffic_to(lab, "vip", work), "vip")
    assert n is not None, "push through the VIP failed on a healthy pair"
    took, missing = wait_replicated(lab, pushes.digests(), work, REPLICATED_WITHIN_S)
    helpers.figure(f"replicated registry: push {n} through the VIP on {b} after {took} s")
    assert missing == {m: [], b: []}, f"not replicated: {missing}"
    assert traffic_to(lab, b, work).pull(n) == pushes.digests()[n]
    runs = executions(lab, m)
    assert any(e["trigger"] == "event_based" and e["status"] == "Succeed" for e in runs), runs


@pytest.mark.parametrize("outage", ["counted", "short"])
def test_master_down_pushes_land_on_the_peer_and_reach_the_old_node_when_back(
    good_lab: Lab, pushes: Pushes, work: Path, outage: str
) -> None:
    """The master's node goes down (keepalived and harbor-ha kill -9, then its whole Harbor
    stopped): the VIP moves to the peer, a push through the VIP is acknowledged there (its
    event push to the down node fails: Failed, not retried); the old node comes back (Harbor
    started, harbor-ha and keepalived restarted): the new master's harbor-ha sees the peer
    back (``counted``: after its watch counted it down) or sees the failed event pushes
    (``short``: back before that) and starts one manual execution (trigger "manual" in its
    Harbor's API), which brings the missed pushes to the old node.  Then every acknowledged
    push is on BOTH nodes."""
    lab, m, b = good_lab.st, good_lab.master, good_lab.backup
    vip = traffic_to(lab, "vip", work)
    before = pushes.push(vip, "vip")
    assert before is not None
    runs_before = {e["id"] for e in executions(lab, b) if e["trigger"] == "manual"}
    t0 = time.time()
    labmod.kill_services(lab, m)
    stop_harbor(lab.nodes[m])

    def vip_on_peer() -> tuple[float | None, str]:
        holders = labmod.vip_holders(lab)
        # b in them: keepalived killed -9 on m leaves its VIP there (nothing answers on it)
        return (time.time() if b in holders else None), f"VIP on {holders}"

    at = helpers.wait_for(f"the VIP on {b}", vip_on_peer, 60, every_s=0.05)
    helpers.figure(f"replicated registry: VIP on {b} {at - t0:.2f} s after the kill of {m}")
    helpers.wait_master(lab, b)
    t_down = time.time()
    missed = [pushes.push(vip, "vip") for _ in range(3)]
    assert all(n is not None for n in missed), f"pushes to the new master {b} failed: {missed}"
    failed = [e for e in executions(lab, b) if e["status"] == "Failed"]
    helpers.figure(
        f"replicated registry: {len(missed)} pushes acknowledged by {b} while {m} is down; "
        f"{len(failed)} Failed executions on {b} (event pushes to the down peer)"
    )

    if outage == "counted":  # the old node stays down until the new master counted it down

        def peer_down() -> tuple[float | None, str]:
            seen = [at for at, rec in timeline.records(lab.nodes[b].log, since=t0)
                    if rec.get("msg") == "replication_peer_down"]  # fmt: skip
            return (seen[0] if seen else None), f"no replication_peer_down in {b}'s log"

        down_at = helpers.wait_for(f"{b} counting {m} down", peer_down, 60, every_s=0.5)
        helpers.figure(f"replicated registry: {b}'s watch counted {m} down "
                       f"{down_at - t0:.1f} s after the kill")  # fmt: skip
    t_back = time.time()
    restart_harbor(lab.nodes[m])
    wait_serving(lab, say=lambda line: None)
    labmod.start_services(lab, m)
    want = pushes.since(t_down)
    _, missing = wait_replicated(lab, want, work, REPLICATED_WITHIN_S)
    t_done = time.time()
    manual = [e for e in executions(lab, b)
              if e["trigger"] == "manual" and e["id"] not in runs_before]  # fmt: skip
    helpers.figure(
        f"replicated registry ({outage} outage): {m}'s Harbor started again "
        f"{t_back - t0:.1f} s after the kill; "
        f"the {len(want)} pushes it missed seen on it {t_done - t_back:.1f} s after that "
        f"(Harbor serving, harbor-ha restarted, the catch-up run); manual executions on {b}: "
        f"{[(e['status'], e['total'], e['failed']) for e in manual]}"
    )
    assert missing == {m: [], b: []}, f"missed pushes not replicated back: {missing}"
    assert manual and manual[0]["status"] == "Succeed", f"no manual run on {b}: {manual}"
    helpers.wait_good(lab, good_lab.client, within_s=180)
    took_all, all_missing = wait_replicated(lab, pushes.digests(), work, REPLICATED_WITHIN_S)
    helpers.figure(
        f"replicated registry: {len(pushes.acked)} acknowledged pushes, missing per node "
        f"{all_missing} ({took_all} s)"
    )
    assert all_missing == {m: [], b: []}
