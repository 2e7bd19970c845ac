"""Build the daemon from settings, reconcile, supervise the root tasks, shut down in phases.

- Signal handlers only set an event.
- Root tasks are supervised: when one dies, the daemon stops as a whole (exit 1),
  and systemd restarts it; the restart reconciles from facts.
- Shutdown in phases with bounded waits: stop intake, let the driver finish or
  cancel the running step (SHUTDOWN event), stop the servers, close clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from harbor_ha import filesystem
from harbor_ha.ceph import Ceph, write_keyring
from harbor_ha.compose import Compose
from harbor_ha.filesystem import Filesystem
from harbor_ha.http import Endpoints, HttpServers
from harbor_ha.keepalived.fifo import FifoReader
from harbor_ha.keepalived.trackfile import TrackFiles
from harbor_ha.keepalived.vip import vip_present
from harbor_ha.machine import Event, Facts, Result, State, from_facts
from harbor_ha.metrics import Metrics
from harbor_ha.probes.containers import ContainerProbe
from harbor_ha.probes.harbor import HarborProbe
from harbor_ha.runner import CommandResult, ProcessRunner, Runner
from harbor_ha.settings import Settings

from .control import Control
from .driver import Driver
from .monitor import Monitor
from .sdnotify import SdNotifier
from .status import StatusBoard
from .steps import Steps
from .watchers import VipTicker, follow_fifo, forward_container_events

log = structlog.get_logger("harbor_ha.daemon")

EXIT_OK = 0
EXIT_TASK_DIED = 1
EXIT_START_FAILED = 3


@dataclass
class Parts:
    settings: Settings
    runner: Runner
    metrics: Metrics
    board: StatusBoard
    track: TrackFiles
    ceph: Ceph
    fs: Filesystem
    compose: Compose
    containers: ContainerProbe
    harbor: HarborProbe
    wake: asyncio.Event
    step_wake: asyncio.Event
    """Also set by every container event, but waited on (and cleared) only by the start step:
    the monitor clears ``wake`` as soon as it wakes, which could swallow the event the start
    step is waiting for."""


def build(settings: Settings) -> Parts:
    metrics = Metrics()

    def observe(result: CommandResult) -> None:
        name = result.argv[0].rsplit("/", 1)[-1]
        metrics.command_duration.labels(name).observe(result.duration_s)

    runner = ProcessRunner(observer=observe)
    settings.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.ceph_user_key is not None and settings.ceph_keyring is None:
        keyring = write_keyring(settings, settings.runtime_dir / "ceph.keyring")
        settings = settings.model_copy(update={"ceph_keyring": keyring})
    containers = ContainerProbe(settings)
    return Parts(
        settings=settings,
        runner=runner,
        metrics=metrics,
        board=StatusBoard(settings.node_name),
        track=TrackFiles(settings.priority_file, settings.fault_file),
        ceph=Ceph(settings, runner),
        fs=Filesystem(settings, runner),
        compose=Compose(settings, runner),
        containers=containers,
        harbor=HarborProbe(settings, containers),
        wake=asyncio.Event(),
        step_wake=asyncio.Event(),
    )


async def observe_facts(p: Parts) -> Facts:
    """Safety rule 8: look at the node itself, never at a remembered state."""
    s = p.settings
    try:
        vip = await vip_present(p.runner, s)
    except Exception as exc:
        log.warning("reconcile_vip_unknown", error=str(exc))
        vip = False
    device = await p.ceph.device_for_image()
    mount = filesystem.mount_at(s.mountpoint)
    mounted = device is not None and filesystem.is_mounted_from(s.mountpoint, device)
    try:
        running = bool(await p.compose.running_containers())
    except Exception as exc:
        log.warning("reconcile_containers_unknown", error=str(exc))
        running = False
    p.board.device = device
    facts = Facts(
        vip=vip,
        mapped=device is not None,
        mounted=mounted,
        harbor_running=running,
        mount_foreign=mount is not None and not mounted,
    )
    log.info(
        "reconcile_facts",
        vip=vip,
        device=device,
        mounted=mounted,
        harbor_running=running,
        mount_foreign=facts.mount_foreign,
    )
    return facts


class Daemon:
    def __init__(self, settings: Settings, *, notify_socket: str | None = None) -> None:
        self.parts = build(settings)
        self.settings = self.parts.settings
        self.notifier = SdNotifier(notify_socket)
        self.stop_requested = asyncio.Event()
        p = self.parts
        s = self.settings
        self.steps = Steps(
            s,
            ceph=p.ceph,
            fs=p.fs,
            compose=p.compose,
            harbor=p.harbor,
            is_mounted_from=lambda dev: filesystem.is_mounted_from(s.mountpoint, dev),
            metrics=p.metrics,
            board=p.board,
            wake=p.step_wake,
            vip_present=lambda: vip_present(p.runner, s),
        )
        self.driver = Driver(
            s,
            run_step=self.steps.run,
            step_timeout=self.steps.timeout,
            track=p.track,
            metrics=p.metrics,
            board=p.board,
        )
        self.control = Control(self.driver, p.board, s.vrrp_instance)
        self.http = HttpServers(
            Endpoints(
                registry=p.metrics.registry,
                alive=self._alive,
                primary=self._primary,
                status=p.board.snapshot,
                control=self.control.handle,
            ),
            host=s.http_host,
            port=s.http_port,
            control_socket=s.control_socket_path,
        )

    # ----------------------------------------------------------- endpoints
    def _alive(self) -> tuple[bool, str]:
        lag = time.monotonic() - self.parts.board.last_tick_monotonic
        limit = 3 * self.settings.tick_interval_s + 5
        if lag > limit:
            return False, f"main loop has not ticked for {lag:.1f} s"
        return True, f"ticked {lag:.1f} s ago"

    def _primary(self) -> tuple[bool, str]:
        node = self.driver.node
        if node.state is not State.MASTER:
            return False, f"state is {node.state}"
        if self.parts.board.harbor_healthy is not True:
            return False, "harbor not healthy"
        return True, "MASTER and harbor healthy"

    def _set_ready(self, ready: bool) -> None:
        try:
            if self.parts.track.set_ready(ready):
                log.info("priority_file", value=int(ready), state=str(self.driver.node.state))
            self.parts.metrics.track_file.labels("priority").set(int(ready))
        except Exception as exc:
            self.parts.metrics.errors.labels("priority_file").inc()
            self.parts.board.record_error("priority_file", str(exc))
            log.error("priority_file_write_failed", error=str(exc))

    # ----------------------------------------------------------------- run
    async def run(self) -> int:
        p, s = self.parts, self.settings
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop_requested.set)
        log.info(
            "starting",
            node=s.node_name,
            vip=s.vip,
            image=s.image_spec,
            mountpoint=str(s.mountpoint),
            fifo=str(s.keepalived_fifo),
        )
        try:
            # Until reconciled, this node must not attract the VIP.
            p.track.ensure(keep_existing=True)
            reader = FifoReader(
                s.keepalived_fifo,
                on_bad_line=self._bad_line,
                on_reopen=lambda: p.metrics.fifo_reopens.inc(),
            )
            facts = await observe_facts(p)
            if not facts.mounted and not facts.mount_foreign:
                await p.fs.guard()
            initial: Result = from_facts(facts, demote_on_exit=s.stop_harbor_on_exit)
            await self.http.start()
        except Exception as exc:
            log.error("start_failed", error=f"{type(exc).__name__}: {exc}")
            await self._close()
            return EXIT_START_FAILED
        p.board.reconciled = True
        ticker = VipTicker(
            s,
            driver=self.driver,
            board=p.board,
            metrics=p.metrics,
            vip_present=lambda: vip_present(p.runner, s),
            notifier=self.notifier,
        )
        monitor = Monitor(
            s,
            driver=self.driver,
            board=p.board,
            metrics=p.metrics,
            harbor=p.harbor,
            containers=p.containers,
            ceph=p.ceph,
            fs=p.fs,
            compose=p.compose,
            is_mounted_from=lambda dev: filesystem.is_mounted_from(s.mountpoint, dev),
            is_read_only=lambda: filesystem.is_read_only(s.mountpoint),
            set_ready=self._set_ready,
            wake=p.wake,
        )
        driver_task = asyncio.create_task(
            self.driver.run(initial, "reconciled from facts"), name="driver"
        )
        intake: dict[str, Coroutine[Any, Any, None]] = {
            "fifo": follow_fifo(reader.lines(), s, self.driver, p.board, p.metrics),
            "ticker": ticker.run(),
            "monitor": monitor.run(),
            "docker-events": forward_container_events(p.containers.watch(), p.wake, p.step_wake),
        }
        tasks = {asyncio.create_task(coro, name=name) for name, coro in intake.items()}
        self.notifier.notify("READY=1", f"STATUS=reconciled: {self.driver.node.state}")
        log.info("ready", state=str(self.driver.node.state))
        stopper = asyncio.create_task(self.stop_requested.wait(), name="stop-requested")
        done, _ = await asyncio.wait(
            {*tasks, driver_task, stopper}, return_when=asyncio.FIRST_COMPLETED
        )
        code = EXIT_OK
        for task in done - {stopper}:
            if task is driver_task and self.driver.exited.is_set():
                continue
            code = EXIT_TASK_DIED
            died = task.exception() if not task.cancelled() else None
            log.error(
                "root_task_died",
                task=task.get_name(),
                error=f"{type(died).__name__}: {died}" if died else "returned",
            )
        await self._shutdown(tasks, driver_task, stopper, reader)
        return code

    def _bad_line(self, raw: str, reason: str) -> None:
        self.parts.metrics.fifo_bad_lines.inc()
        log.warning("fifo_bad_line", line=raw[:200], reason=reason)

    async def _shutdown(
        self,
        tasks: set[asyncio.Task[None]],
        driver_task: asyncio.Task[None],
        stopper: asyncio.Task[bool],
        reader: FifoReader,
    ) -> None:
        s = self.settings
        deadline = time.monotonic() + s.shutdown_timeout_s
        self.notifier.notify("STOPPING=1")
        log.info("shutdown_begin", state=str(self.driver.node.state))
        # Phase 1: stop intake (no new keepalived lines, probes or events).
        stopper.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.wait({*tasks, stopper}, timeout=5)
        reader.close()
        # Phase 2: the driver finishes a demotion or cancels the running step.
        if not driver_task.done():
            self.driver.post(Event.SHUTDOWN, "SIGTERM")
            await asyncio.wait({driver_task}, timeout=max(0.1, deadline - time.monotonic()))
        if not driver_task.done():
            log.error("shutdown_driver_timeout", state=str(self.driver.node.state))
            driver_task.cancel()
            await asyncio.wait({driver_task}, timeout=5)
        # Phase 3: servers and clients.
        await self._close()
        log.info("shutdown_end", state=str(self.driver.node.state))

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.http.stop(), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.parts.containers.close(), 5)
        self.notifier.close()


async def run_daemon(settings: Settings, *, notify_socket: str | None = None) -> int:
    return await Daemon(settings, notify_socket=notify_socket).run()
