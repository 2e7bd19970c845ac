"""A Debian root booted with its own systemd as PID 1: a machine to test the unit in.

Like pid1.py (and systemd-nspawn): new PID, mount, cgroup, UTS and network namespaces, rooted
in cgroups created for the run (``harbor-ha-sd-<pid>-m``, removed afterwards).  Inside: /proc,
/sys (the unified and name=systemd hierarchies remounted at the namespace's cgroup), a small
/dev with /dev/console bound to a log file, tmpfs /run and /tmp, then ``chroot ROOT
/lib/systemd/systemd``; ``container=`` tells systemd it is a container.  It boots the root's
default target, so journald runs and enabled units start.  The network namespace has only
lo (systemd brings it up).  :meth:`Machine.run` runs a command inside (``nsenter``);
:meth:`Machine.close` powers it off (SIGKILL of the namespace after a bound).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from lab.debian_root import MINIMAL_DEV
from tests.integration.systemd.pid1 import CGROUP_ROOTS

BOOT_TIMEOUT_S = 60.0

_INNER = (
    r"""
set -e
r=$1; console=$2
mount --bind "$r" "$r"
hostname harbor-ha-test
mount -t proc proc "$r/proc"
mount --rbind /sys "$r/sys"
umount -l "$r/sys/fs/cgroup/unified" && mount -t cgroup2 none "$r/sys/fs/cgroup/unified"
umount -l "$r/sys/fs/cgroup/systemd"
mount -t cgroup -o none,name=systemd none "$r/sys/fs/cgroup/systemd"
"""
    + MINIMAL_DEV
    + r"""touch "$r/dev/console" && mount --bind "$console" "$r/dev/console"
mount -t tmpfs -o mode=755 tmpfs "$r/run"
mount -t tmpfs tmpfs "$r/tmp"
exec chroot "$r" /usr/bin/env -i container=harbor-ha-test /lib/systemd/systemd --system \
  --log-target=journal-or-kmsg
"""
)
_OUTER = (
    'for root in "$@"; do echo $$ > "$root/cgroup.procs" || exit 1; done; '
    "exec unshare --kill-child --cgroup --pid --fork --mount --uts --net --propagation private "
    'sh -c "$INNER" inner "$ROOT" "$CONSOLE"'
)
NSENTER = ("nsenter", "--mount", "--pid", "--uts", "--net", "--root", "--wd")
ENV = ("--", "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_COLORS=0")


class Machine:
    """A booted root: ``with Machine(root, console) as m: m.run("systemctl", ...)``."""

    def __init__(self, root: Path, console: Path) -> None:
        self.root = root
        self.console = console
        self.cgroups = [r / f"harbor-ha-sd-{os.getpid()}-m" for r in CGROUP_ROOTS]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Machine:
        self.console.touch()
        for cg in self.cgroups:
            cg.mkdir()
        self.proc = subprocess.Popen(
            ["sh", "-c", _OUTER, "outer", *map(str, self.cgroups)],
            env={
                **os.environ,
                "INNER": _INNER,
                "ROOT": str(self.root),
                "CONSOLE": str(self.console),
            },
            start_new_session=True,
        )
        try:
            self._wait_booted()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def pid1(self) -> int:
        """The host PID of the machine's systemd (the child of ``unshare --fork``)."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])

    def run(
        self, *argv: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` inside the machine (its namespaces and root), with a clean environment."""
        done = subprocess.run(
            [*NSENTER, f"--target={self.pid1}", *ENV, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr}")
        return done

    def _wait_booted(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd exited: {self.console.read_text()[-3000:]}")
            try:
                state = self.run("systemctl", "is-system-running", check=False, timeout=10)
            except (OSError, IndexError, ValueError, subprocess.TimeoutExpired):
                state = None
            if state is not None and state.stdout.strip() in ("running", "degraded"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"not booted in {BOOT_TIMEOUT_S} s: {self.console.read_text()[-3000:]}")

    def close(self) -> None:
        """Power off (bounded), then SIGKILL what is left; remove the cgroups."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.run("systemctl", "poweroff", "--no-block", check=False, timeout=10)
                self.proc.wait(timeout=30)
            except (OSError, IndexError, ValueError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for cg in self.cgroups:
            if not cg.exists():
                continue
            for sub in sorted(cg.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if sub.is_dir():
                    _kill_and_rmdir(sub)
            _kill_and_rmdir(cg)


def _kill_and_rmdir(cg: Path) -> None:
    """SIGKILL what is left in a cgroup of ours, then remove it."""
    deadline = time.monotonic() + 10
    while True:
        pids = [int(p) for p in (cg / "cgroup.procs").read_text().split()]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        try:
            cg.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
