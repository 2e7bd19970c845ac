"""Suite-wide: the final check that the suite left nothing behind.

At session start we note the network namespaces, loop devices, mounts, tap devices (host and
every netns) and the processes of the kinds the suite starts (dockerd, containerd,
ceph-mon/osd, keepalived, rbd-fuse, harbor-ha, the VM tier's qemu-system); at session end
anything new of those that is still there fails the run, with a list. Only suites that start
services are checked (integration, e2e, faults, vm). Set
HARBOR_HA_LEAK_CHECK=0 to skip it while other labs run on the same machine (development).
The variable is taken out of the environment when read: it is the suite's knob, not a setting,
and harbor-ha refuses an unknown HARBOR_HA_* variable in the environment of the processes the
suite starts.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

LEAK_CHECK = os.environ.pop("HARBOR_HA_LEAK_CHECK", "1") != "0"

KINDS = (
    "dockerd",
    "containerd",
    "ceph-mon",
    "ceph-osd",
    "keepalived",
    "rbd-fuse",
    "harbor-ha",
    "qemu-system",
)
SERVICE_SUITES = ("tests/integration", "tests/e2e", "tests/faults", "tests/vm")


def _processes() -> set[str]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        comm, state = (
            text[text.index("(") + 1 : text.rindex(")")],
            text.rsplit(")", 1)[1].split()[0],
        )
        if state == "Z":
            continue
        if any(k in comm for k in KINDS):
            out.add(f"pid {stat.parent.name}: {cmdline.strip()[:160]}")
    return out


def _snapshot() -> dict[str, set[str]]:
    def lines(*argv: str) -> set[str]:
        res = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
        return {line.strip() for line in res.stdout.splitlines() if line.strip()}

    mounts = {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    netns = {n.split()[0] for n in lines("ip", "netns", "list")}
    taps = {
        f"host: {t.split(':')[1].strip()}" for t in lines("ip", "-o", "link", "show", "type", "tun")
    }
    for ns in netns:
        tun = lines("ip", "-n", ns, "-o", "link", "show", "type", "tun")
        taps |= {f"{ns}: {t.split(':')[1].strip()}" for t in tun}
    return {
        "netns": netns,
        "taps": taps,
        "loop devices": lines("losetup", "-l", "-n", "-O", "NAME,BACK-FILE"),
        "mounts": mounts,
        "processes": _processes(),
    }


def _wants_check(session: pytest.Session) -> bool:
    if not LEAK_CHECK or os.geteuid() != 0:
        return False
    args = [str(a) for a in session.config.args]
    return any(any(suite in a for suite in SERVICE_SUITES) for a in args)


def pytest_sessionstart(session: pytest.Session) -> None:
    if _wants_check(session):
        session.config.stash[_BEFORE] = _snapshot()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, None)
    if before is None:
        return
    # Processes we signalled may take a moment to go; give them a bounded grace.
    deadline = time.monotonic() + 15
    while True:
        after = _snapshot()
        leaked = {k: sorted(after[k] - before[k]) for k in after}
        leaked = {k: v for k, v in leaked.items() if v}
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not leaked:
        if reporter is not None:
            reporter.write_line(
                "leak check: no process, mount, loop device, netns or tap left behind"
            )
        return
    lines = ["leak check FAILED: the suite left these behind:"]
    for kind, items in leaked.items():
        lines += [f"  {kind}: {item}" for item in items]
    if reporter is not None:
        for line in lines:
            reporter.write_line(line, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BEFORE = pytest.StashKey[dict[str, set[str]]]()
