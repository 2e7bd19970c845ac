"""The shared mode's filesystem, pure: the mount command per type, what mountinfo must show
for it, and the verdict on the mount found at the mountpoint.  No I/O here (the adapter is
:mod:`harbor_ha.filesystem.shared`).

What mountinfo shows (the verification compares the type and the source):

- CephFS, kernel client: type ``ceph``, source as given (``mon1:6789,mon2:6789:/harbor``);
- CephFS, ceph-fuse: type ``fuse.ceph-fuse``, source ``ceph-fuse`` (whatever path it mounts);
- NFS: type ``nfs`` (v2/v3) or ``nfs4`` (``-t nfs`` with vers=4 shows as ``nfs4``), source
  as given (``server:/export``).

No fsck and no mkfs exist for these: a shared filesystem is never checked or formatted by a
node (the other nodes use it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from harbor_ha.filesystem.mountinfo import MountInfo, is_mount_of

FUSE_SOURCE = "ceph-fuse"
"""The source ceph-fuse's mounts show in mountinfo."""

MOUNTINFO_TYPES: dict[str, frozenset[str]] = {
    "ceph": frozenset({"ceph"}),
    "ceph-fuse": frozenset({"fuse.ceph-fuse"}),
    "nfs": frozenset({"nfs", "nfs4"}),
    "nfs4": frozenset({"nfs4"}),
}
"""The configured type -> the types mountinfo may show for it."""


class MountFinding(enum.StrEnum):
    """What is at the mountpoint, against the configured shared filesystem."""

    OURS = "the configured filesystem"
    NOT_MOUNTED = "nothing mounted"
    FOREIGN = "another filesystem"
    READ_ONLY = "the configured filesystem, read-only"


@dataclass(frozen=True)
class SharedSpec:
    """The configured shared filesystem (``fs_type`` "none": the object-storage variant)."""

    fs_type: str
    source: str
    options: str
    mountpoint: Path

    @property
    def mounts(self) -> bool:
        """False for the object-storage variant: nothing to mount, verify or unmount."""
        return self.fs_type != "none"

    @property
    def shown_types(self) -> frozenset[str]:
        return MOUNTINFO_TYPES[self.fs_type]

    @property
    def shown_source(self) -> str:
        return FUSE_SOURCE if self.fs_type == "ceph-fuse" else self.source

    def describe(self) -> str:
        return f"{self.fs_type} {self.source} at {self.mountpoint}"

    def argv(
        self,
        *,
        mount_bin: str,
        ceph_fuse_bin: str,
        ceph_user: str,
        ceph_conf: Path | None = None,
        ceph_keyring: Path | None = None,
    ) -> list[str]:
        """The mount command: ``mount -t TYPE [-o OPTIONS] SOURCE MP``, or for ceph-fuse
        ``ceph-fuse --id USER [-c CONF] [-k KEYRING] -m MONS -r PATH [-o OPTIONS] MP``."""
        opts = ["-o", self.options] if self.options.strip() else []
        mp = str(self.mountpoint)
        if self.fs_type != "ceph-fuse":
            return [mount_bin, "-t", self.fs_type, *opts, self.source, mp]
        mons, path = split_ceph_source(self.source)
        conf = ["-c", str(ceph_conf)] if ceph_conf is not None else []
        keyring = ["-k", str(ceph_keyring)] if ceph_keyring is not None else []
        return [ceph_fuse_bin, "--id", ceph_user, *conf, *keyring, "-m", mons, "-r", path,
                *opts, mp]  # fmt: skip

    def finding(self, top: MountInfo | None) -> tuple[MountFinding, str]:
        """The verdict on the top-most mount at the mountpoint (None: nothing there)."""
        if top is None:
            return MountFinding.NOT_MOUNTED, f"nothing is mounted at {self.mountpoint}"
        if not is_mount_of(top, self.shown_types, self.shown_source):
            return MountFinding.FOREIGN, (
                f"{self.mountpoint} is mounted from {top.source} ({top.fstype}), not "
                f"{self.shown_source} ({'/'.join(sorted(self.shown_types))})"
            )
        if top.read_only:
            return MountFinding.READ_ONLY, f"{self.mountpoint} is mounted read-only"
        return MountFinding.OURS, ""


def split_ceph_source(source: str) -> tuple[str, str]:
    """``mon1:6789,mon2:6789:/harbor`` -> (``mon1:6789,mon2:6789``, ``/harbor``); a source
    without a path mounts the filesystem's root."""
    mons, sep, path = source.rpartition(":/")
    if not sep:
        return source, "/"
    return mons, "/" + path
