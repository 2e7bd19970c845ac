"""Priority 1: kill -9 of harbor-ha (only harbor-ha: keepalived, Harbor, the mapping and any
command the daemon had running stay) in every state, then a restart as systemd would do it.

The state is caught by tailing the node's JSON log for the transition line and killing right
after it; the daemon's log after its death tells whether the kill landed in the state (no
later transition).  Promotion states are reached on the standby and demotion states on the
master by a real `harbor-ha switchover`.  MOUNTING lasts ~0.1 s on a clean filesystem: the
test makes it slower for real by giving the image 20 000 files and max-mount-count 1
(`tune2fs -c 1`), so every promotion's `fsck -p` does a full check, and kills during fsck.

After the restart the lab must converge without an operator: one node serving through the
VIP, the other a clean standby (nothing mapped, mounted or running), and a sampler checks
throughout that no node ever runs Harbor on a bare mountpoint or mounts twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import lab
from lab import LabState
from tests.faults import faultlab as fl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PROMOTING = ("LEASING", "FENCING", "MAPPING", "MOUNTING", "STARTING")
DEMOTING = ("STOPPING", "UNMOUNTING", "UNMAPPING")
ATTEMPTS = 3


def slow_fsck(st: LabState) -> None:
    """Give the image 20 000 files and max-mount-count 1: every fsck -p does a full check."""
    with fl.image_offline(st) as dev:
        mp = Path(st.labdir) / "test-mnt"
        mp.mkdir(exist_ok=True)
        lab.sh("mount", dev, str(mp))
        try:
            if not (mp / "fill39").exists():
                for i in range(40):
                    d = mp / f"fill{i}"
                    d.mkdir(exist_ok=True)
                    for j in range(500):
                        (d / f"f{j}").write_text("x" * 100)
        finally:
            lab.sh("umount", str(mp))
        lab.sh("tune2fs", "-c", "1", dev)


def _landed(tail: fl.LogTail, state: str) -> bool:
    """The dead daemon's last transition (if any since the tail began) is into ``state``."""
    trans = tail.transitions()
    if not trans:
        return state in ("MASTER", "BACKUP")
    return trans[-1].get("to") == state


def crash_in(st: LabState, state: str) -> dict[str, Any]:
    """Drive a node into ``state``, kill -9 its harbor-ha right after it entered it."""
    master = fl.serving(st)
    standby = fl.other(st, master)
    victim = standby if state in (*PROMOTING, "BACKUP") else master
    node = st.nodes[victim]
    tail = fl.LogTail(node.log)
    during_fsck: list[str] = []
    if state in ("MASTER", "BACKUP"):
        if lab.status(st, victim)["state"] != state:
            return {"victim": victim, "landed": False, "during_fsck": False, "tail": tail}
        fl.crash_daemon(st, victim)
    else:
        lab.harbor_ha(st.nodes[master], "switchover")
        tail.wait(fl.entered(state), 60)
        if state == "MOUNTING":
            deadline = time.monotonic() + 3
            while not during_fsck and time.monotonic() < deadline:
                during_fsck = [c for c in fl.fsck_running() if "-p" in c]
        fl.crash_daemon(st, victim)
    return {
        "victim": victim,
        "landed": _landed(tail, state),
        "during_fsck": bool(during_fsck),
        "tail": tail,
    }


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(s, marks=pytest.mark.full) if s == "MOUNTING" else s
        for s in ("BACKUP", *PROMOTING, "MASTER", *DEMOTING)
    ],
)
def test_kill9_daemon_in_state_converges(fault_lab: LabState, state: str, record: Any) -> None:
    """kill -9 of harbor-ha right after it entered STATE, restart: the lab converges without an
    operator (one node serving, the other clean), never Harbor on a bare mountpoint."""
    st = fault_lab
    if state == "MOUNTING":
        slow_fsck(st)
        fl.wait_converged(st, 150)
    hits = 0
    fsck_hits = 0
    times: list[float] = []
    problems: list[str] = []
    for attempt in range(ATTEMPTS):
        if attempt:
            fl.wait_converged(st, 150)
        info = crash_in(st, state)
        with fl.Watch(st) as watch, fl.client_for(st) as client:
            t0 = time.monotonic()
            fl.restart_daemon(st, info["victim"])
            try:
                fl.wait_converged(st, 150, client)
            except fl.Timeout as exc:
                problems.append(str(exc))
            times.append(time.monotonic() - t0)
        problems += watch.violations
        if info["landed"]:
            hits += 1
            fsck_hits += int(info["during_fsck"])
            if state != "MOUNTING" or info["during_fsck"]:
                break
    fsck_note = f", {fsck_hits} during fsck" if state == "MOUNTING" else ""
    record(
        injected=f"kill -9 harbor-ha in {state}, restart",
        runs=len(times),
        expected="converges: one MASTER serving, other clean BACKUP; no Harbor on bare mount",
        observed=(
            f"kill landed in {state} {hits}/{len(times)}{fsck_note}; "
            + ("converged" if not problems else "; ".join(problems[:3]))
        ),
        figures="restart->converged " + ", ".join(f"{t:.1f} s" for t in times),
    )
    assert not problems, problems
    assert hits >= 1, f"could not catch {state} in {ATTEMPTS} attempts"
    if state == "MOUNTING":
        assert fsck_hits >= 1, "never killed while fsck ran"
