"""The Ceph adapter against a real cluster (mon + memstore OSD), as the restricted client.harbor.

The "other node" is a second client on the same image: the krbd stand-in
(lab/krbd_standin.py: rbd-fuse + loop device) with its own state dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harbor_ha.ceph import Ceph, CephUnreachable
from harbor_ha.runner import CommandResult, ProcessRunner
from lab.ceph import CephImage, random_loopback

pytestmark = pytest.mark.integration


class Mounts:
    """ext4 mounts made by a test; unmounted at teardown (before the image is unmapped)."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def mkfs_and_mount(self, dev: str) -> Path:
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
             dev],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return self.mount(dev)

    def mount(self, dev: str) -> Path:
        point = Path(tempfile.mkdtemp(prefix="hhc-mnt-"))
        subprocess.run(["mount", dev, str(point)], check=True, capture_output=True, timeout=30)
        self.points.append(point)
        return point

    def umount(self, point: Path) -> None:
        res = subprocess.run(["umount", str(point)], capture_output=True, timeout=30, check=False)
        if res.returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)
        self.points.remove(point)
        with contextlib.suppress(OSError):
            point.rmdir()


@pytest.fixture
def mounts(ceph_image: CephImage) -> Iterator[Mounts]:
    """Track the test's ext4 mounts and unmount them (lazily if need be) at teardown."""
    m = Mounts()
    try:
        yield m
    finally:
        for point in list(m.points):
            m.umount(point)


class Recorder:
    """ProcessRunner observer: every argv the adapter ran."""

    def __init__(self) -> None:
        self.argvs: list[tuple[str, ...]] = []

    def __call__(self, result: CommandResult) -> None:
        self.argvs.append(result.argv)

    def assert_never_removed_blocklist(self) -> None:
        for argv in self.argvs:
            assert "rm" not in argv and "remove" not in argv, argv


def adapter(img: CephImage, node: Path, **overrides: object) -> tuple[Ceph, Recorder]:
    rec = Recorder()
    runner = ProcessRunner(base_env=img.cluster.node_env(node), observer=rec)
    return Ceph(img.settings(**overrides), runner), rec


def write_until_error(path: Path, deadline_s: float) -> tuple[int, float, OSError | None]:
    """Open, then append + fsync a block every 50 ms until it fails; (writes ok, seconds, error)."""
    started = time.monotonic()
    ok = 0
    try:  # a fenced filesystem may already refuse the open (EIO / EROFS)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        return ok, time.monotonic() - started, exc
    try:
        while time.monotonic() - started < deadline_s:
            try:
                os.write(fd, b"x" * 4096)
                os.fsync(fd)
                ok += 1
            except OSError as exc:
                return ok, time.monotonic() - started, exc
            time.sleep(0.05)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return ok, time.monotonic() - started, None


