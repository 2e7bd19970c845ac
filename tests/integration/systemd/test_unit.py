"""The packaged unit (deploy/systemd/harbor-ha.service as the .deb installs it, ExecStart
/usr/sbin/harbor-ha) under a real systemd as PID 1 of a Debian machine, with the real daemon.

The machine: the clean bookworm root with the .deb installed by apt, plus ceph-common and
iproute2 (the real ``rbd``, ``ip``), booted by tests/integration/systemd/machine.py.  There is
no Ceph cluster, keepalived or dockerd in it: ``rbd device list`` says no image is mapped, no
VIP is on lo, so the daemon reconciles to a plain BACKUP and stays up (not ready: its standby
check cannot reach Ceph), which is all a unit test needs; the paths are the package's own.
The tests run in order on one boot; each says which unit behaviour it pins.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import debian_root
from lab.waiting import Timeout, poll
from tests.integration.debroot import harbor_deb, unavailable
from tests.integration.systemd import pid1
from tests.integration.systemd.machine import Machine

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        (unavailable() or pid1.unavailable()) is not None,
        reason=str(unavailable() or pid1.unavailable()),
    ),
]
__all__ = ["harbor_deb"]

NODE = "sd-a"
ENV = f"""\
HARBOR_HA_NODE_NAME={NODE}
HARBOR_HA_INTERFACE=lo
HARBOR_HA_VIP=10.77.0.100/24
HARBOR_HA_CEPH_POOL=rbd
HARBOR_HA_CEPH_IMAGE=harbor
"""
UNIT = "harbor-ha.service"


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory, harbor_deb: Path) -> Iterator[Machine]:
    """The booted machine, harbor-ha enabled by the package and its env file written."""
    base = tmp_path_factory.mktemp("sdmachine")
    root = debian_root.unpack(base / "root")
    try:
        shutil.copy2(harbor_deb, root / "tmp-harbor-ha.deb")
        debian_root.apt_install(root, "/tmp-harbor-ha.deb", "ceph-common", "iproute2")
        (root / "etc/harbor-ha/harbor-ha.env").write_text(ENV)
        with Machine(root, base / "console.log") as m:
            yield m
    finally:
        shutil.rmtree(root, ignore_errors=True)


def show(m: Machine, *props: str) -> dict[str, str]:
    out = m.run("systemctl", "show", UNIT, "-p", ",".join(props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(m: Machine, what: str, cond: object, timeout_s: float) -> dict[str, str]:
    """lab.waiting.poll on ``systemctl show`` until ``cond(props)`` holds; returns the props
    (a Timeout names them and the unit's journal)."""
    assert callable(cond)
    props: dict[str, str] = {}

    def holds() -> bool:
        props.update(
            show(m, "ActiveState", "SubState", "MainPID", "NRestarts", "StatusText", "Result")
        )
        return bool(cond(props))

    try:
        poll(holds, timeout_s, what)
    except Timeout:
        raise Timeout(f"{what}: not within {timeout_s} s: {props}\n{journal(m)}") from None
    return props


def journal(m: Machine, *args: str) -> str:
    return m.run("journalctl", "-u", UNIT, "--no-pager", "-o", "cat", *args, check=False).stdout


def daemon_status(m: Machine) -> dict[str, object]:
    done = m.run("harbor-ha", "status", "--json", check=False)
    assert done.stdout, done.stderr
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


def test_started_at_boot_and_ready_means_reconciled(machine: Machine) -> None:
    """Enabled by the package, the unit started at boot; Type=notify: ``systemctl restart``
    returns only after READY=1, so the daemon answers on its control socket at once, as
    BACKUP; STATUS= is in ``systemctl status``."""
    m = machine
    wait_for(m, "active at boot", lambda p: p["ActiveState"] == "active", 60)
    m.run("systemctl", "restart", UNIT, timeout=130)
    assert m.run("systemctl", "is-active", UNIT).stdout.strip() == "active"
    assert daemon_status(m)["state"] == "BACKUP"  # no retry: ready means reconciled
    props = show(m, "Type", "StatusText", "WatchdogUSec")
    assert props["Type"] == "notify" and props["WatchdogUSec"] == "30s", props
    assert props["StatusText"].startswith("BACKUP"), props
    status = m.run("systemctl", "status", "--no-pager", UNIT, check=False).stdout
    assert f'Status: "{props["StatusText"]}"' in status, status


def test_status_text_follows_a_transition(machine: Machine) -> None:
    """A keepalived MASTER line on the FIFO moves the daemon BACKUP -> LEASING -> BACKUP
    (the promotion's first step, the lease, fails: this machine has no Ceph); STATUS= in
    ``systemctl status`` is the last transition's, not the one sent at start."""
    m = machine
    before = show(m, "StatusText")["StatusText"]
    m.run("sh", "-c", "echo 'INSTANCE \"VI_1\" MASTER 100' > /run/harbor-ha/keepalived.fifo")
    props = wait_for(
        m, "STATUS= after the lease step", lambda p: p["StatusText"].startswith("BACKUP: lease"), 60
    )
    assert props["StatusText"] != before, props
    status = m.run("systemctl", "status", "--no-pager", UNIT, check=False).stdout
    assert "BACKUP: lease" in status, status


def signal_and_wait_restart(m: Machine, signal: str, what: str, within_s: float) -> None:
    """Send ``signal`` to the daemon (the unit's main process); wait until systemd has
    restarted it: active with another main PID, NRestarts + 1, and the daemon is BACKUP."""
    props = wait_for(m, "active", lambda p: p["ActiveState"] == "active", 30)
    pid, restarts = props["MainPID"], int(props["NRestarts"])
    m.run("systemctl", "kill", "--kill-whom=main", f"--signal={signal}", UNIT)
    props = wait_for(
        m, what, lambda p: p["ActiveState"] == "active" and p["MainPID"] not in (pid, "0"), within_s
    )
    assert int(props["NRestarts"]) == restarts + 1, props
    assert daemon_status(m)["state"] == "BACKUP"


def test_watchdog_restarts_a_stalled_daemon(machine: Machine) -> None:
    """SIGSTOP of the daemon: no WATCHDOG=1 any more; after WatchdogSec (30 s) systemd
    aborts it (SIGABRT, then SIGKILL after TimeoutAbortSec) and restarts it: a new main
    PID, NRestarts + 1, active again and BACKUP."""
    signal_and_wait_restart(machine, "SIGSTOP", "restart by the watchdog", 90)
    assert "Watchdog timeout" in machine.run("journalctl", "--no-pager", "-b").stdout


def test_a_crash_is_restarted(machine: Machine) -> None:
    """SIGKILL of the daemon (a crash): Restart=always starts it again (RestartSec=2s)."""
    signal_and_wait_restart(machine, "SIGKILL", "restart after the crash", 30)


def test_errors_reach_journalctl_p_err_with_the_node_name(machine: Machine) -> None:
    """A start that fails (the HTTP port is taken by another program) logs ``start_failed``
    at error level: ``journalctl -p err`` finds it, JSON with the node's name, and nothing
    below error; once the port is free, Restart= brings the daemon back."""
    m = machine
    m.run("systemctl", "stop", UNIT, timeout=70)
    blocker = "/opt/harbor-ha/venv/bin/python3 -m http.server --bind 0.0.0.0 9105"
    m.run("systemd-run", "--unit=port-blocker", *blocker.split())
    try:
        wait_port = "for i in $(seq 50); do ss -ltn | grep -q :9105 && exit 0; sleep 0.1; done"
        m.run("sh", "-c", wait_port + "; exit 1")
        failed = m.run("systemctl", "start", UNIT, check=False, timeout=130)
        assert failed.returncode != 0
        errors = [
            json.loads(line[line.index("{") :])
            for line in journal(m, "-p", "err").splitlines()
            if "{" in line
        ]
        assert errors, journal(m)
        assert any(e["msg"] == "start_failed" and e["node"] == NODE for e in errors), errors
        assert all(e["level"] == "error" for e in errors), errors
    finally:
        m.run("systemctl", "stop", "port-blocker", check=False)
    wait_for(m, "back after the port is free", lambda p: p["ActiveState"] == "active", 30)


def test_a_clean_stop(machine: Machine) -> None:
    """``systemctl stop``: STOPPING=1, the bounded shutdown, exit 0: inactive with result
    success (not failed), and the daemon logged the end of its shutdown."""
    m = machine
    wait_for(m, "active", lambda p: p["ActiveState"] == "active", 30)
    m.run("systemctl", "stop", UNIT, timeout=70)
    props = show(m, "ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
    assert props["ActiveState"] == "inactive" and props["Result"] == "success", props
    assert props["ExecMainStatus"] == "0", props
    assert '"msg": "shutdown_end"' in journal(m, "-n", "20")
