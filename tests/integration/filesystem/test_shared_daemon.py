"""The whole daemon in the shared mode, in process, on a REAL CephFS mounted with the real
ceph-fuse (lab/cephfs.py): its wiring (startup per mode, the shared steps, the monitor, the
control socket, /serving).  Harbor cannot start here (the Docker engine it is given does
not exist: a real failure of the real docker CLI), so the node shows its failure path: it
mounts and verifies the shared filesystem, fails to start Harbor, stops, unmounts (the bare
mountpoint guarded), arrives DOWN with the backoff, and mounts again by itself once it is
over; `drain` then holds it DOWN.  /serving never answers 200; no keepalived FIFO is read;
no fsck or mkfs ever runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from harbor_ha.daemon.app import Daemon
from harbor_ha.filesystem import mount_at
from harbor_ha.history import read_history
from harbor_ha.machine import Event, State
from harbor_ha.settings import load_settings
from lab.cephfs import CephFS, kill_fuse
from lab.loopdev import unguard, unmount_all
from lab.waiting import until

pytestmark = pytest.mark.timeout(300)


def transitions(state_dir: Path) -> list[tuple[str, str]]:
    return [(r["from"], r["to"]) for r in read_history(state_dir) if "from" in r and "to" in r]


async def test_the_shared_daemon_mounts_fails_to_start_backs_off_rejoins_and_drains(
    cephfs: CephFS, fs_workdir: Path
) -> None:
    """Mount (verified) -> start fails -> stop -> unmount -> DOWN (backoff) -> mount again,
    by itself; `drain` keeps it DOWN; /serving is 503 all along; only ceph-fuse, umount,
    chattr and docker ran (never fsck or mkfs); no keepalived FIFO was created."""
    c, root = cephfs.cluster, fs_workdir
    mp = root / "data"
    (root / "docker-compose.yml").write_text("services: {}\n")
    s = load_settings(None, {
        "HARBOR_HA_MODE": "shared", "HARBOR_HA_VIP": "10.0.0.100/24",
        "HARBOR_HA_INTERFACE": "lo", "HARBOR_HA_SHARED_FS_TYPE": "ceph-fuse",
        "HARBOR_HA_SHARED_FS_SOURCE": f"{c.mon_addr}:/", "HARBOR_HA_CEPH_USER": cephfs.client,
        "HARBOR_HA_CEPH_KEYRING": str(cephfs.client_keyring), "HARBOR_HA_CEPH_CONF": str(c.conf),
        "HARBOR_HA_MOUNTPOINT": str(mp), "HARBOR_HA_RUNTIME_DIR": str(root / "run"),
        "HARBOR_HA_STATE_DIR": str(root / "state"),
        "HARBOR_HA_PRIORITY_FILE": str(root / "run" / "prio"),
        "HARBOR_HA_FAULT_FILE": str(root / "run" / "fault"),
        "HARBOR_HA_KEEPALIVED_FIFO": str(root / "run" / "fifo"),
        "HARBOR_HA_HTTP_HOST": "127.0.0.1", "HARBOR_HA_HTTP_PORT": "0",
        "HARBOR_HA_DOCKER_HOST": f"unix://{root}/no-docker.sock",
        "HARBOR_HA_COMPOSE_FILE": str(root / "docker-compose.yml"),
        "HARBOR_HA_BACKOFF_INITIAL_S": "1", "HARBOR_HA_BACKOFF_MAX_S": "2",
        "HARBOR_HA_START_TIMEOUT_S": "10", "HARBOR_HA_STOP_TIMEOUT_S": "10",
    })  # fmt: skip
    daemon = Daemon(s)
    run = asyncio.create_task(daemon.run())
    codes: set[int] = set()
    try:
        driver = daemon.parts.driver
        await until(lambda: daemon.parts.reconciled, "reconciled", within_s=30)
        port = daemon.parts.http.bound_port

        async def serving_code() -> int:
            async with (
                aiohttp.ClientSession() as session,
                session.options(f"http://127.0.0.1:{port}/serving") as r,
            ):
                return r.status

        async def rejoined() -> bool:
            codes.add(await serving_code())
            seen = transitions(s.state_dir)
            return ("UNMOUNTING", "DOWN") in seen and seen[-1] == ("DOWN", "MOUNTING")

        await until(rejoined, "down after a failed start, then mounting again", within_s=90)
        seen = transitions(s.state_dir)
        first = seen.index(("UNMOUNTING", "DOWN"))
        assert seen[:first + 1] == [
            ("DOWN", "MOUNTING"), ("MOUNTING", "STARTING"), ("STARTING", "STOPPING"),
            ("STOPPING", "UNMOUNTING"), ("UNMOUNTING", "DOWN"),
        ]  # fmt: skip
        driver.post(Event.DRAIN, "test: drain")
        await until(lambda: driver.node.state is State.DOWN and driver.node.maintenance,
                    "drained and down", within_s=60)  # fmt: skip
        await asyncio.sleep(3)  # longer than the backoff: a drained node stays down
        assert driver.node.state is State.DOWN and mount_at(mp) is None
        codes.add(await serving_code())
        assert codes == {503}
        names = {
            sample.labels["command"]
            for metric in daemon.parts.metrics.registry.collect()
            if metric.name == "harbor_ha_command_duration_seconds"
            for sample in metric.samples
        }
        assert "ceph-fuse" in names and not any("fsck" in n or "mkfs" in n for n in names)
        assert not s.keepalived_fifo.exists()
    finally:
        daemon.stop_requested.set()
        await asyncio.wait({run}, timeout=60)
        unmount_all(mp)
        kill_fuse(mp)
        unguard(mp)
