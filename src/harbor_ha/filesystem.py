"""The filesystem on the mapped image: probe, fsck, mount, guard, unmount.

Safety rules this module carries (see DESIGN.md):

- Rule 3: nothing here formats a device on its own.  ``probe_filesystem`` tells
  "no filesystem" (blkid exit 2 AND the device reads fine) from "I/O error"
  (blkid also exits 2 when it cannot read: the predecessor then ran mkfs and
  destroyed the registry).  ``format_new`` is the only mkfs and is reached only
  by an explicit operator command with ``confirm=True``.
- Rule 4: fsck exit codes 0/1 go on, 2 (reboot advised) logs a warning and goes
  on, >= 4 raises :class:`FsckFailed`.
- Rule 5: "mounted" means /proc/self/mountinfo has a mount at exactly the
  mountpoint whose major:minor is the device's st_rdev (never a directory
  listing).  While unmounted, the bare directory is ``chattr +i`` so a Harbor
  started by mistake cannot write onto the root filesystem.
- Rule 6: unmount is staged (plain, TERM the users, KILL the users, retry) and
  the users are found with readlink on /proc only: after fencing, any stat or
  open under the mountpoint can hang in D state.

fsck per filesystem type: ``fsck -t FS_TYPE -p DEV``.  For ext4 that is
``e2fsck -p`` (preen: fixes only what is safe unattended, else exits 4).  For
xfs, fsck.xfs deliberately does nothing and exits 0: xfs replays its log at
mount time, and ``xfs_repair -n`` on a crash-consistent fs with a dirty log
reports false corruption, so an automatic offline check would block every
failover after a crash.  The summary says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import re
import signal
import stat
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import structlog

from harbor_ha.runner import CommandError, CommandResult, Runner
from harbor_ha.settings import Settings

log = structlog.get_logger(__name__)

MOUNTINFO = Path("/proc/self/mountinfo")
FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long) on 64-bit Linux
FS_IMMUTABLE_FL = 0x00000010
UMOUNT_BUSY_POLL_S = 0.05
"""Poll period while waiting for signalled users to exit (a condition poll, not a timed wait)."""
KILL_RETRY_PAUSE_S = 0.1
"""Pause between KILL-and-umount retries once every stage has run."""
OUTPUT_TAIL_CHARS = 2000


# ---------------------------------------------------------------- errors
class FilesystemError(Exception):
    """Base of this module's errors."""


class DeviceIOError(FilesystemError):
    """The device cannot be read (I/O error, lost/blocklisted storage). Never format it."""


class ProbeError(FilesystemError):
    """blkid gave an answer we cannot act on safely (ambivalent, partition table, ...)."""


class FormatRefused(FilesystemError):
    """format_new refused: no confirmation, an existing filesystem, or an unreadable device."""


class FormatFailed(FilesystemError):
    """mkfs ran and failed or timed out."""


class FsckFailed(FilesystemError):
    """fsck exited >= 4 (or was killed / timed out): the promotion must abort."""

    def __init__(self, device: str, code: int, output_tail: str) -> None:
        what = "timed out" if code == -1 else f"exit code {code}"
        super().__init__(f"fsck of {device} failed ({what}): {output_tail.strip()[-500:]}")
        self.device = device
        self.code = code
        self.output_tail = output_tail


class MountError(FilesystemError):
    """The device could not be mounted (or verified mounted read-write) at the mountpoint."""


