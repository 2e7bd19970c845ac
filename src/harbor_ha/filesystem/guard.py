"""The mountpoint guard (safety rule 5): the bare directory is immutable while unmounted.

While nothing is mounted on it, the mountpoint directory is ``chattr +i`` so a
Harbor started by mistake cannot write onto the root filesystem.  The guard
never touches a mounted filesystem's root.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path

import structlog

from harbor_ha.filesystem.mounted import mount_at
from harbor_ha.runner import CommandError, Runner
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.filesystem")

FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long) on 64-bit Linux
FS_IMMUTABLE_FL = 0x00000010


def is_guarded(mountpoint: Path) -> bool | None:
    """Is the bare mountpoint directory immutable?

    None when it cannot be known without touching a mounted filesystem (the
    mountpoint is mounted) or when its filesystem has no inode flags.
    False when the directory does not exist.
    """
    if mount_at(mountpoint) is not None:
        return None
    try:
        fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK)
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


async def guard(runner: Runner, settings: Settings, mountpoint: Path) -> None:
    """chattr +i the bare mountpoint directory while nothing is mounted on it.

    When the mountpoint is mounted this does nothing (mount guards before
    mounting, unmount after).  A filesystem without inode flags is logged, not
    raised: the preflight reports it via is_guarded().
    """
    mp = mountpoint
    if not settings.guard_mountpoint:
        log.info("guard_disabled", mountpoint=str(mp))
        return
    if mount_at(mp) is not None:
        log.info("guard_skipped_mounted", mountpoint=str(mp))
        return
    try:
        mp.mkdir(parents=True, exist_ok=True)
        if is_guarded(mp):
            return
    except OSError as exc:
        log.warning("guard_failed", mountpoint=str(mp), error=str(exc))
        return
    argv = [settings.chattr_bin, "+i", str(mp)]
    try:
        result = await runner.run(argv, timeout_s=settings.command_timeout_s)
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
