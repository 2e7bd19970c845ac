"""The filesystem on the mapped image: probe, fsck, mount, guard, unmount.

Safety rules this package carries (docs/design.md):

- Rule 3: nothing here formats a device on its own.  ``probe_filesystem`` tells
  "no filesystem" (blkid exit 2 AND the device reads fine) from "I/O error"
  (:mod:`.probe`); ``format_new`` is the only mkfs and is reached only by an
  explicit operator command with ``confirm=True`` (:mod:`.mkfs`).
- Rule 4: fsck exit codes 0/1 go on, 2 (reboot advised) logs a warning and goes
  on, >= 4 raises :class:`FsckFailed` (:mod:`.fsck`).
- Rule 5: "mounted" means /proc/self/mountinfo has a mount at exactly the
  mountpoint whose major:minor is the device's st_rdev (never a directory
  listing): :func:`is_mounted_from` in :mod:`.mounted` is the one question,
  over the pure parser in :mod:`.mountinfo`.  While unmounted, the bare
  directory is ``chattr +i`` (:mod:`.guard`) so a Harbor started by mistake
  cannot write onto the root filesystem.
- Rule 6: unmount is staged (plain, TERM the users, KILL the users, retry;
  :mod:`.unmount`) and the users are found with readlink on /proc only
  (:mod:`.users`): after fencing, any stat or open under the mountpoint can
  hang in D state.

:class:`Filesystem` (:mod:`.adapter`) is what the daemon holds.
"""

from harbor_ha.filesystem.adapter import Filesystem
from harbor_ha.filesystem.errors import (
    DeviceIOError,
    FilesystemError,
    FormatFailed,
    FormatRefused,
    FsckFailed,
    MountError,
    ProbeError,
)
from harbor_ha.filesystem.fsck import FsckOutcome, FsckVerdict, fsck_verdict
from harbor_ha.filesystem.guard import FS_IMMUTABLE_FL, FS_IOC_GETFLAGS
from harbor_ha.filesystem.mounted import (
    MOUNTINFO,
    device_numbers,
    is_mounted_from,
    is_read_only,
    mount_at,
    read_mountinfo,
)
from harbor_ha.filesystem.mountinfo import MountInfo, parse_mountinfo
from harbor_ha.filesystem.unmount import (
    KILL_RETRY_PAUSE_S,
    UMOUNT_BUSY_POLL_S,
    UnmountFailed,
    UnmountOutcome,
)
from harbor_ha.filesystem.users import find_mount_users

__all__ = [
    "FS_IMMUTABLE_FL",
    "FS_IOC_GETFLAGS",
    "KILL_RETRY_PAUSE_S",
    "MOUNTINFO",
    "UMOUNT_BUSY_POLL_S",
    "DeviceIOError",
    "Filesystem",
    "FilesystemError",
    "FormatFailed",
    "FormatRefused",
    "FsckFailed",
    "FsckOutcome",
    "FsckVerdict",
    "MountError",
    "MountInfo",
    "ProbeError",
    "UnmountFailed",
    "UnmountOutcome",
    "device_numbers",
    "find_mount_users",
    "fsck_verdict",
    "is_mounted_from",
    "is_read_only",
    "mount_at",
    "parse_mountinfo",
    "read_mountinfo",
]
