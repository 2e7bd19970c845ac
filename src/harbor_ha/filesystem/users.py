"""Who uses a mount: a /proc scan by readlink only, run in a bounded thread (safety rule 6).

After fencing, any stat or open under the mountpoint can hang in D state, so
the users are found from /proc alone (cwd, root, exe, fd links, maps), and the
scan runs in a daemon thread the event loop waits for with a bound.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from pathlib import Path

import structlog

from harbor_ha.blocking import call_bounded
from harbor_ha.filesystem.mountinfo import normalize

log = structlog.get_logger("harbor_ha.filesystem")


def _inside(path: str, mountpoint: str) -> bool:
    path = path.removesuffix(" (deleted)")
    return path == mountpoint or path.startswith(mountpoint.rstrip("/") + "/")


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _pid_uses(pid: int, mountpoint: str) -> bool:
    base = f"/proc/{pid}"
    for name in ("cwd", "root", "exe"):
        target = _readlink(f"{base}/{name}")
        if target is not None and _inside(target, mountpoint):
            return True
    try:
        fds = os.listdir(f"{base}/fd")
    except OSError:
        fds = []
    for fd in fds:
        target = _readlink(f"{base}/fd/{fd}")
        if target is not None and _inside(target, mountpoint):
            return True
    try:
        with open(f"{base}/maps", errors="surrogateescape") as maps:
            for line in maps:
                parts = line.rstrip("\n").split(None, 5)
                if len(parts) == 6 and _inside(parts[5], mountpoint):
                    return True
    except OSError:
        pass
    return False


def find_mount_users(mountpoint: Path | str, pids: Iterable[int] | None = None) -> dict[int, str]:
    """PIDs (-> comm) whose cwd, root, exe, open fds or mapped files lie under ``mountpoint``.

    Reads /proc with readlink and reads /proc/PID/maps only: nothing under the
    mountpoint is ever stat'ed or opened.  Never lists our own PID or PID 1.
    A process whose cwd is the bare directory under the mount is listed too
    (the path string cannot tell them apart without touching the mount).
    """
    target = normalize(mountpoint)
    if pids is None:
        pids = (int(name) for name in os.listdir("/proc") if name.isdigit())
    me = os.getpid()
    users: dict[int, str] = {}
    for pid in pids:
        if pid in (me, 1):
            continue
        if _pid_uses(pid, target):
            users[pid] = _comm(pid)
    return users


async def scan_mount_users(
    mountpoint: Path, pids: list[int] | None, limit_s: float
) -> dict[int, str]:
    """find_mount_users in a daemon thread, bounded by ``limit_s`` ({} when it runs past it).

    Reading /proc/PID/maps takes the target's mmap lock, which a process
    stuck on a fenced filesystem may hold: the scan must not block the
    loop, and a stuck scan thread must not block the interpreter's exit.
    """
    try:
        return await call_bounded(
            lambda: find_mount_users(mountpoint, pids), limit_s, "harbor-ha-mount-users"
        )
    except TimeoutError:
        log.warning("mount_users_scan_timeout", mountpoint=str(mountpoint))
        return {}


def signal_users(mountpoint: Path, users: dict[int, str], sig: signal.Signals) -> list[int]:
    """Send ``sig`` to each of ``users`` (never to ourselves or PID 1); the PIDs reached."""
    sent: list[int] = []
    for pid, comm in users.items():
        if pid in (os.getpid(), 1):
            continue
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue
        sent.append(pid)
        log.warning(
            "mount_user_signalled",
            mountpoint=str(mountpoint),
            pid=pid,
            comm=comm,
            signal=sig.name,
        )
    return sent
