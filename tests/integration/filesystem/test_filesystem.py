"""The filesystem adapter against real loop devices and real ext4 (root).

Durations are printed (run with -s to see them), never asserted.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harbor_ha.filesystem import (
    DeviceIOError,
    Filesystem,
    FormatRefused,
    FsckFailed,
    FsckVerdict,
    MountError,
    UnmountFailed,
    find_mount_users,
    is_mounted_from,
    mount_at,
    read_mountinfo,
)
from harbor_ha.runner import ProcessRunner
from lab.loopdev import (
    EioDevice,
    damage_fixable,
    damage_unfixable,
    destroy_superblock,
    prepare_root_like,
    write_root_fsck_wrapper,
)
from tests.integration.fixtures.filesystem import fs_settings, wait_for

pytestmark = pytest.mark.integration

LoopFactory = Callable[..., str]


def _fs(mountpoint: Path, **overrides: object) -> Filesystem:
    return Filesystem(fs_settings(mountpoint, **overrides), ProcessRunner())


def _figure(name: str, seconds: float) -> None:
    print(f"\nFIGURE {name}: {seconds * 1000:.1f} ms")


def _write_fails_eperm(directory: Path) -> bool:
    try:
        (directory / "stray-write").write_text("harbor data on the root fs")
    except PermissionError as exc:
        return exc.errno == errno.EPERM
    return False


def _mount_tmpfs(path: Path) -> None:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "harbor-ha-fs-sub", str(path)], check=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=False)


def _mkdir(path: Path) -> None:
    path.mkdir()


def _blkid_rc(dev: str) -> int:
    return subprocess.run(["blkid", "-p", dev], capture_output=True, check=False).returncode


def _lsattr_flags(path: Path) -> str:
    out = subprocess.run(["lsattr", "-d", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def _write_and_sync(path: Path) -> None:
    """What Harbor does on: write + fsync (expected to fail once the storage is gone)."""
    try:
        with open(path, "w") as f:
            f.write("x")
            os.fsync(f.fileno())
    except OSError as exc:
        print(f"\nwrite after losing the storage: {exc}")


# ------------------------------------------------------------------ fsck
async def test_fsck_clean(loop_device: LoopFactory, mountpoint: Path) -> None:
    """A fresh ext4: fsck -p exits 0 -> FsckOutcome CLEAN."""
    dev = loop_device()
    outcome = await _fs(mountpoint).fsck(dev, timeout_s=60)
    _figure("fsck_clean", outcome.duration_s)
    assert outcome.code == 0
    assert outcome.verdict is FsckVerdict.CLEAN


async def test_fsck_corrects_real_damage(loop_device: LoopFactory, mountpoint: Path) -> None:
    """A block bitmap damaged with debugfs: fsck -p fixes it, exit 1 -> go on; then clean."""
    dev = loop_device()
    damage_fixable(dev)
    fs = _fs(mountpoint)
    outcome = await fs.fsck(dev, timeout_s=60)
    _figure("fsck_corrected", outcome.duration_s)
    assert outcome.code == 1
    assert outcome.verdict is FsckVerdict.CORRECTED
    assert (await fs.fsck(dev, timeout_s=60)).code == 0


async def test_fsck_reboot_advised_goes_on(
    loop_device: LoopFactory, mountpoint: Path, fs_workdir: Path
) -> None:
    """Exit bit 2 for real: e2fsck repairs a read-only mounted ROOT fs (a chroot in a private
    mount namespace, see write_root_fsck_wrapper) -> code 3, REBOOT_ADVISED, no exception."""
    dev = loop_device()
    prepare_root_like(dev, fs_workdir)
    damage_fixable(dev)
    wrapper = write_root_fsck_wrapper(dev, fs_workdir)
    fs = _fs(mountpoint, fsck_bin=str(wrapper))
    outcome = await fs.fsck(dev, timeout_s=60)
    _figure("fsck_reboot_advised", outcome.duration_s)
    assert outcome.code & 2, outcome
    assert outcome.verdict is FsckVerdict.REBOOT_ADVISED
    assert "REBOOT" in outcome.summary
    rdev = os.stat(dev).st_rdev
    # the private namespace died with the wrapper: the device is mounted nowhere here
    assert all((m.major, m.minor) != (os.major(rdev), os.minor(rdev)) for m in read_mountinfo())


async def test_fsck_refuses_unfixable_damage(loop_device: LoopFactory, mountpoint: Path) -> None:
    """Root inode turned into a regular file: fsck -p exits 4 -> FsckFailed(4) with the output."""
    dev = loop_device()
    damage_unfixable(dev)
    with pytest.raises(FsckFailed) as caught:
        await _fs(mountpoint).fsck(dev, timeout_s=60)
    assert caught.value.code == 4
    assert "UNEXPECTED INCONSISTENCY" in caught.value.output_tail


async def test_fsck_destroyed_superblock(loop_device: LoopFactory, mountpoint: Path) -> None:
    """Zeroed primary superblock: fsck -p exits 8 -> FsckFailed(8)."""
    dev = loop_device()
    destroy_superblock(dev)
    with pytest.raises(FsckFailed) as caught:
        await _fs(mountpoint).fsck(dev, timeout_s=60)
    assert caught.value.code == 8


# ----------------------------------------------------------------- mount
async def test_mount_verified_via_mountinfo(loop_device: LoopFactory, mountpoint: Path) -> None:
    """mount creates the dir, mounts rw from the device (mountinfo major:minor), is idempotent,
    and refuses a mountpoint that holds another device."""
    dev, other = loop_device(), loop_device()
    fs = _fs(mountpoint)
    started = time.monotonic()
    await fs.mount(dev, timeout_s=30)
    _figure("mount", time.monotonic() - started)
    assert is_mounted_from(mountpoint, dev)
    assert not is_mounted_from(mountpoint, other)
    assert fs.is_read_only() is False
    (mountpoint / "blob").write_text("registry data")  # the mounted fs is writable
    await fs.mount(dev, timeout_s=30)  # idempotent
    with pytest.raises(MountError, match="already mounted"):
        await fs.mount(other, timeout_s=30)
    assert is_mounted_from(mountpoint, dev)


async def test_unformatted_device_is_never_formatted_implicitly(
    loop_device: LoopFactory, mountpoint: Path
) -> None:
    """A blank device: probe says None; format_new refuses without confirm; with confirm it
    formats, and then refuses a second time because a filesystem exists."""
    dev = loop_device(mkfs=False)
    fs = _fs(mountpoint)
    assert await fs.read_probe(dev, timeout_s=5) is True
    assert await fs.probe_filesystem(dev) is None
    with pytest.raises(FormatRefused, match="not confirmed"):
        await fs.format_new(dev, confirm=False)
    assert await fs.probe_filesystem(dev) is None
    started = time.monotonic()
    await fs.format_new(dev, confirm=True)
    _figure("format_new_64MiB", time.monotonic() - started)
    assert await fs.probe_filesystem(dev) == "ext4"
    with pytest.raises(FormatRefused, match="already holds ext4"):
        await fs.format_new(dev, confirm=True)


async def test_io_error_device_raises_and_is_never_formatted(
    eio_device: Callable[..., EioDevice], mountpoint: Path
) -> None:
    """A device whose reads fail with EIO (blkid exits 2 as for an empty device!): probe raises
    DeviceIOError, format_new refuses even when confirmed, read_probe is False."""
    dev = eio_device().path
    fs = _fs(mountpoint)
    assert _blkid_rc(dev) == 2  # the trap the predecessor fell into
    assert await fs.read_probe(dev, timeout_s=5) is False
    with pytest.raises(DeviceIOError):
        await fs.probe_filesystem(dev)
    with pytest.raises(FormatRefused, match="cannot be read"):
        await fs.format_new(dev, confirm=True)


async def test_lost_storage_under_a_mount_is_detected(
    eio_device: Callable[..., EioDevice], mountpoint: Path
) -> None:
    """Storage lost under a mounted ext4 (as after fencing): read_probe fails and, after a
    write, errors=remount-ro shows in mountinfo; unmount still succeeds."""
    eio = eio_device(fail=False, mkfs=True)
    fs = _fs(mountpoint, mount_options="noatime,errors=remount-ro")
    await fs.mount(eio.path, timeout_s=30)
    assert await fs.read_probe(eio.path, timeout_s=5) is True
    eio.fail()
    assert await fs.read_probe(eio.path, timeout_s=5) is False
    _write_and_sync(mountpoint / "after-fencing")  # ext4 meets the I/O error: remount-ro
    wait_for(fs.is_read_only, timeout_s=15)
    outcome = await fs.unmount(timeout_s=20, term_grace_s=1)
    _figure("unmount_lost_storage", outcome.duration_s)
    assert mount_at(mountpoint) is None


# ----------------------------------------------------------------- guard
async def test_guard_blocks_writes_to_the_bare_directory(
    loop_device: LoopFactory, mountpoint: Path
) -> None:
    """Unmounted: the bare dir is immutable (write -> EPERM); mounted: the fs is writable and
    its root is not made immutable; unmounted again: guarded again. guard() is idempotent."""
    dev = loop_device()
    fs = _fs(mountpoint)
    await fs.guard()
    await fs.guard()
    assert fs.is_guarded() is True
    assert _write_fails_eperm(mountpoint)
    await fs.mount(dev, timeout_s=30)
    assert fs.is_guarded() is None  # the covered dir cannot be seen without touching the mount
    await fs.guard()  # mounted: must not touch the mounted root
    assert "i" not in _lsattr_flags(mountpoint)
    (mountpoint / "ok").write_text("data on the image")
    await fs.unmount(timeout_s=20, term_grace_s=1)
    assert fs.is_guarded() is True
    assert _write_fails_eperm(mountpoint)


async def test_guard_disabled(mountpoint: Path) -> None:
    """guard_mountpoint=False: guard() leaves the existing bare directory writable."""
    _mkdir(mountpoint)
    fs = _fs(mountpoint, guard_mountpoint=False)
    await fs.guard()
    assert fs.is_guarded() is False
    assert not _write_fails_eperm(mountpoint)


async def test_guard_on_a_filesystem_without_inode_flags(ramfs_dir: Path) -> None:
    """chattr unsupported (ramfs): guard() warns instead of failing, is_guarded() says None."""
    fs = _fs(ramfs_dir / "mnt")
    await fs.guard()
    assert (ramfs_dir / "mnt").is_dir()
    assert fs.is_guarded() is None


# --------------------------------------------------------------- unmount
async def test_unmount_idempotent(loop_device: LoopFactory, mountpoint: Path) -> None:
    """Unmounting twice succeeds; the second call reports already_unmounted and 0 attempts."""
    dev = loop_device()
    fs = _fs(mountpoint)
    await fs.mount(dev, timeout_s=30)
    first = await fs.unmount(timeout_s=20, term_grace_s=1)
    _figure("unmount_plain", first.duration_s)
    assert first.attempts == 1 and not first.termed and not first.killed
    second = await fs.unmount(timeout_s=20, term_grace_s=1)
    assert second.already_unmounted and second.attempts == 0
    assert mount_at(mountpoint) is None


async def test_unmount_terms_a_process_holding_the_mount(
    loop_device: LoopFactory,
    mountpoint: Path,
    mount_users: Callable[..., subprocess.Popen[bytes]],
) -> None:
    """A sleep with its cwd and an open file in the mount: plain umount is busy, TERM frees it."""
    dev = loop_device()
    fs = _fs(mountpoint)
    await fs.mount(dev, timeout_s=30)
    user = mount_users(["sh", "-c", "exec sleep 600 3>held-open"], cwd=mountpoint)
    wait_for(lambda: user.pid in find_mount_users(mountpoint))
    outcome = await fs.unmount(timeout_s=20, term_grace_s=5)
    _figure("unmount_with_term", outcome.duration_s)
    print(f"unmount stages={outcome.stages} termed={outcome.termed} killed={outcome.killed}")
    assert mount_at(mountpoint) is None
    assert user.pid in outcome.termed
    assert outcome.killed == []
    assert user.wait(timeout=10) == -15
    assert fs.is_guarded() is True


async def test_unmount_kills_a_process_ignoring_term(
    loop_device: LoopFactory,
    mountpoint: Path,
    mount_users: Callable[..., subprocess.Popen[bytes]],
) -> None:
    """A shell that ignores TERM (and its sleeps, which inherit that) is KILLed after the grace."""
    dev = loop_device()
    fs = _fs(mountpoint)
    await fs.mount(dev, timeout_s=30)
    user = mount_users(
        ["bash", "-c", f"trap '' TERM; cd {mountpoint}; while :; do sleep 0.1; done"],
        cwd=mountpoint.parent,
    )
    wait_for(lambda: user.pid in find_mount_users(mountpoint))
    outcome = await fs.unmount(timeout_s=20, term_grace_s=1)
    _figure("unmount_with_kill", outcome.duration_s)
    print(f"unmount stages={outcome.stages} termed={outcome.termed} killed={outcome.killed}")
    assert mount_at(mountpoint) is None
    assert user.pid in outcome.termed
    assert user.pid in outcome.killed
    assert user.wait(timeout=10) == -9


async def test_unmount_fails_when_it_cannot_end_unmounted(
    loop_device: LoopFactory, mountpoint: Path
) -> None:
    """Busy with no process to blame (a mount left inside it, as a stray bind mount would be):
    every stage runs until the timeout, then UnmountFailed with the attempts (-> FENCED_SELF)."""
    dev = loop_device()
    fs = _fs(mountpoint)
    await fs.mount(dev, timeout_s=30)
    sub = mountpoint / "leftover"
    _mount_tmpfs(sub)
    try:
        with pytest.raises(UnmountFailed) as caught:
            await fs.unmount(timeout_s=1.5, term_grace_s=0.3)
        outcome = caught.value.outcome
        _figure("unmount_failed_after", outcome.duration_s)
        print(f"unmount stages={outcome.stages}")
        assert outcome.attempts >= 3
        assert outcome.termed == [] and outcome.killed == []
        assert is_mounted_from(mountpoint, dev)
    finally:
        _umount(sub)
    await fs.unmount(timeout_s=20, term_grace_s=1)
    assert mount_at(mountpoint) is None
