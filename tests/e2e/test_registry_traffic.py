"""Real registry traffic through the failover, on the registry stack (lab/registry_stack: the
real distribution registry, PostgreSQL 15, redis, nginx TLS): while skopeo pushes fresh images
and pulls one image through the VIP and a writer commits numbered rows to PostgreSQL through
the VIP, the master crashes, is switched over, or turns unhealthy.  After each: every push the
registry acknowledged pulls back with its digest, every committed row is there, the client
pulled again from the taker, and traffic was acknowledged on the taker.  The figures (first
good pull after the failover's outage, pulls failed, PostgreSQL's start on the taker) are
printed.

This module brings up its own lab (module-scoped ``lab`` and ``client``; the conftest runs it
before the busybox-shape modules, so the two labs are never up together)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import lab as labmod
from lab.client import Client
from lab.traffic import Load, Traffic, pg_recovery
from tests.e2e import helpers
from tests.e2e.conftest import Lab, bring_up, vip_client

LABDIR = Path("/var/tmp/hhe2r")
PREFIX = "hhe2r"
WARMUP_S = 2.0
"""Traffic on the master before the fault."""
AFTER_S = 3.0
"""Traffic on the taker after it became MASTER (what it acknowledges must stay too)."""

TAKER_WITHIN_S = 30.0
"""At most this long more for the taker's first acknowledged push and row (see AFTER_S)."""

NUMBERS = [1]
"""The next push tag / row number: unique over the module (one registry, one table)."""


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[labmod.LabState]:
    """The two-node lab with the registry stack (see conftest.bring_up)."""
    with bring_up(request, LABDIR, PREFIX, stack="registry") as st:
        yield st


@pytest.fixture(scope="module")
def client(lab: labmod.LabState) -> Iterator[Client]:
    """Harbor's health through the VIP (what the good-state restore waits for)."""
    with vip_client(lab) as c:
        yield c


def acked_after(acked: dict[int, tuple[float, str]], t: float) -> list[int]:
    """The numbers acknowledged after ``t`` (time.time())."""
    return [n for n, (at, _) in list(acked.items()) if at > t]


def through_failover(good_lab: Lab, kind: str, fault: Callable[[], None]) -> dict[str, Any]:
    """Run the load, apply ``fault`` on the master, wait until the backup serves as MASTER, keep
    the load on it for AFTER_S, then count what the client lost."""
    st, client, m, b = good_lab.st, good_lab.client, good_lab.master, good_lab.backup
    traffic = Traffic(st.client_netns, st.vip_address, st.nodes[m].ca_dir,
                      Path(st.labdir) / "traffic")  # fmt: skip
    load = Load(traffic, first=NUMBERS[0])
    load.start()
    try:
        time.sleep(WARMUP_S)
        t0 = time.time()
        fault()
        helpers.wait_served_by(client, t0, b)
        helpers.wait_master(st, b)
        t_master = time.time()
        time.sleep(AFTER_S)
        # A push or pull begun during the outage may hang until skopeo's timeout: wait (bounded)
        # until the taker acknowledged a push and a row, and a pull begun after it became
        # MASTER succeeded (a success on the old master after the fault, followed by a pull
        # that hangs through the outage, is not the outage's end).
        deadline = time.time() + TAKER_WITHIN_S
        while time.time() < deadline and not (
            acked_after(load.pushes.acked, t_master)
            and acked_after(load.writes.acked, t_master)
            and load.pulled_since(t_master)
        ):
            time.sleep(0.5)
    finally:
        load.stop()
        NUMBERS[0] = load.next_number
    missing_pushes = load.missing_pushes(window=(t0 - 10, time.time()))
    missing_rows = load.missing_rows()
    report = load.report(t0, missing_pushes, missing_rows)
    report["pg"] = pg_recovery(st.nodes[b].docker_host)
    helpers.figure(
        f"{kind} (registry stack): first pull {report['first_pull_s']} s after the fault, "
        f"{report['pulls_failed']} pulls failed; pushes acked {report['pushes_acked']} "
        f"(missing {report['pushes_missing']}), rows committed {report['rows_committed']} "
        f"(missing {report['rows_missing']}); PostgreSQL on {b}: {report['pg']}"
    )
    assert missing_pushes == [], f"acknowledged pushes missing after the {kind}: {missing_pushes}"
    assert missing_rows == [], f"committed rows missing after the {kind}: {missing_rows}"
    assert report["first_pull_s"] is not None, "no successful pull after the fault"
    taker_pushes = acked_after(load.pushes.acked, t_master)
    taker_rows = acked_after(load.writes.acked, t_master)
    assert taker_pushes and taker_rows, "the taker acknowledged no push or no row"
    return report


def test_crash_loses_no_acknowledged_push_or_row(good_lab: Lab) -> None:
    """kill -9 of the master's harbor-ha and keepalived (Harbor keeps running there, fenced):
    no acknowledged push and no committed row is lost; PostgreSQL on the taker ran crash
    recovery (its data was never shut down cleanly)."""
    st, m = good_lab.st, good_lab.master
    report = through_failover(good_lab, "crash", lambda: labmod.kill_services(st, m))
    assert report["pg"]["recovery"] is True, report["pg"]


def test_switchover_loses_no_acknowledged_push_or_row(good_lab: Lab) -> None:
    """`harbor-ha switchover`: the master stops Harbor cleanly before the peer takes over; no
    acknowledged push or committed row is lost, and PostgreSQL starts without crash recovery."""
    st, m = good_lab.st, good_lab.master

    def switchover() -> None:
        res = labmod.harbor_ha(st.nodes[m], "switchover", check=False, timeout=120)
        assert res.returncode == 0, res.stderr

    report = through_failover(good_lab, "switchover", switchover)
    assert report["pg"]["recovery"] is False, report["pg"]


def test_unhealthy_loses_no_acknowledged_push_or_row(good_lab: Lab) -> None:
    """The registry component reported unhealthy on the master (Harbor core's health): the
    master hands over; no acknowledged push or committed row is lost, and PostgreSQL starts on
    the taker without crash recovery (the demotion's compose down shut it down cleanly, though
    the writer kept connecting)."""
    st, m = good_lab.st, good_lab.master
    try:
        report = through_failover(
            good_lab, "unhealthy", lambda: labmod.set_unhealthy(st, m, "core", True)
        )
    finally:
        labmod.set_unhealthy(st, m, "core", False)
    assert report["pg"]["recovery"] is False, report["pg"]
