"""The filesystem adapter's errors (the unmount's, which carry its outcome, are in unmount)."""

from __future__ import annotations


class FilesystemError(Exception):
    """Base of this package's errors."""


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
