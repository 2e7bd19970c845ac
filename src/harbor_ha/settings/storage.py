"""Settings of the storage: the Ceph RBD image and the filesystem on it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr


class CephSettings(BaseModel):
    """The Ceph cluster, the user and the RBD image; fencing's blocklist expiry."""

    ceph_mon_host: str | None = Field(
        default=None,
        description="Monitor addresses (comma-separated), passed as -m. Unset: from ceph.conf.",
    )
    ceph_conf: Path | None = Field(
        default=None,
        description="ceph.conf passed as -c. Unset: Ceph's default search.",
    )
    ceph_user: str = Field(
        default="harbor",
        description="Ceph client id without the 'client.' prefix.",
    )
    ceph_user_key: SecretStr | None = Field(
        default=None,
        description="The user's secret key. Written to a 0600 keyring in runtime_dir, never argv.",
    )
    ceph_keyring: Path | None = Field(
        default=None,
        description="Keyring file for the user (alternative to ceph_user_key).",
    )
    ceph_pool: str = Field(
        default="",
        description="Required in the rbd mode. RBD pool of Harbor's image.",
    )
    ceph_image: str = Field(
        default="",
        description=(
            "Required in the rbd mode. RBD image holding Harbor's data (feature exclusive-lock "
            "required)."
        ),
    )
    rbd_bin: str = Field(
        default="rbd",
        description="rbd executable; a site (or the test suite) may point it at a wrapper.",
    )
    ceph_bin: str = Field(
        default="ceph",
        description="ceph executable (blocklist add/ls).",
    )
    rbd_map_options: str = Field(
        default="osd_request_timeout=60,noshare",
        pattern=r"^[A-Za-z0-9_=.,]*$",
        description=(
            "krbd map options added after 'exclusive' (comma-separated, rbd device map -o). "
            "osd_request_timeout (seconds) bounds every OSD request: without it a node cut "
            "from Ceph hangs fsync and even 'rbd device unmap -o force' in D state for as "
            "long as the cut lasts (273 s in one run on the VM tier); with it they fail with "
            "EIO after the timeout and the demotion can finish. 60 s stays above Ceph's "
            "osd_heartbeat_grace (20 s) plus peering, so a single OSD failure in a healthy "
            "cluster stalls I/O but does not fail it. noshare gives each map its own Ceph "
            "client: krbd otherwise reuses a client left from an earlier mapping, and after "
            "this node was fenced that client is blocklisted, so the next map fails with "
            "ESHUTDOWN (108) (seen on the VM tier after a cut and a forced unmap)."
        ),
    )
    blocklist_expire_s: int = Field(
        default=86400,
        ge=600,
        description=(
            "Expiry of the blocklist entries fencing adds. One day: a fenced node must have "
            "rebooted or demoted long before its entry lapses. Entries are never removed."
        ),
    )


class FilesystemSettings(BaseModel):
    """The filesystem on the image: type, mountpoint, guard and the tools."""

    mountpoint: Path = Field(
        default=Path("/data"),
        description="Where the image's filesystem is mounted (Harbor's data_volume).",
    )
    fs_type: str = Field(
        default="ext4",
        description="Filesystem on the image; fsck and mount use it, a different one aborts.",
    )
    mount_options: str = Field(
        default="noatime",
        description="Options for mount -o.",
    )
    guard_mountpoint: bool = Field(
        default=True,
        description="chattr +i the bare mountpoint so nothing can write to the root fs under it.",
    )
    fsck_bin: str = Field(
        default="fsck",
        description="fsck executable (run as `fsck -t TYPE -p`).",
    )
    blkid_bin: str = Field(
        default="blkid",
        description="blkid executable (filesystem probe before fsck/mount).",
    )
    mount_bin: str = Field(default="mount", description="mount executable.")
    umount_bin: str = Field(default="umount", description="umount executable.")
    chattr_bin: str = Field(
        default="chattr",
        description="chattr executable (mountpoint guard).",
    )
    mkfs_bin: str = Field(
        default="mkfs",
        description=(
            "Run as `mkfs -t FS_TYPE DEV` ONLY by the explicit operator format command, on a "
            "device that reads fine and holds no filesystem. No automatic step ever formats."
        ),
    )
