"""Is it mounted?  The one place that answers, from /proc/self/mountinfo (safety rule 5).

"Mounted" means the mount table has a mount at exactly the mountpoint whose
major:minor is the device's st_rdev: never a directory listing, never a stat
under the mountpoint.  :func:`is_mounted_from` is the authoritative question
("is device D mounted at M?"); :func:`mount_at` says what, if anything, is
mounted at M; :func:`is_read_only` whether that mount went read-only.  Each
takes an already read table (``infos``) so several questions can share one read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from harbor_ha.filesystem.errors import FilesystemError
from harbor_ha.filesystem.mountinfo import MountInfo, parse_mountinfo, top_mount

MOUNTINFO = Path("/proc/self/mountinfo")


def read_mountinfo(at: Path | str | None = None) -> list[MountInfo]:
    """This process's mount table (reads procfs only, never the mounted filesystems); with
    ``at``, only the mounts that may be at that path (see :func:`parse_mountinfo`)."""
    return parse_mountinfo(MOUNTINFO.read_text(errors="surrogateescape"), at)


def mount_at(mountpoint: Path | str, infos: Sequence[MountInfo] | None = None) -> MountInfo | None:
    """The top-most mount at exactly ``mountpoint`` (the one no other mount there covers)."""
    return top_mount(read_mountinfo(mountpoint) if infos is None else infos, mountpoint)


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
