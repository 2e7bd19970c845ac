"""The /proc/self/mountinfo grammar (proc(5)): pure parsing and the top-most mount at a path.

No I/O here: :mod:`harbor_ha.filesystem.mounted` reads the table and asks the questions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass


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


def escape(path: str) -> str:
    """``path`` as the kernel writes it in mountinfo (the inverse of :func:`_unescape`)."""
    for char, code in (("\\", "\\134"), (" ", "\\040"), ("\t", "\\011"), ("\n", "\\012")):
        path = path.replace(char, code)
    return path


def parse_mountinfo(text: str, at: os.PathLike[str] | str | None = None) -> list[MountInfo]:
    """Parse mountinfo text (proc(5)): optional fields end at the lone '-' separator.

    With ``at``, only the lines that can be a mount at exactly that path are parsed (a plain
    substring test on the escaped path as a whole field first): the answer of
    :func:`top_mount` for ``at`` is the same, and a master asks it every probe, over a table
    that holds every container's overlay mount."""
    infos: list[MountInfo] = []
    lines = text.splitlines()
    if at is not None:
        needle = f" {escape(normalize(at))} "
        lines = [line for line in lines if needle in line]
    for line in lines:
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


def normalize(path: os.PathLike[str] | str) -> str:
    """The absolute, normalised form of ``path``, computed lexically.

    Lexical only: realpath would lstat the mountpoint, i.e. the mounted root,
    which can hang once the device is fenced.  The mountpoint must not contain
    symlinks.
    """
    return os.path.normpath(os.path.abspath(os.fspath(path)))


def top_mount(infos: Sequence[MountInfo], mountpoint: os.PathLike[str] | str) -> MountInfo | None:
    """The top-most mount at exactly ``mountpoint`` in ``infos`` (the one no other there covers)."""
    target = normalize(mountpoint)
    here = [m for m in infos if m.mountpoint == target]
    if not here:
        return None
    covered = {m.parent_id for m in here}
    top = [m for m in here if m.mount_id not in covered]
    return (top or here)[-1]


def normalize_source(source: str) -> str:
    """A network filesystem's source as compared: ``host:/path`` with the path's trailing
    slashes dropped (``server:/export/`` is ``server:/export``; ``mon:/`` stays)."""
    head, sep, path = source.strip().rpartition(":/")
    if not sep:
        return source.strip()
    return f"{head}:/{path.rstrip('/')}"


def is_mount_of(info: MountInfo, fstypes: frozenset[str], source: str) -> bool:
    """Is ``info`` a mount of one of ``fstypes`` from ``source`` (compared normalized)?"""
    return info.fstype in fstypes and normalize_source(info.source) == normalize_source(source)
