"""Priority 4: step failures and hangs, injected for real into the lab.

Each must time out or fail cleanly, roll back, set the fault flag, and let the other node
serve (or, when the fault is on the shared image itself, leave no node serving from it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import lab
from lab import LabState
from tests.faults import faultlab as fl

pytestmark = [pytest.mark.e2e, pytest.mark.full, pytest.mark.timeout(900)]


def failed_steps(tail: fl.LogTail) -> list[str]:
    tail.read()
    return [
        f"{r['step']}:{r['outcome']}"
        for r in tail.seen
        if r.get("msg") == "step_end" and r.get("outcome") in ("failed", "timeout")
    ]


def lease_deadline_rollbacks(tail: fl.LogTail) -> list[str]:
    """Promotion steps cancelled by the node's own lease deadline (no renewal: stop serving)."""
    tail.read()
    return [
        f"{r['from']}>{r['to']}"
        for r in tail.transitions()
        if str(r.get("reason", "")).startswith("no lease renewal")
    ]


def rolled_back_with_fault(tail: fl.LogTail) -> bool:
    """A transition into BACKUP with the fault flag set (the end of a rollback)."""
    return any(r.get("to") == "BACKUP" and r.get("fault") is True for r in tail.transitions())


def restart_with(st: LabState, name: str, **env: str) -> None:
    """Restart a BACKUP node's harbor-ha with env overrides (restored by the fixture)."""
    fl.set_env(st, name, **env)
    node = st.nodes[name]
    lab.kill_pid(node.pids["harbor-ha"], signal.SIGTERM, group=False, wait_s=40)
    lab.reap()
    fl.restart_daemon(st, name)
    fl.wait_state(st, name, "BACKUP", 60)


def switchover_and_judge(
    st: LabState, record: Any, *, injected: str, within_s: float = 180
) -> tuple[str, str, fl.LogTail, float]:
    master = fl.serving(st)
    standby = fl.other(st, master)
    tail = fl.LogTail(st.nodes[standby].log)
    t0 = time.monotonic()
    lab.harbor_ha(st.nodes[master], "switchover")
    fl.poll(lambda: failed_steps(tail), within_s, f"a failed step on {standby}", every_s=0.5)
    fl.poll(lambda: rolled_back_with_fault(tail), within_s, f"{standby} rolled back")
    took = time.monotonic() - t0
    return master, standby, tail, took


def test_ceph_unreachable_during_fencing(fault_lab: LabState, record: Any) -> None:
    """The standby cut from Ceph (iptables DROP), then a switchover: its fence step fails
    or times out, it rolls back to BACKUP with the fault flag, and the old master serves
    again once its switchover hold is over."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    restart_with(st, standby, HARBOR_HA_FENCE_TIMEOUT_S="10", HARBOR_HA_COMMAND_TIMEOUT_S="5")
    lab.isolate_from_ceph(st, standby)
    with fl.Watch(st) as watch:
        _, _, tail, took = switchover_and_judge(st, record, injected="")
        conv = fl.wait_converged(st, 120)
    now = fl.serving(st)
    record(
        injected="standby cut from Ceph (iptables DROP), then switchover",
        expected="fence fails/times out, rollback to BACKUP + fault; old master serves",
        observed=f"failed steps {failed_steps(tail)}; {now} serves; violations "
        f"{len(watch.violations)}",
        figures=f"switchover -> rolled back {took:.1f} s; converged {conv:.1f} s later",
    )
    assert now == master
    assert not watch.violations


def test_ceph_unreachable_during_mapping(fault_lab: LabState, record: Any) -> None:
    """The standby cut from Ceph right after it entered MAPPING (switchover): the map step
    fails or times out, or (with the lease, usually first) the node's lease deadline passes
    without a renewal and cancels it; rollback (unmap what half-happened) to BACKUP + fault,
    and the old master serves again; nothing stays mapped on the standby once Ceph is back."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    restart_with(st, standby, HARBOR_HA_MAP_TIMEOUT_S="10", HARBOR_HA_COMMAND_TIMEOUT_S="5")
    tail = fl.LogTail(st.nodes[standby].log)
    with fl.Watch(st) as watch:
        t0 = time.monotonic()
        lab.harbor_ha(st.nodes[master], "switchover")
        tail.wait(fl.entered("MAPPING"), 60)
        lab.isolate_from_ceph(st, standby)
        fl.poll(
            lambda: failed_steps(tail) or lease_deadline_rollbacks(tail),
            120,
            "a failed step or the lease deadline",
            every_s=0.5,
        )
        fl.poll(lambda: rolled_back_with_fault(tail) or _fenced_self(tail), 180, "rolled back")
        took = time.monotonic() - t0
        fenced_self = _fenced_self(tail)
        lab.heal(st)
        conv = fl.wait_converged(st, 180)
    now = fl.serving(st)
    record(
        injected="standby cut from Ceph right after entering MAPPING (switchover)",
        expected="map fails/times out or the lease deadline cancels it, rollback + fault "
        "(FENCED_SELF if unmap impossible); "
        "old master serves; converges after heal",
        observed=f"failed steps {failed_steps(tail)}; lease deadline "
        f"{lease_deadline_rollbacks(tail) or 'not reached'}; FENCED_SELF: {fenced_self}; "
        f"{now} serves after heal; violations {len(watch.violations)}",
        figures=f"switchover -> rolled back {took:.1f} s; heal -> converged {conv:.1f} s",
    )
    assert not watch.violations