async def test_watchers_fence_blocks_other_node_and_map_takes_over(
    ceph_image: CephImage, mounts: Mounts
) -> None:
    """Fencing blocklists exactly the other node's client (configured expiry); its writes then
    fail with a real I/O error; our exclusive map succeeds and sees its fsynced data; no argv
    of ours removes a blocklist entry."""
    img = ceph_image
    dev_b = img.map_on(img.node_b)  # the other node holds the image, mounted and writing
    mnt_b = mounts.mkfs_and_mount(dev_b)
    (mnt_b / "before-fence").write_text("written by node b")
    sync_file(mnt_b / "before-fence")

    ceph, rec = adapter(img, img.node_a, blocklist_expire_s=7200)
    watchers = await ceph.watchers()
    assert len(watchers) == 1
    other = watchers[0].address
    assert other.split("/")[1] != "0"
    assert img.lock_owners() == [other]  # node b's rbd-fuse took the lock when mapping

    before = img.blocklist()
    t0 = time.monotonic()
    fenced = await ceph.fence()
    fence_s = time.monotonic() - t0
    after = img.blocklist()
    assert fenced == [other]
    assert set(after) - set(before) == {other}  # exactly that client, never a bare IP
    until = datetime.fromisoformat(after[other].replace("+0000", "+00:00"))
    expiry = (until - datetime.now(UTC)).total_seconds()
    assert 7200 - 300 < expiry <= 7200
    assert other in await ceph.blocklist_ls()
    assert await ceph.watchers() == []

    ok, err_s, err = await asyncio.to_thread(write_until_error, mnt_b / "after-fence", 30.0)
    assert err is not None, "the fenced node could still write"
    assert err.errno in (5, 30, 108), err  # EIO (or EROFS once ext4 aborted)

    t1 = time.monotonic()
    dev_a = await ceph.map(30)
    map_s = time.monotonic() - t1
    assert dev_a != dev_b
    assert await ceph.device_for_image() == dev_a
    owners = img.lock_owners()
    assert len(owners) == 1 and owners[0] != other  # we hold the exclusive lock now
    mnt_a = mounts.mount(dev_a)
    assert (mnt_a / "before-fence").read_text() == "written by node b"
    mounts.umount(mnt_a)
    await ceph.unmap(30)
    assert await ceph.device_for_image() is None
    rec.assert_never_removed_blocklist()
    print(
        f"\nfence {fence_s:.2f} s; fenced writer failed after {err_s:.2f} s ({ok} writes ok, "
        f"{err}); exclusive map {map_s:.2f} s"
    )


async def test_fence_with_no_other_watcher_does_nothing(ceph_image: CephImage) -> None:
    """No watchers: fence returns [] and issues no blocklist command."""
    ceph, rec = adapter(ceph_image, ceph_image.node_a)
    assert await ceph.fence() == []
    assert not [a for a in rec.argvs if "blocklist" in a]


async def test_fence_excludes_given_address(ceph_image: CephImage) -> None:
    """An excluded watcher address is left alone (not blocklisted, still watching)."""
    img = ceph_image
    img.map_on(img.node_b)
    ceph, rec = adapter(img, img.node_a)
    (watcher,) = await ceph.watchers()
    assert await ceph.fence(exclude={watcher.address}) == []
    assert watcher.address not in img.blocklist()
    assert await ceph.watchers() == [watcher]
    rec.assert_never_removed_blocklist()


async def test_map_unmap_idempotent(ceph_image: CephImage) -> None:
    """map twice gives one device (the same); unmap twice succeeds; a re-map works."""
    img = ceph_image
    ceph, rec = adapter(img, img.node_a)
    assert await ceph.mapped() == []
    dev = await ceph.map(30)
    assert dev.startswith("/dev/")
    assert await ceph.map(30) == dev
    assert [d.device for d in await ceph.mapped()] == [dev]
    assert len(img.lock_owners()) == 1  # -o exclusive took the lock at map time
    await ceph.unmap(30)
    await ceph.unmap(30)
    assert await ceph.device_for_image() is None
    assert img.lock_owners() == []
    dev2 = await ceph.map(30)
    await ceph.unmap(30)
    assert await ceph.mapped() == []
    assert len([a for a in rec.argvs if "map" in a]) == 2
    print(f"\nmapped at {dev} then {dev2}")


async def test_unmap_of_mounted_device_forces(ceph_image: CephImage, mounts: Mounts) -> None:
    """A plain unmap of a mounted device fails (busy); unmap() then forces it and succeeds."""
    img = ceph_image
    ceph, rec = adapter(img, img.node_a)
    dev = await ceph.map(30)
    mnt = mounts.mkfs_and_mount(dev)
    await ceph.unmap(30)
    assert await ceph.device_for_image() is None
    unmaps = [a for a in rec.argvs if "unmap" in a]
    assert len(unmaps) == 2 and "force" in unmaps[1] and "force" not in unmaps[0]
    mounts.umount(mnt)


