"""The data row on the registry stack (lab/registry_stack: the real distribution registry,
PostgreSQL 15, redis, nginx TLS): 20+ failovers of mixed kinds while, through the VIP, skopeo
pushes fresh images and pulls one, and a writer commits numbered rows to PostgreSQL.  Every
push the registry acknowledged must pull back with its digest and every committed row must be
there at the end.  Its own lab (module-scoped), tuned as the fault lab."""

from __future__ import annotations

import functools
import os
import random
import secrets
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lab
from lab import LabState
from lab.traffic import Load, Traffic, pg_recovery
from tests.faults import faultlab as fl
from tests.faults.conftest import LOGS, settle, tune_lab
from tests.faults.test_data import KINDS, failover, peer_took_over

pytestmark = [pytest.mark.e2e, pytest.mark.full, pytest.mark.timeout(4800)]

FAILOVERS = 20
WINDOW_S = 10.0
"""Pushes acknowledged from WINDOW_S before a fault until the lab converged are pulled back in
full at the end (the others by manifest)."""


@pytest.fixture(scope="module")
def registry_lab(request: pytest.FixtureRequest) -> Iterator[LabState]:
    """A two-node lab with the registry stack: /var/tmp/hhflr-XXXX, netns prefix hrXXXX; the
    nodes' logs kept under /var/tmp/hhflt-logs/ if a test of the module failed."""
    if os.geteuid() != 0:
        pytest.skip("the fault suite needs root (netns, loop devices, dockerd)")
    tag = secrets.token_hex(2)
    labdir = Path(f"/var/tmp/hhflr-{tag}")
    failed_before = request.session.testsfailed
    st = lab.up(labdir, prefix=f"hr{tag}", stack="registry", say=lambda m: print(m, flush=True))
    try:
        tune_lab(st)
        yield st
    finally:
        if request.session.testsfailed > failed_before:
            dest = LOGS / f"test_data_registry-{time.strftime('%Y%m%dT%H%M%S')}"
            lab.collect_logs(st, dest)
            print(f"registry data row: node logs kept in {dest}", flush=True)
        fl.reap_writers()
        lab.down(labdir, say=lambda m: print(m, flush=True))


def test_registry_traffic_loses_nothing_across_failovers(
    registry_lab: LabState, record: Any
) -> None:
    """20 failovers of mixed kinds under pushes, pulls and row commits through the VIP: no
    acknowledged push and no committed row is lost; pulls work again after every failover."""
    st = registry_lab
    settle(st)
    first = next(iter(st.nodes.values()))
    load = Load(Traffic(st.client_netns, st.vip_address, first.ca_dir,
                        Path(st.labdir) / "traffic"), every_s=0.3)  # fmt: skip
    rng = random.Random(20261201)
    kinds_done: list[str] = []
    windows: list[tuple[float, float]] = []
    first_pulls: list[float | None] = []
    failed_pulls: list[int] = []
    pg_ready: list[float] = []
    recoveries = 0
    times: list[float] = []
    load.start()
    print(f"[registry data] the writer reached PostgreSQL through the VIP after "
          f"{load.db_wait_s} s of retries")  # fmt: skip
    try:
        for i in range(FAILOVERS):
            master = fl.serving(st)
            kind = KINDS[i % len(KINDS)] if i < len(KINDS) else rng.choice(KINDS)
            kinds_done.append(kind)
            time.sleep(1.0)
            t0, m0 = time.time(), time.monotonic()
            failover(st, kind, master)
            if kind == "harbor-unhealthy":
                fl.poll(functools.partial(peer_took_over, st, master), 120, "peer took over",
                        every_s=0.5)  # fmt: skip
                lab.set_unhealthy(st, master, "core", False)
            fl.ensure_services(st)
            fl.release_stuck_writers()
            fl.wait_converged(st, 180)
            times.append(time.monotonic() - m0)
            taker = fl.serving(st)
            converged = time.time()
            fl.poll(functools.partial(load.pulled_since, converged), 60,
                    "a pull begun after the lab converged")  # fmt: skip
            first_s, failed = load.first_pull(t0)
            first_pulls.append(first_s)
            failed_pulls.append(failed)
            windows.append((t0 - WINDOW_S, time.time()))
            pg = pg_recovery(st.nodes[taker].docker_host)
            if pg.get("start_to_ready_s") is not None and taker != master:
                pg_ready.append(float(pg["start_to_ready_s"]))
                recoveries += bool(pg.get("recovery"))
            print(f"[registry data] {i + 1}/{FAILOVERS} {kind} {master}->{taker}: first pull "
                  f"{first_s} s, {failed} failed; PostgreSQL {pg}")  # fmt: skip
        time.sleep(2.0)
    finally:
        load.stop()
    missing_pushes = load.missing_pushes(windows)
    missing_rows = load.missing_rows()
    pulls = [x for x in first_pulls if x is not None]
    pushes, rows = load.pushes, load.writes
    record(
        injected=f"{FAILOVERS} failovers on the registry stack under pushes, pulls and row "
        "commits through the VIP: " + ", ".join(f"{k} x{kinds_done.count(k)}" for k in KINDS),
        runs=FAILOVERS,
        expected="no acknowledged push (skopeo exit 0) and no committed row (psql exit 0) lost; "
        "pulls succeed again after every failover",
        observed=f"pushes {len(pushes.acked)}/{len(pushes.attempts)} acknowledged, "
        f"{len(missing_pushes)} lost; rows {len(rows.acked)}/{len(rows.attempts)} committed, "
        f"{len(missing_rows)} lost; a pull succeeded after {len(pulls)}/{FAILOVERS} failovers",
        figures=f"fault -> first good pull: median {statistics.median(pulls):.1f} s, max "
        f"{max(pulls):.1f} s; pulls failed per failover: median "
        f"{statistics.median(failed_pulls):.0f}, max {max(failed_pulls)}; PostgreSQL start -> "
        f"ready on the taker: median {statistics.median(pg_ready or [0]):.2f} s "
        f"({recoveries} crash recoveries); failover -> converged: median "
        f"{statistics.median(times):.1f} s, max {max(times):.1f} s",
    )
    assert missing_pushes == [], missing_pushes[:10]
    assert missing_rows == [], missing_rows[:10]
    assert len(pulls) == FAILOVERS
