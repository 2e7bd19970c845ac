"""Processes and commands of the lab: run a command (``sh``), spawn a service in its own
session, signal and reap only what the lab started (by PID), list mounts under a path."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


class LabError(RuntimeError):
    """The lab could not do what was asked (the message says what and where the logs are)."""


def sh(
    *argv: str, check: bool = True, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env)
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {res.returncode}: {res.stderr.strip()[-800:]}")
    return res


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def kill_pid(
    pid: int, sig: int = signal.SIGTERM, *, group: bool = True, wait_s: float = 10.0
) -> None:
    """Signal a process (and its group) we started, wait for it; SIGKILL after wait_s."""
    if not alive(pid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    deadline = time.monotonic() + wait_s
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if alive(pid) and sig != signal.SIGKILL:
        kill_pid(pid, signal.SIGKILL, group=group, wait_s=5)


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    adopt(proc)
    return proc.pid


def adopt(proc: subprocess.Popen[bytes]) -> None:
    """Reap ``proc`` (started elsewhere) in ``reap()`` as if spawn() had started it."""
    CHILDREN[proc.pid] = proc


CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Processes this Python process started: reaped by reap() (the VM's PID 1 reaps lazily)."""


def reap() -> None:
    for pid, proc in list(CHILDREN.items()):
        if proc.poll() is not None:
            del CHILDREN[pid]


def mounts_under(root: str) -> list[str]:
    """Mountpoints at or below ``root`` (from /proc/self/mountinfo), deepest first."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == root or mnt.startswith(root + "/"):
                out.append(mnt)
    return sorted(out, key=len, reverse=True)