async def test_check_access_ok_for_restricted_user(ceph_image: CephImage) -> None:
    """The documented restricted caps pass the preflight; its probe entry is TEST-NET-1 only."""
    ceph, rec = adapter(ceph_image, ceph_image.node_a)
    assert await ceph.check_access() == []
    assert "192.0.2.1:0/1" in ceph_image.blocklist()
    adds = [a for a in rec.argvs if "add" in a]
    assert len(adds) == 1 and adds[0][-2:] == ("192.0.2.1:0/1", "60")
    rec.assert_never_removed_blocklist()


async def test_check_access_reports_missing_blocklist_caps(ceph_image: CephImage) -> None:
    """A user whose mon caps lack `osd blocklist` (mon 'allow r') is reported as unable to add."""
    img = ceph_image
    keyring = img.cluster.create_user(
        "noblock", ["mon", "allow r", "osd", f"profile rbd pool={img.cluster.pool}"]
    )
    ceph, _ = adapter(img, img.node_a, ceph_user="noblock", ceph_keyring=keyring)
    problems = await ceph.check_access()
    assert len(problems) == 1, problems
    assert "cannot add blocklist entries" in problems[0]
    assert "access denied" in problems[0].lower()


async def test_check_access_reports_missing_image_and_feature(ceph_image: CephImage) -> None:
    """A missing image, and an image without exclusive-lock, are each reported."""
    img = ceph_image
    ceph, _ = adapter(img, img.node_a, ceph_image="does-not-exist")
    problems = await ceph.check_access()
    assert len(problems) == 1 and "missing" in problems[0], problems
    img.cluster.admin(
        "create", f"{img.cluster.pool}/{img.name}-nolock", "--size", "8M",
        "--image-feature", "layering", tool="rbd",
    )  # fmt: skip
    try:
        ceph, _ = adapter(img, img.node_a, ceph_image=f"{img.name}-nolock")
        problems = await ceph.check_access()
        assert len(problems) == 1 and "lacks the exclusive-lock" in problems[0], problems
    finally:
        img.cluster.remove_image(f"{img.name}-nolock")


async def test_unreachable_monitor(ceph_image: CephImage) -> None:
    """A monitor address nobody listens on: CephUnreachable within the command timeout, and
    the preflight says so."""
    ceph, _ = adapter(
        ceph_image, ceph_image.node_a, ceph_mon_host=random_loopback(), command_timeout_s=2
    )
    with pytest.raises(CephUnreachable):
        await ceph.image_info()
    problems = await ceph.check_access()
    assert len(problems) == 1 and problems[0].startswith("Ceph unreachable"), problems


def sync_file(path: Path) -> None:
    subprocess.run(["sync", "-f", str(path)], check=True, timeout=30)


def process_gone(pid: int) -> bool:
    """No such process, or a zombie awaiting its reaper (empty cmdline)."""
    try:
        return not Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return True


def loop_backing_files() -> str:
    return subprocess.run(
        ["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"], capture_output=True, text=True, check=True
    ).stdout


def fuse_mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(str(path))]


async def test_wrapper_unmaps_a_fenced_mapping(ceph_image: CephImage, mounts: Mounts) -> None:
    """The krbd stand-in tears down a fenced (blocklisted) mapping: force unmap while its ext4
    is still mounted, then the unmount; no FUSE mount, loop device or rbd-fuse is left."""
    img = ceph_image
    dev_b = img.map_on(img.node_b)
    mnt_b = mounts.mkfs_and_mount(dev_b)
    fuse_pid = int((img.node_b / "0" / "fuse_pid").read_text())
    ceph, rec = adapter(img, img.node_a)
    assert len(await ceph.fence()) == 1
    _, _, err = await asyncio.to_thread(write_until_error, mnt_b / "f", 30.0)
    assert err is not None
    busy = img.node_rbd(img.node_b, "device", "unmap", dev_b, check=False)
    assert busy.returncode == 16 and "Device or resource busy" in busy.stderr
    t0 = time.monotonic()
    img.node_rbd(img.node_b, "device", "unmap", "-o", "force", dev_b)
    unmap_s = time.monotonic() - t0
    mounts.umount(mnt_b)
    assert img.node_rbd(img.node_b, "device", "list", "--format", "json").stdout.strip() == "[]"
    assert fuse_mounts_under(img.node_b) == []
    assert process_gone(fuse_pid)
    losetup = loop_backing_files()
    assert str(img.node_b) not in losetup
    rec.assert_never_removed_blocklist()
    print(f"\nforced unmap of a fenced, mounted mapping: {unmap_s:.2f} s")


