"""Priority 6 (lab part): bad input a standby must report instead of taking over with it.

- the compose file unreadable (a directory where the file should be);
- the RBD image name points to an image that does not exist.
Both: the standby's readiness lists the problem, its priority track file is 0, and
`harbor-ha check` (preflight) prints a FAIL line and exits non-zero.
"""

from __future__ import annotations

import shutil
import signal
from typing import Any

import pytest

import lab
from lab import LabState
from tests.faults import faultlab as fl

pytestmark = [pytest.mark.e2e, pytest.mark.full, pytest.mark.timeout(600)]


def readiness(st: LabState, name: str) -> tuple[bool | None, list[str], str]:
    s = lab.status(st, name)
    prio = (st.nodes[name].run_dir / "priority").read_text().strip()
    return s.get("standby_ready"), list(s.get("standby_problems") or []), prio


def test_unreadable_compose_file_on_standby(fault_lab: LabState, record: Any) -> None:
    """A directory in place of the standby's compose file: readiness reports it, priority 0,
    `harbor-ha check` FAILs; the file restored, the standby is ready again."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    node = st.nodes[standby]
    compose = node.path / "harbor" / "docker-compose.yml"
    saved = compose.with_name("compose.saved")
    shutil.copy(compose, saved)
    try:
        compose.unlink()
        compose.mkdir()
        fl.poll(
            lambda: readiness(st, standby)[2] == "0" and readiness(st, standby)[1],
            60,
            "standby not ready, priority 0",
        )
        ready, problems, prio = readiness(st, standby)
        check = lab.harbor_ha(node, "check", check=False, timeout=120)
    finally:
        if compose.is_dir():
            compose.rmdir()
        shutil.copy(saved, compose)
        saved.unlink()
    fails = [ln for ln in check.stdout.splitlines() if ln.startswith("FAIL") and "compose" in ln]
    fl.poll(lambda: readiness(st, standby)[2] == "1", 60, "standby ready again")
    record(
        injected="standby's compose file replaced by a directory (unreadable)",
        expected="readiness reports it; priority file 0; harbor-ha check FAIL, exit != 0",
        observed=f"ready={ready}, priority={prio}, problems {problems[:1]}; check exit "
        f"{check.returncode}, {fails[:1]}",
    )
    assert prio == "0" and problems
    assert check.returncode != 0 and fails


def test_missing_rbd_image(fault_lab: LabState, record: Any) -> None:
    """The standby configured with an RBD image that does not exist: readiness reports it,
    priority 0, `harbor-ha check` FAILs naming the image."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    node = st.nodes[standby]
    fl.set_env(st, standby, HARBOR_HA_CEPH_IMAGE="no-such-image")
    lab.kill_pid(node.pids["harbor-ha"], signal.SIGTERM, group=False, wait_s=40)
    lab.reap()
    fl.restart_daemon(st, standby)
    fl.poll(
        lambda: readiness(st, standby)[2] == "0" and readiness(st, standby)[1],
        60,
        "standby not ready, priority 0",
    )
    ready, problems, prio = readiness(st, standby)
    check = lab.harbor_ha(node, "check", check=False, timeout=120)
    fails = [ln for ln in check.stdout.splitlines() if ln.startswith("FAIL")]
    record(
        injected="standby configured with an RBD image that does not exist",
        expected="readiness reports it; priority file 0; harbor-ha check FAIL, exit != 0",
        observed=f"ready={ready}, priority={prio}, problems {problems[:1]}; check exit "
        f"{check.returncode}, {fails[:1]}",
    )
    assert prio == "0" and any("no-such-image" in p or "image" in p for p in problems)
    assert check.returncode != 0 and any("no-such-image" in f for f in fails)