def _fenced_self(tail: fl.LogTail) -> bool:
    return any(r.get("to") == "FENCED_SELF" for r in tail.transitions())


def damage_image(st: LabState) -> str:
    """Clear a directory inode and mark the filesystem as having errors (debugfs), with the
    image mapped by the test while both nodes are in maintenance: fsck -p then exits 4."""
    with fl.image_offline(st) as dev:
        mp = Path(st.labdir) / "test-mnt"
        mp.mkdir(exist_ok=True)
        lab.sh("mount", dev, str(mp))
        try:
            (mp / "victim").mkdir(exist_ok=True)
            for i in range(20):
                (mp / "victim" / f"f{i}").write_text("x")
        finally:
            lab.sh("umount", str(mp))
        ino = lab.sh("debugfs", "-R", "stat /victim", dev).stdout.split()[1]
        lab.sh("debugfs", "-w", "-R", f"clri <{ino}>", dev)
        lab.sh("debugfs", "-w", "-R", "ssv state 2", dev)
        res = subprocess.run(["e2fsck", "-n", dev], capture_output=True, text=True)
        return f"e2fsck -n exit {res.returncode}"


def repair_image(st: LabState) -> int:
    with fl.image_offline(st) as dev:
        return subprocess.run(["e2fsck", "-fy", dev], capture_output=True).returncode


def test_fsck_errors_abort_promotion(fault_lab: LabState, record: Any) -> None:
    """The filesystem damaged for real (debugfs clri of a directory inode + error state):
    whichever node is elected runs fsck -p, gets exit 4, aborts the promotion (safety rule 4),
    rolls back with the fault flag; no node ever runs Harbor on it.  After an operator's
    `e2fsck -fy` the lab converges."""
    st = fault_lab
    tails = {n: fl.LogTail(st.nodes[n].log) for n in st.nodes}
    with fl.Watch(st) as watch:
        check = damage_image(st)
        fl.poll(
            lambda: any(t.count("fsck_failed") > 0 for t in tails.values()),
            120,
            "an fsck_failed line",
            every_s=1,
        )
        # let the nodes try for a while: none may serve from the damaged image
        end = time.monotonic() + 20
        served: list[str] = []
        while time.monotonic() < end:
            served += [n for n in st.nodes if lab.running_containers(st.nodes[n])]
            time.sleep(1)
        rc = repair_image(st)
        conv = fl.wait_converged(st, 180)
    fsck_fail = sum(1 for t in tails.values() for r in t.seen if r.get("msg") == "fsck_failed")
    rolled = [n for n, t in tails.items() if rolled_back_with_fault(t)]
    record(
        injected="filesystem damaged (debugfs clri dir inode + state=errors)",
        expected="fsck -p exit 4 aborts every promotion; rollback + fault; no Harbor runs; "
        "converges after operator e2fsck -fy",
        observed=f"{check}; fsck_failed {fsck_fail}x; rolled back with fault: {rolled}; "
        f"Harbor running samples: {len(served)}; violations {len(watch.violations)}",
        figures=f"operator e2fsck rc {rc}; converged {conv:.1f} s after repair",
    )
    assert fsck_fail >= 1 and rolled
    assert not served
    assert not watch.violations


