"""The shared mode's filesystem, pure (filesystem/shared_spec.py, mountinfo.py) and its
settings: the mount command per type, the verdict on what mountinfo shows (type and source,
read-only), the settings each type requires, and that no step argv of this mode can be fsck
or mkfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_ha.filesystem.mountinfo import MountInfo, normalize_source, parse_mountinfo
from harbor_ha.filesystem.shared_spec import MountFinding, SharedSpec, split_ceph_source
from harbor_ha.settings import SettingsError, load_settings

MP = Path("/data")
BASE = {"HARBOR_HA_VIP": "10.0.0.100/24", "HARBOR_HA_INTERFACE": "eth1", "HARBOR_HA_MODE": "shared"}

# Real lines of /proc/self/mountinfo (ceph-fuse from this lab; kernel CephFS and NFS as the
# kernel writes them).
FUSE = "46 27 0:40 / /data rw,nosuid,nodev,relatime - fuse.ceph-fuse ceph-fuse rw,user_id=0"
KCEPH = "50 27 0:41 / /data rw,relatime - ceph 10.0.0.1:6789,10.0.0.2:6789:/harbor rw,name=h"
NFS4 = "51 27 0:42 / /data rw,relatime - nfs4 nas:/export/harbor rw,vers=4.2,hard"
EXT4 = "52 27 253:0 / /data rw,relatime - ext4 /dev/rbd0 rw"
NFS_RO = "53 27 0:43 / /data ro,relatime - nfs nas:/export/harbor ro,vers=3"


def spec(fs_type: str, source: str = "", options: str = "") -> SharedSpec:
    return SharedSpec(fs_type, source, options, MP)


def top(line: str) -> MountInfo:
    (info,) = parse_mountinfo(line)
    return info


@pytest.mark.parametrize(
    ("s", "line", "found"),
    [
        (spec("ceph-fuse", "m:6789:/harbor"), FUSE, MountFinding.OURS),
        (spec("ceph", "10.0.0.1:6789,10.0.0.2:6789:/harbor"), KCEPH, MountFinding.OURS),
        (spec("ceph", "10.0.0.1:6789,10.0.0.2:6789:/harbor/"), KCEPH, MountFinding.OURS),
        (spec("ceph", "10.0.0.1:6789,10.0.0.2:6789:/other"), KCEPH, MountFinding.FOREIGN),
        (spec("nfs", "nas:/export/harbor"), NFS4, MountFinding.OURS),
        (spec("nfs4", "nas:/export/harbor"), NFS4, MountFinding.OURS),
        (spec("nfs4", "nas:/export/other"), NFS4, MountFinding.FOREIGN),
        (spec("nfs", "nas:/export/harbor"), NFS_RO, MountFinding.READ_ONLY),
        (spec("ceph-fuse", "m:6789:/harbor"), KCEPH, MountFinding.FOREIGN),
        (spec("nfs", "nas:/export/harbor"), EXT4, MountFinding.FOREIGN),
    ],
)
def test_the_mount_is_verified_by_type_and_source(
    s: SharedSpec, line: str, found: MountFinding
) -> None:
    """The top mount at the mountpoint is ours only with the configured type (nfs also as
    nfs4; ceph-fuse as fuse.ceph-fuse) and source (trailing slashes aside; ceph-fuse always
    shows ``ceph-fuse``), read-write."""
    assert s.finding(top(line))[0] is found


def test_nothing_mounted_is_its_own_finding() -> None:
    """No mount at the mountpoint: NOT_MOUNTED (the mount step mounts; the probe drains)."""
    assert spec("nfs", "nas:/x").finding(None)[0] is MountFinding.NOT_MOUNTED


def test_the_mount_commands() -> None:
    """mount -t TYPE [-o OPTS] SOURCE MP; ceph-fuse with the Ceph user, conf and keyring, the
    monitors (-m) and the path (-r) split from the source."""
    assert spec("nfs4", "nas:/e", "hard,vers=4.1").argv(
        mount_bin="mount", ceph_fuse_bin="ceph-fuse", ceph_user="harbor"
    ) == ["mount", "-t", "nfs4", "-o", "hard,vers=4.1", "nas:/e", "/data"]
    assert spec("ceph", "m1:6789:/h").argv(
        mount_bin="mount", ceph_fuse_bin="ceph-fuse", ceph_user="harbor"
    ) == ["mount", "-t", "ceph", "m1:6789:/h", "/data"]
    assert spec("ceph-fuse", "m1:6789,m2:6789:/h").argv(
        mount_bin="mount", ceph_fuse_bin="/usr/bin/ceph-fuse", ceph_user="harbor",
        ceph_conf=Path("/etc/ceph/c.conf"), ceph_keyring=Path("/etc/ceph/k"),
    ) == ["/usr/bin/ceph-fuse", "--id", "harbor", "-c", "/etc/ceph/c.conf", "-k", "/etc/ceph/k",
          "-m", "m1:6789,m2:6789", "-r", "/h", "/data"]  # fmt: skip


def test_ceph_sources_split_into_monitors_and_path() -> None:
    """The monitors and the CephFS path; a source without a path mounts the root."""
    assert split_ceph_source("a:6789,b:6789:/x/y") == ("a:6789,b:6789", "/x/y")
    assert split_ceph_source("a:6789") == ("a:6789", "/")
    assert normalize_source("nas:/export/") == "nas:/export"
    assert normalize_source("mon:/") == "mon:/"


@pytest.mark.parametrize("fs_type", ["ceph", "ceph-fuse", "nfs", "nfs4"])
def test_no_mount_command_of_the_mode_is_fsck_or_mkfs(fs_type: str) -> None:
    """Safety: the only command the shared mount runs is mount or ceph-fuse, never a
    checker or a formatter (whatever the settings name)."""
    argv = spec(fs_type, "m:6789:/h").argv(
        mount_bin="mount", ceph_fuse_bin="ceph-fuse", ceph_user="harbor"
    )
    assert not any("fsck" in a or "mkfs" in a for a in argv)


def test_the_shared_mode_requires_its_filesystem_type_then_its_source() -> None:
    """HARBOR_HA_MODE=shared needs HARBOR_HA_SHARED_FS_TYPE (not the Ceph pool or image);
    a filesystem needs its source; the object-storage variant needs neither a source nor
    a mount, but must judge the registry component."""
    with pytest.raises(SettingsError) as info:
        load_settings(None, BASE)
    assert info.value.problems == [
        "HARBOR_HA_SHARED_FS_TYPE: required, not set (HARBOR_HA_MODE=shared)"
    ]
    with pytest.raises(SettingsError) as info:
        load_settings(None, {**BASE, "HARBOR_HA_SHARED_FS_TYPE": "nfs"})
    assert info.value.problems == [
        "HARBOR_HA_SHARED_FS_SOURCE: required, not set (HARBOR_HA_MODE=shared, "
        "HARBOR_HA_SHARED_FS_TYPE=nfs)"
    ]
    s = load_settings(None, {**BASE, "HARBOR_HA_SHARED_FS_TYPE": "none"})
    assert s.object_storage and s.drain_wait_s == 10.0
    with pytest.raises(SettingsError) as info:
        load_settings(None, {**BASE, "HARBOR_HA_SHARED_FS_TYPE": "none",
                             "HARBOR_HA_HARBOR_CRITICAL_COMPONENTS": "core,database"})  # fmt: skip
    assert "must include registry" in info.value.problems[0]
    s = load_settings(None, {**BASE, "HARBOR_HA_SHARED_FS_TYPE": "ceph-fuse",
                             "HARBOR_HA_SHARED_FS_SOURCE": "m:6789:/h",
                             "HARBOR_HA_DRAIN_WAIT_S": "4"})  # fmt: skip
    assert (s.shared_fs_type, s.drain_wait_s, s.object_storage) == ("ceph-fuse", 4.0, False)