async def test_wrapper_fails_a_blocklisted_mapping_like_krbd(
    ceph_image: CephImage, mounts: Mounts
) -> None:
    """Once the krbd stand-in's client is blocklisted, its watcher kills its rbd-fuse (as krbd
    fails every later I/O, even one librbd would leave hanging): the process is gone within
    10 s, a write + fsync on the mount fails, and the forced unmap still tears it down."""
    img = ceph_image
    dev_b = img.map_on(img.node_b)
    mnt_b = mounts.mkfs_and_mount(dev_b)
    entry = img.node_b / "0"
    fuse_pid = int((entry / "fuse_pid").read_text())
    watch_pid = int((entry / "watch_pid").read_text())
    assert not process_gone(watch_pid)
    ceph, rec = adapter(img, img.node_a)
    t0 = time.monotonic()
    assert len(await ceph.fence()) == 1
    while not process_gone(fuse_pid):
        assert time.monotonic() - t0 < 10, "rbd-fuse of the blocklisted mapping still runs"
        await asyncio.sleep(0.1)
    killed_s = time.monotonic() - t0
    _, _, err = await asyncio.to_thread(write_until_error, mnt_b / "f", 30.0)
    assert err is not None and err.errno in (5, 30, 107, 108), err
    assert process_gone(watch_pid)
    img.node_rbd(img.node_b, "device", "unmap", "-o", "force", dev_b)
    mounts.umount(mnt_b)
    assert fuse_mounts_under(img.node_b) == []
    rec.assert_never_removed_blocklist()
    print(f"\nblocklisted mapping's rbd-fuse gone {killed_s:.2f} s after the fence")


async def test_fence_blocklists_the_lock_owner_whose_watch_lapsed(ceph_image: CephImage) -> None:
    """The other node's client stops answering (SIGSTOP) and the OSD drops its watch (after
    osd_client_watch_timeout, 5 s here, 30 s by default): the image has no watcher, but the
    client still owns the exclusive lock.  The fence blocklists that owner anyway (from
    `rbd lock ls`), with the configured expiry, and confirms it in the blocklist: a fence
    that runs late still fences, and never rests on krbd's own lock-break entry."""
    img = ceph_image
    img.cluster.admin("config", "set", "osd", "osd_client_watch_timeout", "5")
    try:
        img.map_on(img.node_b)
    finally:
        img.cluster.admin("config", "rm", "osd", "osd_client_watch_timeout")
    (owner,) = img.lock_owners()
    fuse_pid = int((img.node_b / "0" / "fuse_pid").read_text())
    ceph, rec = adapter(img, img.node_a, blocklist_expire_s=7200)
    os.kill(fuse_pid, signal.SIGSTOP)
    try:
        for _ in range(60):  # the OSD drops the silent client's watch (bounded: 30 s)
            if await ceph.watchers() == []:
                break
            await asyncio.sleep(0.5)
        assert await ceph.watchers() == [] and img.lock_owners() == [owner]
        fenced = await ceph.fence()
        assert fenced == [owner]
        until = datetime.fromisoformat(img.blocklist()[owner].replace("+0000", "+00:00"))
        assert 7200 - 300 < (until - datetime.now(UTC)).total_seconds() <= 7200
    finally:
        os.kill(fuse_pid, signal.SIGCONT)
    rec.assert_never_removed_blocklist()
