"""`harbor-ha check` in the shared mode: what is at the mountpoint against the configured
shared filesystem (nothing yet: OK, the daemon mounts it; another filesystem: FAIL), the
object-storage variant's note, and the tools it needs (no keepalived)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harbor_ha.commands.preflight import _binaries, drain_covers_detection, shared_mount
from harbor_ha.settings import Settings, load_settings


def settings(mountpoint: Path, **extra: str) -> Settings:
    return load_settings(None, {
        "HARBOR_HA_MODE": "shared", "HARBOR_HA_VIP": "10.0.0.100/24",
        "HARBOR_HA_INTERFACE": "eth0", "HARBOR_HA_MOUNTPOINT": str(mountpoint),
        "HARBOR_HA_SHARED_FS_TYPE": "nfs4", "HARBOR_HA_SHARED_FS_SOURCE": "nas:/export",
        "HARBOR_HA_KEEPALIVED_BIN": "no-such-keepalived", **extra,
    })  # fmt: skip


def test_nothing_mounted_yet_is_ok_and_names_what_the_daemon_mounts(tmp_path: Path) -> None:
    """A bare mountpoint: OK, saying the daemon mounts the configured filesystem there."""
    found = shared_mount(settings(tmp_path / "data"))
    assert [level for level, _ in found] == ["OK"]
    assert "nfs4 nas:/export" in found[0][1]


def test_the_object_storage_variant_mounts_nothing(tmp_path: Path) -> None:
    """HARBOR_HA_SHARED_FS_TYPE=none: OK, nothing to mount."""
    found = shared_mount(settings(tmp_path / "data", HARBOR_HA_SHARED_FS_TYPE="none"))
    assert found[0][0] == "OK" and "object storage" in found[0][1]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_another_filesystem_at_the_mountpoint_fails(tmp_path: Path) -> None:
    """A real tmpfs mounted where the NFS export should be: FAIL, naming both."""
    mp = tmp_path / "data"
    mp.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "harbor-ha-check", str(mp)], check=True)
    try:
        found = shared_mount(settings(mp))
    finally:
        subprocess.run(["umount", str(mp)], check=True)
    assert found[0][0] == "FAIL" and "harbor-ha-check (tmpfs), not nas:/export" in found[0][1]


def test_no_keepalived_is_needed_but_the_mount_helper_is(tmp_path: Path) -> None:
    """The shared mode's tools: no keepalived (a missing one is no finding), the mount
    helper of its filesystem (mount.nfs for nfs4) and ceph-fuse for ceph-fuse."""
    names = [m for _, m in _binaries(settings(tmp_path / "data"))]
    assert not any("keepalived" in m for m in names)
    fuse = settings(tmp_path / "data", HARBOR_HA_SHARED_FS_TYPE="ceph-fuse",
                    HARBOR_HA_CEPH_FUSE_BIN="no-such-ceph-fuse")  # fmt: skip
    assert "ceph-fuse: executable 'no-such-ceph-fuse' not found on PATH" in [
        m for _, m in _binaries(fuse)
    ]


def test_a_drain_shorter_than_the_balancers_detection_is_a_warning(tmp_path: Path) -> None:
    """The drain must outlast the load balancer's detection (fall x interval + timeout of the
    rendered checks): 10 s against the default 3 s is OK; 2 s against 2 x 2 + 1 = 5 s is a
    WARN naming both figures and the gap."""
    assert drain_covers_detection(settings(tmp_path))[0][0] == "OK"
    slow = settings(tmp_path, HARBOR_HA_DRAIN_WAIT_S="2", HARBOR_HA_LB_CHECK_INTERVAL_S="2")
    ((level, text),) = drain_covers_detection(slow)
    assert level == "WARN" and "2 s is shorter than" in text and "5 s" in text
    assert "last 3 s fail" in text
