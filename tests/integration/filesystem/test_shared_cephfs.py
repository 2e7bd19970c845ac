"""The shared mode's mount on a REAL CephFS (a single-node cluster with one MDS,
lab/cephfs.py), mounted with the real ceph-fuse (this machine's kernel has no ceph module;
FUSE works): the mount step verifies type and source in mountinfo, two nodes see one
filesystem, a foreign mount is refused and left alone, Harbor never starts on the bare
mountpoint, and a SERVING node's storage probe notices a lazy unmount and a killed ceph-fuse
(the real monitor and driver then drain it).  No step of the mode ever runs fsck or mkfs."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from harbor_ha.ceph.mds import evict_sessions_from
from harbor_ha.compose import Compose
from harbor_ha.daemon.driver import Driver
from harbor_ha.daemon.monitor import Monitor
from harbor_ha.daemon.pulse import Pulse
from harbor_ha.daemon.shared_steps import SharedSteps
from harbor_ha.daemon.steps import StepError
from harbor_ha.filesystem import MountError, UnmountFailed, mount_at
from harbor_ha.filesystem.guard import is_guarded
from harbor_ha.filesystem.shared import SharedFilesystem
from harbor_ha.filesystem.shared_spec import MountFinding
from harbor_ha.keepalived.trackfile import TrackFiles
from harbor_ha.machine import Mode, Node, Policy, State
from harbor_ha.metrics import Metrics
from harbor_ha.probes.containers import ContainerProbe
from harbor_ha.probes.harbor import HarborProbe
from harbor_ha.runner import CommandResult, ProcessRunner
from harbor_ha.settings import Settings
from lab.ceph import CephCluster
from lab.cephfs import CephFS, fuse_pids, kill_fuse
from lab.loopdev import run, unguard, unmount_all
from lab.waiting import until
from tests.integration.fixtures.filesystem import fs_settings

pytestmark = pytest.mark.timeout(300)


class Recorder:
    """Every command the product ran (the runner's observer): the argv, in order."""

    def __init__(self) -> None:
        self.argvs: list[tuple[str, ...]] = []

    def __call__(self, result: CommandResult) -> None:
        self.argvs.append(result.argv)

    def never_checked_or_formatted(self) -> bool:
        return not any("fsck" in a or "mkfs" in a for argv in self.argvs for a in argv)


def shared_settings(mountpoint: Path, fs: CephFS, **overrides: Any) -> Settings:
    c: CephCluster = fs.cluster
    values: dict[str, Any] = {
        "mode": "shared",
        "shared_fs_type": "ceph-fuse",
        "shared_fs_source": f"{c.mon_addr}:/",
        "ceph_user": fs.client,
        "ceph_keyring": fs.client_keyring,
        "ceph_conf": c.conf,
        "probe_timeout_s": 5.0,
        "mount_timeout_s": 60.0,
        "unmount_timeout_s": 30.0,
    }
    return fs_settings(mountpoint, **{**values, **overrides})


@pytest.fixture
def node_mount(mountpoint: Path) -> Iterator[Path]:
    """The mountpoint, with whatever ceph-fuse a test left there unmounted and killed by PID
    at teardown (also on failure)."""
    try:
        yield mountpoint
    finally:
        unmount_all(mountpoint)
        kill_fuse(mountpoint)


async def test_ceph_fuse_mount_is_verified_shared_and_unmounted_guarded(
    cephfs: CephFS, node_mount: Path, fs_workdir: Path
) -> None:
    """The mount step mounts CephFS with ceph-fuse and verifies it in mountinfo
    (fuse.ceph-fuse, source ceph-fuse, read-write, answering); a second node's mount of the
    same filesystem reads what the first wrote; the mount step again finds it mounted and
    does nothing; the unmount step unmounts and guards the bare mountpoint (chattr +i).
    Neither fsck nor mkfs ever ran."""
    rec = Recorder()
    a = SharedFilesystem(shared_settings(node_mount, cephfs), ProcessRunner(observer=rec))
    other = fs_workdir / "node-b"
    b = SharedFilesystem(shared_settings(other, cephfs), ProcessRunner(observer=rec))
    try:
        await a.mount(60)
        top = mount_at(node_mount)
        assert top is not None and (top.fstype, top.source) == ("fuse.ceph-fuse", "ceph-fuse")
        assert a.finding()[0] is MountFinding.OURS and a.verified()
        assert (await a.answers(5))[0] is True
        marker = f"written through {node_mount}"
        (node_mount / "shared-marker").write_text(marker)
        await b.mount(60)
        assert (other / "shared-marker").read_text() == marker
        mounts = len(rec.argvs)
        await a.mount(60)  # idempotent: already verified, no second ceph-fuse
        assert len(rec.argvs) == mounts
        assert any(argv[0] == "ceph-fuse" and str(node_mount) in argv for argv in rec.argvs)
        (node_mount / "shared-marker").unlink()
        await a.unmount(30, 2)
        await b.unmount(30, 2)
        assert mount_at(node_mount) is None and mount_at(other) is None
        assert is_guarded(node_mount) is True
        with pytest.raises(PermissionError):
            (node_mount / "on-the-root-fs").write_text("must not land on the root fs")
        assert rec.never_checked_or_formatted()
    finally:
        unmount_all(other)
        kill_fuse(other)
        unguard(other)


async def test_a_foreign_mount_or_a_wrong_filesystem_is_refused_and_left_alone(
    cephfs: CephFS, node_mount: Path
) -> None:
    """Something else at the mountpoint (a tmpfs): the mount step refuses it (type and
    source named), the unmount step refuses to unmount it, and it stays mounted.  The real
    CephFS mounted where the settings name another filesystem (nfs from nas:/export):
    refused too."""
    node_mount.mkdir(parents=True)
    run(["mount", "-t", "tmpfs", "harbor-ha-foreign", str(node_mount)])
    rec = Recorder()
    fs = SharedFilesystem(shared_settings(node_mount, cephfs), ProcessRunner(observer=rec))
    with pytest.raises(MountError, match=r"harbor-ha-foreign \(tmpfs\), not ceph-fuse"):
        await fs.mount(60)
    with pytest.raises(UnmountFailed, match="refusing to unmount"):
        await fs.unmount(30, 2)
    top = mount_at(node_mount)
    assert top is not None and top.source == "harbor-ha-foreign"
    unmount_all(node_mount)
    await fs.mount(60)  # the real CephFS, as configured
    wrong = SharedFilesystem(
        shared_settings(node_mount, cephfs, shared_fs_type="nfs",
                        shared_fs_source="nas:/export"),
        ProcessRunner(observer=rec),
    )  # fmt: skip
    assert wrong.finding()[0] is MountFinding.FOREIGN
    with pytest.raises(MountError, match="not nas:/export"):
        await wrong.mount(60)
    assert rec.never_checked_or_formatted()


async def test_harbor_never_starts_on_the_bare_mountpoint(cephfs: CephFS, node_mount: Path) -> None:
    """The start step with nothing mounted: refused before any docker or compose command
    (safety rule 5: Harbor only on the verified mount)."""
    rec = Recorder()
    s = shared_settings(node_mount, cephfs)
    runner = ProcessRunner(observer=rec)
    fs = SharedFilesystem(s, runner)
    await fs.guard()
    containers = ContainerProbe(s)
    steps = SharedSteps(
        s, fs=fs, compose=Compose(s, runner), harbor=HarborProbe(s, containers), wake=Pulse()
    )
    try:
        with pytest.raises(StepError, match="refusing to start Harbor: nothing is mounted"):
            await steps.start()
    finally:
        await containers.close()
    assert not any("compose" in " ".join(argv) or "docker" in argv[0] for argv in rec.argvs)


class Report:
    healthy = True
    reason = "ok"
    degraded: tuple[str, ...] = ()


class HealthyHarbor:
    """STAND-IN for the Harbor probe: always healthy (Harbor is not this test's subject; the
    storage probe is)."""

    async def check(self, *, judge_health: bool = True) -> Report:
        return Report()

    async def serving(self) -> Report:
        return Report()


async def _no_step(step: object) -> None:
    return None


@contextlib.asynccontextmanager
async def serving_node(
    s: Settings, fs: SharedFilesystem, tmp: Path
) -> AsyncIterator[tuple[Driver, Monitor]]:
    """The real driver (a SERVING node of the shared mode, drain wait long enough to look)
    and the real monitor over the real shared filesystem."""
    track = TrackFiles(tmp / "prio", tmp / "fault")
    track.ensure()
    metrics = Metrics()
    node = Node(state=State.SERVING, policy=Policy(mode=Mode.SHARED, drain_wait_s=120.0))
    driver = Driver(node, run_step=_no_step, step_timeout=lambda st: 60, track=track,
                    metrics=metrics, background={})  # fmt: skip
    monitor = Monitor(
        s, driver=driver, metrics=metrics, harbor=HealthyHarbor(), containers=None,  # type: ignore[arg-type]
        ceph=None, fs=None, compose=None, device=lambda: None, track=track,  # type: ignore[arg-type]
        wake=Pulse(), shared=fs,
    )  # fmt: skip
    task = asyncio.create_task(driver.run((node, ()), "test"))
    try:
        yield driver, monitor
    finally:
        task.cancel()
        await asyncio.wait({task})


async def test_the_storage_probe_drains_on_a_lazy_unmount(
    cephfs: CephFS, node_mount: Path, fs_workdir: Path
) -> None:
    """A SERVING node's monitor finds the verified mount; after `umount -l` (the mount gone
    from mountinfo) its next probe posts STORAGE_LOST at once and the driver drains
    (DRAINING: not serving, readiness 503)."""
    s = shared_settings(node_mount, cephfs, runtime_dir=fs_workdir / "run-lazy")
    fs = SharedFilesystem(s, ProcessRunner())
    await fs.mount(60)
    async with serving_node(s, fs, fs_workdir) as (driver, monitor):
        await monitor.check_once()
        assert driver.node.state is State.SERVING and monitor.probes["storage"]["finding"] == "OK"
        run(["umount", "-l", str(node_mount)])
        await monitor.check_once()
        await until(lambda: driver.node.state is State.DRAINING)
        assert not driver.node.serving and driver.node.fault
        assert monitor.probes["storage"]["finding"] == "NOT_MOUNTED"


async def test_the_storage_probe_drains_on_a_killed_ceph_fuse(
    cephfs: CephFS, node_mount: Path, fs_workdir: Path
) -> None:
    """ceph-fuse killed (SIGKILL): mountinfo still shows the mount, but the filesystem
    answers with an error (ENOTCONN); two such probes in a row post STORAGE_LOST and the
    driver drains.  The unmount step then unmounts the dead mount and guards the
    mountpoint; a new mount step mounts and verifies it again (the rejoin)."""
    s = shared_settings(node_mount, cephfs, runtime_dir=fs_workdir / "run-kill")
    rec = Recorder()
    fs = SharedFilesystem(s, ProcessRunner(observer=rec))
    await fs.mount(60)
    async with serving_node(s, fs, fs_workdir) as (driver, monitor):
        await monitor.check_once()
        assert driver.node.state is State.SERVING
        assert kill_fuse(node_mount), "no ceph-fuse process served the mount"
        await until(lambda: not fuse_pids(node_mount))
        assert fs.finding()[0] is MountFinding.OURS  # mountinfo alone cannot tell
        await monitor.check_once()
        assert driver.node.state is State.SERVING  # one error: debounced
        await monitor.check_once()
        await until(lambda: driver.node.state is State.DRAINING)
        assert monitor.probes["storage"]["finding"] == "ERROR"
    await fs.unmount(30, 2)
    assert mount_at(node_mount) is None and is_guarded(node_mount) is True
    await fs.mount(60)
    assert fs.verified() and (await fs.answers(5))[0] is True
    assert rec.never_checked_or_formatted()
    await fs.unmount(30, 2)


async def test_a_dead_nodes_sessions_are_evicted_and_it_can_rejoin(
    cephfs: CephFS, node_mount: Path, fs_workdir: Path
) -> None:
    """The product's MDS edge on the real MDS, as a user allowed MDS commands (the lab's
    admin): the ceph-fuse session from a node's address is found and evicted (gone from
    `session ls`, its client in the OSD blocklist, the mount no longer answers); an address
    with no session evicts nothing; the evicted node unmounts and mounts again with a new
    client, which answers (the rejoin after a wrong guess costs one remount)."""
    c = cephfs.cluster
    s = shared_settings(node_mount, cephfs, runtime_dir=fs_workdir / "run-evict")
    fs = SharedFilesystem(s, ProcessRunner())
    admin = shared_settings(
        node_mount, cephfs, ceph_user="admin", ceph_keyring=c.admin_keyring,
        cephfs_name=cephfs.name, command_timeout_s=30.0,
    )  # fmt: skip
    rank = f"mds.{cephfs.name}:0"

    def sessions() -> list[dict[str, Any]]:
        out = c.admin("tell", rank, "session", "ls", "--format", "json").stdout
        return list(json.loads(out))

    earlier = {int(x["id"]) for x in sessions()}  # e.g. a killed ceph-fuse's, not yet timed out
    await fs.mount(60)
    try:
        [ours] = [x for x in sessions() if int(x["id"]) not in earlier]  # this node's ceph-fuse
        inst = str(ours["inst"])
        host = inst.split(" ", 1)[1].removeprefix("v1:").rsplit(":", 1)[0]
        assert await evict_sessions_from(ProcessRunner(), admin, "192.0.2.77") == []
        ids = await evict_sessions_from(ProcessRunner(), admin, host)
        assert int(ours["id"]) in ids
        assert int(ours["id"]) not in {int(x["id"]) for x in sessions()}
        blocklist = c.admin("osd", "blocklist", "ls").stdout
        assert inst.split(" ", 1)[1].removeprefix("v1:") in blocklist, blocklist
        assert (await fs.answers(5))[0] is False
        await fs.unmount(30, 2)
        await fs.mount(60)
        assert fs.verified() and (await fs.answers(5))[0] is True
    finally:
        await fs.unmount(30, 2)
