"""Repeated failed promotions must back off, longer each time.

Marked ``runs_last`` (the ordering hook in tests/faults/conftest.py): once, right after this
case, neither node could map the image for a few minutes (the rbd stand-in's exclusive-lock
write got EPERM; see docs/reliability.md), and a broken lab would fail every later case.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

import lab
from lab import LabState
from tests.faults import faultlab as fl

pytestmark = [pytest.mark.e2e, pytest.mark.full, pytest.mark.runs_last, pytest.mark.timeout(900)]


def test_repeated_failed_promotions_back_off(fault_lab: LabState, record: Any) -> None:
    """The standby's compose file made invalid and the master put in maintenance: the standby
    is asked to promote again and again, fails at START each time, rolls back and backs off
    for longer each time (5, 10, 20 s); it never mounts twice.  Fixed and out of
    maintenance, the lab converges."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    node = st.nodes[standby]
    compose = node.path / "harbor" / "docker-compose.yml"
    good = compose.read_text()
    # a fresh daemon (failure count 0) with the backoff capped at 40 s: 5, 10, 20 s expected
    fl.set_env(st, standby, HARBOR_HA_BACKOFF_MAX_S="40")
    lab.kill_pid(node.pids["harbor-ha"], signal.SIGTERM, group=False, wait_s=40)
    lab.reap()
    fl.restart_daemon(st, standby)
    fl.wait_state(st, standby, "BACKUP", 60)
    tail = fl.LogTail(node.log)
    try:
        compose.write_text(good + "\nthis is: [not valid yaml\n")
        with fl.Watch(st) as watch:
            lab.harbor_ha(st.nodes[master], "maintenance", "on")
            fl.poll(
                lambda: tail.count("timer_armed") >= 3,
                240,
                "three backoffs armed",
                every_s=1,
            )
    finally:
        compose.write_text(good)
        lab.harbor_ha(st.nodes[master], "maintenance", "off")
    armed = [float(r["seconds"]) for r in tail.seen if r.get("msg") == "timer_armed"]
    fails = [r for r in tail.seen if r.get("msg") == "step_end" and r.get("outcome") != "done"]
    conv = fl.wait_converged(st, 180)
    record(
        injected="standby's compose file invalid + master in maintenance (repeated promotions)",
        expected="each failed promotion rolls back; backoff grows; never mounted twice",
        observed=f"backoffs {armed[:4]} s; failed steps {[r['step'] for r in fails][:4]}; "
        f"violations {len(watch.violations)}",
        figures=f"converged {conv:.1f} s after the fix",
    )
    assert not watch.violations
    assert armed[:3] == sorted(armed[:3]) and armed[2] > armed[0], armed