def test_mount_kept_busy_by_term_ignoring_process(fault_lab: LabState, record: Any) -> None:
    """A process that ignores SIGTERM sits in the master's mountpoint (cwd + open file):
    at switchover the unmount step TERMs then KILLs it, unmounts, unmaps; the peer serves."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    node = st.nodes[master]
    prog = (
        "import os,signal,time,sys;signal.signal(signal.SIGTERM,signal.SIG_IGN);"
        "os.chdir(sys.argv[1]);f=open('busy.txt','a');print('ready',flush=True);"
        "time.sleep(3600)"
    )
    proc = subprocess.Popen(
        ["python3", "-c", prog, str(node.mountpoint)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        tail = fl.LogTail(node.log)
        with fl.Watch(st) as watch, fl.client_for(st) as client:
            t0 = time.monotonic()
            lab.harbor_ha(node, "switchover")
            fl.poll(
                lambda: (a := client.check()).ok and a.served_by == standby,
                120,
                f"served by {standby}",
            )
            took = time.monotonic() - t0
            conv = fl.wait_converged(st, 120)
        proc.poll()
        killed = proc.returncode
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    msgs = [r.get("msg") for r in tail.seen]
    record(
        injected="TERM-ignoring process with cwd+open file in the master's mountpoint, "
        "then switchover",
        expected="unmount TERMs then KILLs it, demotion completes, peer serves",
        observed=f"process exit {killed}; unmount lines "
        f"{[m for m in msgs if (m and 'umount' in m) or (m and 'unmount' in m)][:4]}; "
        f"violations {len(watch.violations)}",
        figures=f"switchover -> peer serves {took:.1f} s; converged +{conv:.1f} s",
    )
    assert killed == -signal.SIGKILL
    assert fl.serving(st) == standby
    assert not watch.violations


def test_compose_invalid_on_standby(fault_lab: LabState, record: Any) -> None:
    """The standby's compose file made invalid, then a switchover: its start step fails,
    rollback (stop, unmount, unmap) to BACKUP + fault; the old master serves again."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    compose = st.nodes[standby].path / "harbor" / "docker-compose.yml"
    good = compose.read_text()
    try:
        compose.write_text(good + "\nthis is: [not valid yaml\n")
        with fl.Watch(st) as watch:
            _, _, tail, took = switchover_and_judge(st, record, injected="")
            compose.write_text(good)
            conv = fl.wait_converged(st, 150)
    finally:
        compose.write_text(good)
    now = fl.serving(st)
    record(
        injected="standby's compose file invalid YAML, then switchover",
        expected="start fails, rollback + fault, old master serves",
        observed=f"failed steps {failed_steps(tail)}; {now} serves; violations "
        f"{len(watch.violations)}",
        figures=f"switchover -> rolled back {took:.1f} s; converged +{conv:.1f} s",
    )
    assert "start:failed" in failed_steps(tail) or "start:timeout" in failed_steps(tail)
    assert not watch.violations


def test_dockerd_restart_on_master(fault_lab: LabState, record: Any) -> None:
    """The master's dockerd stopped (SIGTERM by PID: Harbor's containers stop) and started
    again: the lab converges (the master recovers or the peer takes over), and no node runs
    Harbor on a bare mountpoint (restart: always containers coming back with dockerd)."""
    st = fault_lab
    master = fl.serving(st)
    with fl.Watch(st, every_s=0.2) as watch:
        down_s = fl.restart_dockerd(st, master)
        conv = fl.wait_converged(st, 180)
    now = fl.serving(st)
    record(
        injected="master's dockerd SIGTERM + start (containers stop)",
        expected="converges (one node serving), never Harbor on a bare mountpoint",
        observed=f"{now} serves (was {master}); violations {len(watch.violations)}",
        figures=f"dockerd down {down_s:.1f} s; converged {conv:.1f} s after it was back",
    )
    assert not watch.violations, watch.violations


def test_harbor_component_restart_loop(fault_lab: LabState, record: Any) -> None:
    """The master's registry container's main process killed every second for 20 s (Docker
    restarts it: restart: always), a real restart loop: the master demotes as unhealthy and
    the peer serves."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    node = st.nodes[master]
    kills = 0
    with fl.Watch(st) as watch, fl.client_for(st) as client:
        t0 = time.monotonic()
        end = time.monotonic() + 20
        while time.monotonic() < end:
            res = lab.sh(
                "docker",
                "-H",
                node.docker_host,
                "inspect",
                "-f",
                "{{.State.Pid}}",
                "registry",
                check=False,
            )
            pid = int(res.stdout.strip() or 0)
            if pid > 0:
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
            time.sleep(1)
        answer = client.first_healthy_after(time.time(), 120, node=standby)
        took = time.monotonic() - t0
        fl.wait_converged(st, 150)
    now = fl.serving(st)
    record(
        injected="registry container's process killed every 1 s for 20 s on the master "
        "(restart loop)",
        expected="master demotes as unhealthy, peer serves",
        observed=f"{kills} kills; client served by {answer.served_by or '-'}; {now} serves; "
        f"violations {len(watch.violations)}",
        figures=f"loop start -> peer healthy {took:.1f} s",
    )
    assert now == standby
    assert not watch.violations
