"""A real systemd as PID 1 of a throw-away namespace, booting only the units a test gives it.

The machine's PID 1 is not systemd, but Debian's systemd binary runs as PID 1 of a new PID
namespace (``unshare --pid --fork``) with its own mount namespace (a tmpfs on /run, /dev/console
bound to a log file) and its own cgroup namespace, rooted in a cgroup created for the run
(``harbor-ha-sd-<pid>`` in the unified and the name=systemd hierarchies, removed afterwards).
``SYSTEMD_UNIT_PATH`` puts the test's unit directory first; the goal unit has
``SuccessAction=exit`` so the manager exits once it is done (about 0.2 s).  Nothing of the
host's units starts: only the goal unit and what it pulls in.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

SYSTEMD = Path("/lib/systemd/systemd")
CGROUP_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd"))


def unavailable() -> str | None:
    """Why a PID-1 systemd cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (namespaces, cgroups)"
    if not SYSTEMD.is_file() or shutil.which("unshare") is None:
        return "needs systemd and unshare"
    if not all(root.is_dir() for root in CGROUP_ROOTS):
        return "needs the unified and name=systemd cgroup hierarchies"
    return None


def version() -> int:
    """systemd's major version (252 on Debian 12)."""
    out = subprocess.run(
        [str(SYSTEMD), "--version"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    match = re.match(r"systemd (\d+)", out)
    assert match, out
    return int(match.group(1))


_INNER = (
    "umount -l /sys/fs/cgroup/unified && mount -t cgroup2 none /sys/fs/cgroup/unified && "
    "umount -l /sys/fs/cgroup/systemd && "
    "mount -t cgroup -o none,name=systemd none /sys/fs/cgroup/systemd && "
    'mount -t tmpfs tmpfs /run && mount --bind "$1" /dev/console && '
    'exec env -i SYSTEMD_UNIT_PATH="$2": container=harbor-ha-test '
    f'{SYSTEMD} --system --unit="$3" --log-target=console'
)
_OUTER = (
    'for root in "$@"; do echo $$ > "$root/cgroup.procs" || exit 1; done; '
    f"exec unshare --kill-child --cgroup --pid --fork --mount --mount-proc --propagation private "
    f'sh -c \'{_INNER}\' inner "$CONSOLE" "$UNITS" "$GOAL"'
)


def boot(units: Path, goal: str, console: Path, timeout_s: float = 60) -> int:
    """Run systemd as PID 1 with ``units`` first in its unit path until ``goal`` is done
    (the goal needs ``SuccessAction=exit``/``FailureAction=exit``); its log goes to
    ``console``.  Returns the manager's exit code."""
    cgroups = [root / f"harbor-ha-sd-{os.getpid()}" for root in CGROUP_ROOTS]
    console.touch()
    for cg in cgroups:
        cg.mkdir()
    try:
        proc = subprocess.Popen(
            ["sh", "-c", _OUTER, "outer", *map(str, cgroups)],
            env={**os.environ, "CONSOLE": str(console), "UNITS": str(units), "GOAL": goal},
            start_new_session=True,
        )
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise
    finally:
        for cg in cgroups:
            for sub in sorted(cg.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if sub.is_dir():
                    sub.rmdir()
            cg.rmdir()
