"""The monitor tells the machine when the standby is ready (STANDBY_READY): on the first passing
readiness check of a BACKUP period and when readiness comes back, not on every check; the
machine's WARM action then reaches the driver's warm callback.  The adapters are stand-ins
(the real ones are proven in tests/integration); the monitor and the driver are the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from harbor_ha.daemon.driver import Driver
from harbor_ha.daemon.monitor import Monitor
from harbor_ha.daemon.pulse import Pulse
from harbor_ha.keepalived.trackfile import TrackFiles
from harbor_ha.machine import Event, Kind, Node, Step
from harbor_ha.metrics import Metrics
from harbor_ha.probes.containers import DockerApiError
from harbor_ha.settings import Settings
from lab.waiting import until
from tests.fakes import example_settings


class StandbyCeph:
    """FAKE Ceph: the image has exclusive-lock, nothing mapped here."""

    async def image_info(self) -> dict[str, Any]:
        return {"features": ["layering", "exclusive-lock"]}

    async def device_for_image(self) -> str | None:
        return None


class Engine:
    """FAKE Docker engine: answers when ``up``; every image present, the project's containers
    already created."""

    def __init__(self) -> None:
        self.up = True
        self.missing: list[str] | Exception = []
        self.running: dict[str, str] = {}  # container id -> compose service

    async def running_services(self) -> dict[str, str]:
        return dict(self.running)

    async def ping(self) -> bool:
        return self.up

    async def missing_images(self, images: list[str]) -> list[str]:
        if isinstance(self.missing, Exception):
            raise self.missing
        return [i for i in images if i in self.missing]

    async def project_containers(self) -> list[str]:
        return ["c1"]


class Project:
    """FAKE compose project: the file names one image."""

    async def images(self) -> list[str]:
        return ["goharbor/harbor-core:v1"]

    async def data_containers(self, running: Mapping[str, str]) -> list[str]:
        return [cid for cid, svc in running.items() if svc not in ("proxy", "portal", "log")]


async def _no_renew() -> tuple[Event, str]:
    raise AssertionError("this test holds no lease")


async def _no_step(step: Step) -> None:
    return None


async def _no_warm() -> None:
    return None


def standby(
    tmp_path: Path,
    warm: Callable[[], Awaitable[None]],
    run_step: Callable[[Step], Awaitable[None]] = _no_step,
    **fields: Any,
) -> tuple[Settings, Driver, Monitor, Engine]:
    """The real driver and monitor of a BACKUP node over the stand-ins above."""
    s = example_settings(priority_file=tmp_path / "prio", fault_file=tmp_path / "fault",
                         runtime_dir=tmp_path / "run", **fields)  # fmt: skip
    track = TrackFiles(s.priority_file, s.fault_file)
    track.ensure()
    metrics = Metrics()
    driver = Driver(Node(), run_step=run_step, step_timeout=lambda st: 60, track=track,
                    metrics=metrics,
                    background={Kind.RENEW_LEASE: _no_renew, Kind.WARM: warm})  # fmt: skip
    engine = Engine()
    monitor = Monitor(
        s, driver=driver, metrics=metrics, harbor=None,  # type: ignore[arg-type]
        containers=engine, ceph=StandbyCeph(), fs=None,  # type: ignore[arg-type]
        compose=Project(), device=lambda: None, track=track, wake=Pulse(),  # type: ignore[arg-type]
    )  # fmt: skip
    return s, driver, monitor, engine


async def test_standby_ready_posted_once_per_period_and_on_recovery(tmp_path: Path) -> None:
    """Three passing checks in one BACKUP period warm once; a failing check (Docker down) then
    a passing one warms again; the node stays BACKUP and runs no step."""
    warmed: list[int] = []

    async def warm() -> None:
        warmed.append(1)

    _s, driver, monitor, engine = standby(tmp_path, warm)
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


async def test_standby_not_ready_when_images_missing_or_unknown(tmp_path: Path) -> None:
    """The file's images asked of the Docker API: one missing -> not ready naming it, priority
    file 0; the API failing -> not ready with an "images:" problem; all there -> ready, 1."""
    s, _driver, monitor, engine = standby(tmp_path, _no_warm, precreate_containers=False)
    engine.missing = ["goharbor/harbor-core:v1"]
    await monitor._check_standby()
    assert monitor.ready is False
    assert monitor.ready_problems == ["harbor images missing: goharbor/harbor-core:v1"]
    assert s.priority_file.read_text().strip() == "0"
    engine.missing = DockerApiError("docker API image inspect: timeout after 15 s")
    await monitor._check_standby()
    assert monitor.ready_problems == ["images: docker API image inspect: timeout after 15 s"]
    engine.missing = []
    await monitor._check_standby()
    assert monitor.ready is True and monitor.ready_problems == []
    assert s.priority_file.read_text().strip() == "1"


async def test_data_services_running_on_the_standby_are_stopped(tmp_path: Path) -> None:
    """Only warm services (proxy, portal, log) running on a BACKUP node: nothing. A
    data-bearing one running too (dockerd's restart policy brought core back without the
    image): DATA_ON_STANDBY, and the machine runs the demotion's steps (stop Harbor, then the
    unmount and unmap that find nothing) from BACKUP, without raising the fault."""
    steps: list[Step] = []

    async def run_step(step: Step) -> None:
        steps.append(step)

    _s, driver, monitor, engine = standby(tmp_path, _no_warm, run_step, precreate_containers=False)
    task = asyncio.create_task(driver.run((Node(), ()), "test"))
    try:
        engine.running = {"c1": "proxy", "c2": "portal", "c3": "log"}
        await monitor._check_standby()
        await asyncio.sleep(0.05)
        assert steps == [] and driver.node.state.name == "BACKUP"
        engine.running["c4"] = "core"
        await monitor._check_standby()
        await until(lambda: steps[:1] == [Step.STOP])
        await until(lambda: driver.node.state.name == "BACKUP" and len(steps) == 3)
        assert steps == [Step.STOP, Step.UNMOUNT, Step.UNMAP] and not driver.node.fault
    finally:
        task.cancel()
        await asyncio.wait({task})


async def test_a_container_start_event_makes_the_standby_look_at_once(tmp_path: Path) -> None:
    """Docker's start event of a project container (dockerd's restart policy) is told to the
    monitor: its next check on a BACKUP node looks for data-bearing services then and there,
    between two readiness checks (the dockerd-restart row: the window it ran was the wait
    for the next 5 s check); a die event is not a start."""
    from harbor_ha.daemon.watchers import forward_container_events

    _s, driver, monitor, engine = standby(tmp_path, _no_warm, precreate_containers=False)
    monitor._next_standby_check = float("inf")  # no readiness check in this test
    monitor._last_since = driver.since
    engine.running = {"c4": "core"}
    posted: list[Event] = []

    def post(event: Event, reason: str, *, token: int | None = None) -> None:
        posted.append(event)

    driver.post = post  # type: ignore[method-assign]

    async def events() -> AsyncIterator[str]:
        yield "harbor-core die"
        yield "harbor-core start"

    wake = Pulse()
    await forward_container_events(events(), wake, monitor.container_started)
    await monitor.check_once()
    assert posted == [Event.DATA_ON_STANDBY]
    await monitor.check_once()
    assert posted == [Event.DATA_ON_STANDBY], "once per start event"


def test_what_of_the_event_stream_may_mean_a_start() -> None:
    """A start event, and the stream (re)connecting (dockerd restarted: its restart-policy
    containers started before anyone listened), may mean a container started; a die or a
    health event does not."""
    from harbor_ha.probes.containers import EVENTS_CONNECTED, EVENTS_RECONNECTED, may_have_started

    assert may_have_started("harbor-core start")
    assert may_have_started(EVENTS_CONNECTED) and may_have_started(EVENTS_RECONNECTED)
    assert not may_have_started("harbor-core die")
    assert not may_have_started("harbor-core health_status: healthy")


async def test_a_precreate_docker_refuses_is_not_retried_in_the_period(tmp_path: Path) -> None:
    """Harbor's long-syntax binds of the unmounted data volume make Docker refuse to create
    core, registry and trivy-adapter on a standby: the precreate fails once, is counted and
    logged once, and is not retried at every readiness check of the same BACKUP period; a new
    BACKUP period tries again."""
    creates: list[int] = []

    class Empty(Engine):
        async def project_containers(self) -> list[str]:
            return []

    class Refusing(Project):
        async def create(self, timeout_s: float) -> None:
            creates.append(1)
            raise RuntimeError("bind source path does not exist: /data/secret/keys/secretkey")

    s, driver, _monitor, _engine = standby(tmp_path, _no_warm)
    monitor = Monitor(
        s, driver=driver, metrics=Metrics(), harbor=None,  # type: ignore[arg-type]
        containers=Empty(), ceph=StandbyCeph(), fs=None,  # type: ignore[arg-type]
        compose=Refusing(), device=lambda: None,  # type: ignore[arg-type]
        track=TrackFiles(s.priority_file, s.fault_file), wake=Pulse(),
    )  # fmt: skip
    await monitor.check_once()
    for _ in range(3):
        await monitor._check_standby()
    assert monitor.ready is True and len(creates) == 1
    driver._since += 1  # a new BACKUP period (as the driver marks one)
    await monitor.check_once()
    assert len(creates) == 2


async def test_a_promoting_node_drops_its_priority_and_readiness(tmp_path: Path) -> None:
    """A ready standby's priority file reads 1 and its ready metric 1; once keepalived makes
    it MASTER and its lease step runs (LEASING probes nothing: the machine's verdict is not
    fit), the next check writes 0 to both, whatever the last standby verdict was."""
    lease_started = asyncio.Event()
    release = asyncio.Event()

    async def run_step(step: Step) -> None:
        lease_started.set()
        await release.wait()

    s, driver, monitor, _engine = standby(tmp_path, _no_warm, run_step, precreate_containers=False)
    task = asyncio.create_task(driver.run((Node(), ()), "test"))
    try:
        await until(lambda: len(driver.transitions) == 1)
        await monitor.check_once()
        ready = monitor._metrics.registry.get_sample_value
        assert s.priority_file.read_text().strip() == "1"
        assert ready("harbor_ha_standby_ready") == 1
        driver.post(Event.KA_MASTER, "test")
        await asyncio.wait_for(lease_started.wait(), 5)
        await monitor.check_once()
        assert s.priority_file.read_text().strip() == "0"
        assert ready("harbor_ha_standby_ready") == 0
    finally:
        release.set()
        task.cancel()
        await asyncio.wait({task})
