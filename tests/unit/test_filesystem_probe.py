"""The filesystem's pure pieces around its commands: blkid output, probe and fsck argv."""

from __future__ import annotations

from pathlib import Path

from harbor_ha.filesystem.fsck import fsck_argv
from harbor_ha.filesystem.mountinfo import normalize, parse_mountinfo, top_mount
from harbor_ha.filesystem.probe import parse_blkid_export
from tests.fakes import example_settings


def test_blkid_export_parsed() -> None:
    """`blkid -p -o export` KEY=value lines (a value may contain '=') become a dict."""
    text = "DEVNAME=/dev/rbd0\nUUID=ab=cd\nTYPE=ext4\nUSAGE=filesystem\n"
    assert parse_blkid_export(text) == {
        "DEVNAME": "/dev/rbd0", "UUID": "ab=cd", "TYPE": "ext4", "USAGE": "filesystem",
    }  # fmt: skip
    assert parse_blkid_export("") == {}


def test_fsck_argv_preens_the_configured_type() -> None:
    """fsck runs as `fsck -t FS_TYPE -p DEV` (preen: only what is safe unattended)."""
    s = example_settings(fsck_bin="/x/fsck", fs_type="xfs")
    assert fsck_argv(s, "/dev/rbd0") == ["/x/fsck", "-t", "xfs", "-p", "/dev/rbd0"]


def test_normalize_is_lexical() -> None:
    """Normalisation never touches the filesystem: trailing slashes and '..' fold lexically."""
    assert normalize("/data/") == "/data"
    assert normalize(Path("/data/sub/..")) == "/data"


def test_top_mount_prefers_the_covering_mount() -> None:
    """Two mounts stacked on one path: the one whose id is no other's parent is on top."""
    infos = parse_mountinfo(
        "30 1 8:1 / /data rw - ext4 /dev/sda1 rw\n40 30 252:0 / /data rw - ext4 /dev/rbd0 rw\n"
    )
    top = top_mount(infos, "/data/")
    assert top is not None and top.source == "/dev/rbd0"
    assert top_mount(infos, "/other") is None
