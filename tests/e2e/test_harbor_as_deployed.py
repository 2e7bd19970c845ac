"""End-to-end on Harbor's own cadence and health API: the lab's Harbor checks its containers
every 30 s (Docker's default) and its core checks each component every 10 s, reading
"unknown status" until its first check.  A scanner's outage must not move the VIP, and a
core restart on the master must be ridden out by the probe's debounce.

No timed assertions: durations are printed as figures.  Deadlines only bound a hang.
"""

from __future__ import annotations

import time

import pytest

import lab
from tests.e2e import helpers
from tests.e2e.conftest import Lab

pytestmark = pytest.mark.e2e

CORE_CHECK_PERIOD_S = 10.0
"""The lab core's (and Harbor core's) checker period per component."""


def degraded(st: lab.LabState, node: str) -> list[str]:
    return list(helpers.status(st, node).get("harbor_degraded") or [])


def test_a_trivy_outage_degrades_and_keeps_the_vip(good_lab: Lab) -> None:
    """trivy-adapter switched unhealthy on the master: core's next check reports the trivy
    component unhealthy; the master stays MASTER (no transition out of it), its /status names
    trivy as degraded, the client is still served by it; switched back, the degradation
    clears."""
    st, client, m = good_lab.st, good_lab.client, good_lab.master
    t0 = time.time()
    lab.set_unhealthy(st, m, "trivy-adapter", True)
    try:

        def seen() -> tuple[list[str] | None, str]:
            d = degraded(st, m)
            return (d if "trivy" in d else None), f"degraded {d}"

        helpers.wait_for("trivy degraded on the master", seen, 4 * CORE_CHECK_PERIOD_S)
        helpers.figure(f"trivy outage: degraded on {m} {time.time() - t0:.1f} s after the switch")
        time.sleep(2 * CORE_CHECK_PERIOD_S)  # long enough for any debounce to fall
        assert helpers.left_master(st, m, t0) == []
        assert helpers.status(st, m)["state"] == "MASTER"
        answer = client.check()
        assert answer.served_by == m, answer.detail
    finally:
        lab.set_unhealthy(st, m, "trivy-adapter", False)

    def cleared() -> tuple[bool | None, str]:
        d = degraded(st, m)
        return (True if not d else None), f"degraded {d}"

    helpers.wait_for("the degradation cleared", cleared, 4 * CORE_CHECK_PERIOD_S)
    assert helpers.left_master(st, m, t0) == []


def test_a_core_restart_on_the_master_is_ridden_out(good_lab: Lab) -> None:
    """`docker restart harbor-core` on the master: core's ping fails for the restart and its
    components read "unknown status" until its first checks; the probe's debounce rides it
    out: no transition out of MASTER, and Harbor serves through the VIP afterwards."""
    st, client, m = good_lab.st, good_lab.client, good_lab.master
    node = st.nodes[m]
    t0 = time.time()
    lab.sh("docker", "-H", node.docker_host, "restart", "-t", "5", "harbor-core")
    helpers.figure(f"core restart on {m}: docker restart took {time.time() - t0:.1f} s")
    answer = helpers.wait_served_by(client, t0, m)
    helpers.figure(f"core restart: healthy answer through the VIP {answer.at - t0:.1f} s after")
    time.sleep(2 * CORE_CHECK_PERIOD_S)
    assert helpers.left_master(st, m, t0) == []
    assert helpers.status(st, m)["state"] == "MASTER"