class UnmountFailed(FilesystemError):
    """The mountpoint is still mounted after every stage and the whole timeout."""

    def __init__(self, message: str, outcome: UnmountOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


# ------------------------------------------------------------- mountinfo
@dataclass(frozen=True)
class MountInfo:
    """One line of /proc/self/mountinfo (paths unescaped)."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    mountpoint: str
    options: str
    fstype: str
    source: str
    super_options: str

    @property
    def read_only(self) -> bool:
        """Per-mount or superblock read-only, including ext4's error remount.

        errors=remount-ro shows as superblock ``ro`` on older kernels and as
        ``emergency_ro`` (the mount still says ``rw``) since Linux 6.x (seen on 6.18).
        """
        sb = self.super_options.split(",")
        return "ro" in self.options.split(",") or "ro" in sb or "emergency_ro" in sb


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(text: str) -> str:
    """Undo the kernel's octal escapes (\\040 space, \\011 tab, \\012 newline, \\134 backslash)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse mountinfo text (proc(5)): optional fields end at the lone '-' separator."""
    infos: list[MountInfo] = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 10:
            continue
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 3:
            continue
        major, _, minor = fields[2].partition(":")
        infos.append(
            MountInfo(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                major=int(major),
                minor=int(minor),
                root=_unescape(fields[3]),
                mountpoint=_unescape(fields[4]),
                options=fields[5],
                fstype=_unescape(fields[sep + 1]),
                source=_unescape(fields[sep + 2]),
                super_options=fields[sep + 3] if len(fields) > sep + 3 else "",
            )
        )
    return infos


def read_mountinfo() -> list[MountInfo]:
    """This process's mount table (reads procfs only, never the mounted filesystems)."""
    return parse_mountinfo(MOUNTINFO.read_text(errors="surrogateescape"))


def _norm(path: Path | str) -> str:
    # Lexical only: realpath would lstat the mountpoint, i.e. the mounted root,
    # which can hang once the device is fenced.  The mountpoint must not
    # contain symlinks.
    return os.path.normpath(os.path.abspath(os.fspath(path)))


def mount_at(mountpoint: Path | str, infos: Sequence[MountInfo] | None = None) -> MountInfo | None:
    """The top-most mount at exactly ``mountpoint`` (the one no other mount there covers)."""
    if infos is None:
        infos = read_mountinfo()
    target = _norm(mountpoint)
    here = [m for m in infos if m.mountpoint == target]
    if not here:
        return None
    covered = {m.parent_id for m in here}
    top = [m for m in here if m.mount_id not in covered]
    return (top or here)[-1]


def device_numbers(device: str) -> tuple[int, int]:
    """(major, minor) of a block device node; raises FilesystemError if it is not one."""
    try:
        st = os.stat(device)
    except OSError as exc:
        raise FilesystemError(f"{device}: {exc.strerror}") from exc
    if not stat.S_ISBLK(st.st_mode):
        raise FilesystemError(f"{device}: not a block device")
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def is_mounted_from(
    mountpoint: Path | str, device: str, infos: Sequence[MountInfo] | None = None
) -> bool:
    """True when the top-most mount at ``mountpoint`` is the device's (major:minor match)."""
    top = mount_at(mountpoint, infos)
    if top is None:
        return False
    try:
        numbers = device_numbers(device)
    except FilesystemError:
        return False
    return (top.major, top.minor) == numbers


def is_read_only(mountpoint: Path | str, infos: Sequence[MountInfo] | None = None) -> bool:
    """True when a mount at ``mountpoint`` is read-only (e.g. ext4 remount-ro after fencing).

    False when nothing is mounted there (ask :func:`mount_at` for that).
    """
    top = mount_at(mountpoint, infos)
    return top is not None and top.read_only


# ------------------------------------------------------------------ fsck
class FsckVerdict(Enum):
    """What an fsck exit code means for the promotion (DESIGN safety rule 4)."""

    CLEAN = "clean"  # 0
    CORRECTED = "corrected"  # 1: errors fixed, go on
    REBOOT_ADVISED = "reboot_advised"  # bit 2 set: log a warning, go on
    FAILED = "failed"  # >= 4 (uncorrected, operational, usage, cancelled, library) or killed


def fsck_verdict(code: int) -> FsckVerdict:
    """Map an fsck(8) exit code (a bit mask) to a verdict; negative (signal) = FAILED."""
    if code < 0 or code >= 4:
        return FsckVerdict.FAILED
    if code & 2:
        return FsckVerdict.REBOOT_ADVISED
    if code & 1:
        return FsckVerdict.CORRECTED
    return FsckVerdict.CLEAN


@dataclass(frozen=True)
class FsckOutcome:
    """A finished, acceptable fsck (codes 0-3)."""

    code: int
    duration_s: float
    summary: str

    @property
    def verdict(self) -> FsckVerdict:
        return fsck_verdict(self.code)


# --------------------------------------------------------------- unmount
@dataclass
class UnmountOutcome:
    """What unmount did: umount attempts, PIDs signalled, and how long it took."""

    attempts: int = 0
    already_unmounted: bool = False
    termed: list[int] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    duration_s: float = 0.0
    stages: list[str] = field(default_factory=list)


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
    target = _norm(mountpoint)
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


# ------------------------------------------------------------ the adapter
def _tail(result: CommandResult) -> str:
    return (result.stdout + result.stderr)[-OUTPUT_TAIL_CHARS:]


class Filesystem:
    """The image's filesystem at ``settings.mountpoint``; every command through ``runner``."""

    def __init__(self, settings: Settings, runner: Runner) -> None:
        self._settings = settings
        self._runner = runner
        self.mountpoint = Path(_norm(settings.mountpoint))

    # ----------------------------------------------------------- queries
    def mounted(self) -> MountInfo | None:
        """The top-most mount at the mountpoint, if any."""
        return mount_at(self.mountpoint)

    def is_mounted_from(self, device: str) -> bool:
        return is_mounted_from(self.mountpoint, device)

    def is_read_only(self) -> bool:
        return is_read_only(self.mountpoint)

    def is_guarded(self) -> bool | None:
        """Is the bare mountpoint directory immutable?

        None when it cannot be known without touching a mounted filesystem (the
        mountpoint is mounted) or when its filesystem has no inode flags.
        False when the directory does not exist.
        """
        if mount_at(self.mountpoint) is not None:
            return None
        try:
            fd = os.open(self.mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK)
        except FileNotFoundError:
            return False
        try:
            raw = fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 8)
        except OSError as exc:
            if exc.errno in (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                return None
            raise
        finally:
            os.close(fd)
        (flags,) = struct.unpack_from("i", raw)
        return bool(flags & FS_IMMUTABLE_FL)

    # ------------------------------------------------------------ probes
    async def _run(self, argv: list[str], timeout_s: float) -> CommandResult:
        return await self._runner.run(argv, timeout_s=timeout_s)

    async def read_probe(self, device: str, timeout_s: float) -> bool:
        """One O_DIRECT read of the first 4 KiB; False on any error or timeout."""
        argv = [
            self._settings.dd_bin,
            f"if={device}",
            "of=/dev/null",
            "bs=4096",
            "count=1",
            "iflag=direct",
            "status=none",
        ]
        try:
            result = await self._run(argv, timeout_s)
        except CommandError as exc:
            log.warning("read_probe_failed", device=device, error=str(exc))
            return False
        if not result.ok:
            log.warning(
                "read_probe_failed",
                device=device,
                rc=result.returncode,
                error=result.stderr.strip()[-200:],
            )
            return False
        return True

    async def probe_filesystem(self, device: str) -> str | None:
        """The filesystem type on ``device``; None only when blkid finds nothing AND it reads fine.

        Raises DeviceIOError when the device cannot be read (blkid exits 2 on I/O
        errors too), ProbeError on an answer that is neither a filesystem nor empty.
        """
        timeout_s = self._settings.command_timeout_s
        argv = [self._settings.blkid_bin, "-p", "-o", "export", device]
        try:
            result = await self._run(argv, timeout_s)
        except CommandError as exc:
            raise ProbeError(f"blkid of {device}: {exc}") from exc
        if result.returncode == 0:
            values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
            fstype = values.get("TYPE")
            if fstype:
                log.info("probe_filesystem", device=device, fstype=fstype)
                return fstype
            raise ProbeError(f"{device} holds no filesystem but is not empty: {values}")
        readable = await self.read_probe(device, timeout_s)
        if not readable:
            log.error("probe_device_unreadable", device=device, blkid_rc=result.returncode)
            raise DeviceIOError(f"{device} cannot be read (blkid exit {result.returncode})")
        if result.returncode == 2:
            log.info("probe_filesystem", device=device, fstype=None)
            return None
        raise ProbeError(
            f"blkid of {device} exit {result.returncode}: {result.stderr.strip()[-300:]}"
        )

    # ------------------------------------------------------------ format
    async def format_new(self, device: str, *, confirm: bool) -> None:
        """mkfs -t FS_TYPE on a device that reads fine and holds no filesystem (operator only)."""
        if confirm is not True:
            log.warning("format_refused", device=device, reason="not confirmed")
            raise FormatRefused(f"refusing to format {device}: not confirmed")
        try:
            existing = await self.probe_filesystem(device)
        except DeviceIOError as exc:
            log.error("format_refused", device=device, reason="unreadable")
            raise FormatRefused(f"refusing to format {device}: {exc}") from exc
        except ProbeError as exc:
            log.error("format_refused", device=device, reason="not empty")
            raise FormatRefused(f"refusing to format {device}: {exc}") from exc
        if existing is not None:
            log.error("format_refused", device=device, reason="has filesystem", fstype=existing)
            raise FormatRefused(f"refusing to format {device}: it already holds {existing}")
        argv = [self._settings.mkfs_bin, "-t", self._settings.fs_type, device]
        log.warning("format_start", device=device, fstype=self._settings.fs_type)
        try:
            result = await self._run(argv, self._settings.format_timeout_s)
        except CommandError as exc:
            raise FormatFailed(f"mkfs of {device}: {exc}") from exc
        if not result.ok:
            raise FormatFailed(f"mkfs of {device} exit {result.returncode}: {_tail(result)}")
        log.warning("format_done", device=device, duration_s=round(result.duration_s, 3))

    # -------------------------------------------------------------- fsck
    async def fsck(self, device: str, timeout_s: float) -> FsckOutcome:
        """``fsck -t FS_TYPE -p DEV``; 0-3 -> FsckOutcome, >= 4 or timeout -> FsckFailed."""
        argv = [self._settings.fsck_bin, "-t", self._settings.fs_type, "-p", device]
        started = time.monotonic()
        try:
            result = await self._run(argv, timeout_s)
        except CommandError as exc:
            log.error("fsck_failed", device=device, error=str(exc))
            raise FsckFailed(device, -1, str(exc)) from exc
        duration = time.monotonic() - started
        verdict = fsck_verdict(result.returncode)
        summary = (result.stdout.strip() + "\n" + result.stderr.strip()).strip()[-500:]
        if self._settings.fs_type == "xfs":
            summary = "xfs: no offline check (log replayed at mount). " + summary
        fields = {"device": device, "rc": result.returncode, "duration_s": round(duration, 3)}
        if verdict is FsckVerdict.FAILED:
            log.error("fsck_failed", **fields, output=_tail(result)[-500:])
            raise FsckFailed(device, result.returncode, _tail(result))
        if verdict is FsckVerdict.REBOOT_ADVISED:
            log.warning("fsck_reboot_advised", **fields, summary=summary)
        else:
            log.info("fsck_done", **fields, verdict=verdict.value)
        return FsckOutcome(code=result.returncode, duration_s=duration, summary=summary)

    # ------------------------------------------------------------- mount
    async def mount(self, device: str, timeout_s: float) -> None:
        """Mount ``device`` read-write at the mountpoint (idempotent), verified via mountinfo."""
        mp = self.mountpoint
        top = mount_at(mp)
        if top is not None:
            if is_mounted_from(mp, device, [top]):
                if top.read_only:
                    raise MountError(f"{device} is mounted at {mp} but read-only")
                log.info("mount_already", device=device, mountpoint=str(mp))
                return
            raise MountError(
                f"{mp} is already mounted from {top.source} ({top.major}:{top.minor}), not {device}"
            )
        try:
            device_numbers(device)
        except FilesystemError as exc:
            raise MountError(str(exc)) from exc
        try:
            mp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MountError(f"cannot create mountpoint {mp}: {exc.strerror}") from exc
        await self.guard()
        argv = [
            self._settings.mount_bin,
            "-t",
            self._settings.fs_type,
            "-o",
            self._settings.mount_options,
            device,
            str(mp),
        ]
        try:
            result = await self._run(argv, timeout_s)
        except CommandError as exc:
            log.error("mount_failed", device=device, error=str(exc))
            raise MountError(f"mount {device} at {mp}: {exc}") from exc
        if not result.ok:
            log.error("mount_failed", device=device, rc=result.returncode, output=_tail(result))
            raise MountError(f"mount {device} at {mp} exit {result.returncode}: {_tail(result)}")
        infos = read_mountinfo()
        if not is_mounted_from(mp, device, infos):
            raise MountError(f"mount {device} at {mp} exited 0 but mountinfo does not show it")
        if is_read_only(mp, infos):
            raise MountError(f"{device} mounted at {mp} read-only")
        log.info(
            "mounted",
            device=device,
            mountpoint=str(mp),
            duration_s=round(result.duration_s, 3),
        )

    # ------------------------------------------------------------- guard
    async def guard(self) -> None:
        """chattr +i the bare mountpoint directory while nothing is mounted on it.

        Never touches a mounted filesystem's root: when the mountpoint is
        mounted this does nothing (mount() guards before mounting, unmount()
        after).  A filesystem without inode flags is logged, not raised: the
        preflight reports it via is_guarded().
        """
        mp = self.mountpoint
        if not self._settings.guard_mountpoint:
            log.info("guard_disabled", mountpoint=str(mp))
            return
        if mount_at(mp) is not None:
            log.info("guard_skipped_mounted", mountpoint=str(mp))
            return
        try:
            mp.mkdir(parents=True, exist_ok=True)
            if self.is_guarded():
                return
        except OSError as exc:
            log.warning("guard_failed", mountpoint=str(mp), error=str(exc))
            return
        argv = [self._settings.chattr_bin, "+i", str(mp)]
        try:
            result = await self._run(argv, self._settings.command_timeout_s)
        except CommandError as exc:
            log.warning("guard_failed", mountpoint=str(mp), error=str(exc))
            return
        if not result.ok:
            log.warning(
                "guard_unsupported",
                mountpoint=str(mp),
                rc=result.returncode,
                error=result.stderr.strip()[-300:],
            )
            return
        log.info("guarded", mountpoint=str(mp))

    # ----------------------------------------------------------- unmount
    async def _umount_once(self, timeout_s: float) -> CommandResult | None:
        argv = [self._settings.umount_bin, str(self.mountpoint)]
        try:
            return await self._run(argv, max(timeout_s, 0.1))
        except CommandError as exc:
            log.warning("umount_attempt_failed", mountpoint=str(self.mountpoint), error=str(exc))
            return None

    def _signal(self, users: dict[int, str], sig: signal.Signals) -> list[int]:
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
                mountpoint=str(self.mountpoint),
                pid=pid,
                comm=comm,
                signal=sig.name,
            )
        return sent

    async def _scan_users(self, pids: list[int] | None, limit_s: float) -> dict[int, str]:
        """find_mount_users in a daemon thread, bounded by ``limit_s``.

        Reading /proc/PID/maps takes the target's mmap lock, which a process
        stuck on a fenced filesystem may hold: the scan must not block the
        loop, and a stuck scan thread must not block the interpreter's exit.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[int, str]] = loop.create_future()

        def deliver(result: dict[int, str] | BaseException) -> None:
            if future.done():
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        def scan() -> None:
            result: dict[int, str] | BaseException
            try:
                result = find_mount_users(self.mountpoint, pids)
            except Exception as exc:
                result = exc
            with contextlib.suppress(RuntimeError):  # loop closed meanwhile
                loop.call_soon_threadsafe(deliver, result)

        threading.Thread(target=scan, name="harbor-ha-mount-users", daemon=True).start()
        try:
            return await asyncio.wait_for(future, max(limit_s, 0.01))
        except TimeoutError:
            log.warning("mount_users_scan_timeout", mountpoint=str(self.mountpoint))
            return {}

    async def _wait_gone(self, pids: list[int], limit_s: float) -> None:
        """Poll until none of ``pids`` still uses the mount, at most ``limit_s``."""
        deadline = time.monotonic() + limit_s
        while pids and await self._scan_users(pids, deadline - time.monotonic()):
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(UMOUNT_BUSY_POLL_S)

    async def unmount(self, timeout_s: float, term_grace_s: float) -> UnmountOutcome:
        """Unmount the mountpoint: plain, then TERM the users, then KILL them; retry to the end.

        Idempotent (nothing mounted = success).  Guards the bare directory
        after success.  Raises UnmountFailed if still mounted after timeout_s.
        """
        mp = self.mountpoint
        started = time.monotonic()
        deadline = started + timeout_s
        outcome = UnmountOutcome()
        if mount_at(mp) is None:
            outcome.already_unmounted = True
            log.info("unmount_already", mountpoint=str(mp))
            await self.guard()
            return outcome
        stage = "plain"
        while True:
            outcome.attempts += 1
            outcome.stages.append(stage)
            # Each attempt is bounded by command_timeout_s so a hanging umount
            # still leaves time for the TERM/KILL stages.
            bound = min(deadline - time.monotonic(), self._settings.command_timeout_s)
            result = await self._umount_once(bound)
            if mount_at(mp) is None:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome.duration_s = time.monotonic() - started
                detail = _tail(result).strip()[-300:] if result is not None else "timed out"
                log.error(
                    "unmount_failed",
                    mountpoint=str(mp),
                    attempts=outcome.attempts,
                    termed=outcome.termed,
                    killed=outcome.killed,
                    error=detail,
                )
                raise UnmountFailed(
                    f"{mp} still mounted after {outcome.attempts} attempts in "
                    f"{outcome.duration_s:.1f} s: {detail}",
                    outcome,
                )
            users = await self._scan_users(None, remaining)
            if stage == "plain":
                sent = self._signal(users, signal.SIGTERM)
                outcome.termed.extend(sent)
                await self._wait_gone(sent, min(term_grace_s, remaining))
                stage = "term"
            else:
                sent = self._signal(users, signal.SIGKILL)
                outcome.killed.extend(p for p in sent if p not in outcome.killed)
                if sent:
                    await self._wait_gone(sent, min(term_grace_s, remaining))
                else:
                    await asyncio.sleep(min(KILL_RETRY_PAUSE_S, remaining))
                stage = "kill"
        outcome.duration_s = time.monotonic() - started
        log.info(
            "unmounted",
            mountpoint=str(mp),
            attempts=outcome.attempts,
            termed=outcome.termed,
            killed=outcome.killed,
            duration_s=round(outcome.duration_s, 3),
        )
        await self.guard()
        return outcome
