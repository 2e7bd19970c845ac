"""The monitor tells the machine when the standby is ready (STANDBY_READY): on the first passing
readiness check of a BACKUP period and when readiness comes back, not on every check; the
machine's WARM action then reaches the driver's warm callback.  The adapters are stand-ins
(the real ones are proven in tests/integration); the monitor and the driver are the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harbor_ha.daemon.driver import Driver
from harbor_ha.daemon.monitor import Monitor
from harbor_ha.daemon.pulse import Pulse
from harbor_ha.keepalived.trackfile import TrackFiles
from harbor_ha.machine import Event, Node, Step
from harbor_ha.metrics import Metrics
from tests.fakes import example_settings


class StandbyCeph:
    """FAKE Ceph: the image has exclusive-lock, nothing mapped here."""

    async def image_info(self) -> dict[str, Any]:
        return {"features": ["layering", "exclusive-lock"]}

    async def device_for_image(self) -> str | None:
        return None


class Engine:
    """FAKE Docker engine: answers when ``up``."""

    def __init__(self) -> None:
        self.up = True

    async def ping(self) -> bool:
        return self.up


class Project:
    """FAKE compose project: images present, containers already created."""

    async def missing_images(self) -> list[str]:
        return []

    async def project_containers(self) -> list[str]:
        return ["c1"]


async def _no_renew() -> tuple[Event, str]:
    raise AssertionError("this test holds no lease")


async def _no_step(step: Step) -> None:
    return None


async def until(cond: Callable[[], bool], within_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not cond():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_standby_ready_posted_once_per_period_and_on_recovery(tmp_path: Path) -> None:
    """Three passing checks in one BACKUP period warm once; a failing check (Docker down) then
    a passing one warms again; the node stays BACKUP and runs no step."""
    s = example_settings(priority_file=tmp_path / "prio", fault_file=tmp_path / "fault",
                         runtime_dir=tmp_path / "run")  # fmt: skip
    track = TrackFiles(s.priority_file, s.fault_file)
    track.ensure()
    warmed: list[int] = []

    async def warm() -> None:
        warmed.append(1)

    metrics = Metrics()
    driver = Driver(Node(), run_step=_no_step, step_timeout=lambda st: 60, track=track,
                    metrics=metrics, renew_lease=_no_renew, warm=warm)  # fmt: skip
    engine = Engine()
    monitor = Monitor(
        s, driver=driver, metrics=metrics, harbor=None,  # type: ignore[arg-type]
        containers=engine, ceph=StandbyCeph(), fs=None,  # type: ignore[arg-type]
        compose=Project(), device=lambda: None, track=track, wake=Pulse(),  # type: ignore[arg-type]
    )  # fmt: skip
    task = asyncio.create_task(driver.run((Node(), ()), "test"))
    try:
        for _ in range(3):
            await monitor._check_standby()
        await until(lambda: len(warmed) == 1)
        engine.up = False
        await monitor._check_standby()
        assert monitor.ready is False
        engine.up = True
        await monitor._check_standby()
        await until(lambda: len(warmed) == 2)
        await asyncio.sleep(0.05)
        assert len(warmed) == 2 and driver.node == Node() and not driver.busy
    finally:
        task.cancel()
        await asyncio.wait({task})
