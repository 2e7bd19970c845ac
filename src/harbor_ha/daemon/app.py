"""The daemon's life in three phases: startup -> supervise -> shutdown.

- startup: the track files say "not ready" until reconciled; observe the facts, derive the
  first state, start HTTP, READY=1.
- supervise: spawn the named root tasks (driver, FIFO, VIP tick, monitor, Docker events;
  in the replicated mode the replication watch; with HARBOR_HA_NODES the cluster watch;
  with HARBOR_HA_SHARED_EVICT_AFTER_S the CephFS evictor),
  wait for the first to end or for a stop
  signal.  A root task that ends is a failure (exit 1); systemd restarts the daemon and the
  restart reconciles from facts.
- shutdown, in bounded phases: stop intake, let the driver finish a demotion or cancel the
  running step (SHUTDOWN event), stop the servers and close the clients.

Signal handlers only set an event.  All wiring is in ``build.build``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Coroutine
from typing import Any

import structlog

from harbor_ha.machine import Event, Mode, Result, from_facts
from harbor_ha.settings import Settings

from .build import Parts, build, policy_of
from .failsafe import promise_left, promise_path
from .reconcile import observe, observe_replicated, observe_shared
from .watchers import forward_container_events

log = structlog.get_logger("harbor_ha.daemon")

EXIT_OK = 0
EXIT_TASK_DIED = 1
EXIT_START_FAILED = 3

INTAKE_STOP_S = 5.0
"""Bound on stopping the intake tasks, and on each close of a server or client."""


class Daemon:
    def __init__(self, settings: Settings, *, notify_socket: str | None = None) -> None:
        self.parts: Parts = build(settings, notify_socket=notify_socket)
        self.settings = self.parts.settings
        self.stop_requested = asyncio.Event()
        self._warm: asyncio.Task[None] | None = None

    async def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(sig, self.stop_requested.set)
        initial = await self.startup()
        if initial is None:
            return EXIT_START_FAILED
        tasks = self.spawn(initial)
        code = await self.supervise(tasks)
        await self.shutdown(tasks)
        return code

    # ------------------------------------------------------------ startup
    async def startup(self) -> Result | None:
        """Reconcile and start HTTP; None when the daemon cannot start."""
        p, s = self.parts, self.settings
        log.info(
            "starting",
            mode=str(s.mode),
            node=s.node_name,
            vip=s.vip,
            image=s.image_spec,
            mountpoint=str(s.mountpoint),
            fifo=str(s.keepalived_fifo),
        )
        try:
            # Until reconciled, this node must not attract the VIP.
            p.track.ensure(keep_existing=True)
            if s.mode is Mode.SHARED:
                # No VIP, image or lease: what is mounted here and whether Harbor runs.
                assert p.shared is not None
                seen = await observe_shared(fs=p.shared, compose=p.compose)
                if p.shared.mounts and not seen.facts.mounted and not seen.facts.mount_foreign:
                    await p.shared.guard()
                return await self._started(
                    from_facts(
                        seen.facts, policy=policy_of(s), demote_on_exit=s.stop_harbor_on_exit
                    )
                )
            if s.mode is Mode.REPLICATED:
                # No image: nothing to adopt, and the data volume is Harbor's own directory
                # (never guarded: chattr +i on it would stop Harbor writing).
                seen = await observe_replicated(
                    vip_present=p.vip_present, compose=p.compose, peer_state=p.peer_state
                )
                return await self._started(
                    from_facts(
                        seen.facts, policy=policy_of(s), demote_on_exit=s.stop_harbor_on_exit
                    )
                )
            seen = await observe(
                vip_present=p.vip_present,
                ceph=p.ceph,
                fs=p.fs,
                compose=p.compose,
                occupied=p.occupied,
                lease_peer=p.leasing.peer_holds,
                promised_s=promise_left(promise_path(s), s.failsafe_window_s),
            )
            p.steps.adopt(seen.device)
            if not seen.facts.mounted and not seen.facts.mount_foreign:
                await p.fs.guard()
            initial = from_facts(
                seen.facts, demote_on_exit=s.stop_harbor_on_exit, policy=policy_of(s)
            )
            return await self._started(initial)
        except Exception as exc:
            log.error("start_failed", error=f"{type(exc).__name__}: {exc}")
            await self._close()
            return None

    async def _started(self, initial: Result) -> Result:
        """Reconciled: start the HTTP servers (and the failsafe's)."""
        p = self.parts
        await p.http.start()
        if p.failsafe.server is not None:
            await p.failsafe.server.start()
        p.reconciled = True
        return initial

    # ---------------------------------------------------------- supervise
    def spawn(self, initial: Result) -> dict[str, asyncio.Task[Any]]:
        """Create the named root tasks, then tell systemd the daemon is ready."""
        p = self.parts
        roots: dict[str, Coroutine[Any, Any, Any]] = {
            "driver": p.driver.run(initial, "reconciled from facts"),
            "ticker": p.ticker.run(),
            "monitor": p.monitor.run(),
            "docker-events": forward_container_events(
                p.containers.watch(), p.wake, p.monitor.container_started
            ),
            "stop-requested": self.stop_requested.wait(),
        }
        if self.settings.mode is not Mode.SHARED:  # keepalived has no say in the shared mode
            roots["fifo"] = p.fifo.follow(p.fifo_reader.lines())
        if p.replication is not None:  # the replicated mode
            roots["replication-watch"] = p.replication.run()
        if p.cluster is not None:  # HARBOR_HA_NODES set
            roots["cluster-watch"] = p.cluster.run()
        if p.evictor is not None:  # HARBOR_HA_SHARED_EVICT_AFTER_S set
            roots["cephfs-evictor"] = p.evictor.run()
        tasks = {name: asyncio.create_task(coro, name=name) for name, coro in roots.items()}
        if self.settings.mode is Mode.RBD:  # the replicated mode has no lease
            self._warm = asyncio.create_task(p.lease.warm(), name="lease-warm")  # not a root
        state = p.driver.node.state
        p.notifier.notify("READY=1", f"STATUS=reconciled: {state}")
        log.info("ready", state=str(state))
        return tasks

    async def supervise(self, tasks: dict[str, asyncio.Task[Any]]) -> int:
        """Wait for the first root task to end; its reason is the exit code."""
        done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
        code = EXIT_OK
        for task in done:
            name = task.get_name()
            if name == "stop-requested" or (name == "driver" and self.parts.driver.exited.is_set()):
                continue
            code = EXIT_TASK_DIED
            died = task.exception() if not task.cancelled() else None
            log.error(
                "root_task_died",
                task=name,
                error=f"{type(died).__name__}: {died}" if died else "returned",
            )
        return code

    # ----------------------------------------------------------- shutdown
    async def shutdown(self, tasks: dict[str, asyncio.Task[Any]]) -> None:
        p, s = self.parts, self.settings
        deadline = time.monotonic() + s.shutdown_timeout_s
        driver = tasks["driver"]
        p.notifier.notify("STOPPING=1")
        log.info("shutdown_begin", state=str(p.driver.node.state))
        # Phase 1: stop intake (no new keepalived lines, probes or events).
        intake = [t for name, t in tasks.items() if name != "driver"]
        for task in intake:
            task.cancel()
        await asyncio.wait(intake, timeout=INTAKE_STOP_S)
        p.fifo_reader.close()
        # Phase 2: the driver finishes a demotion or cancels the running step.
        if not driver.done():
            p.driver.post(Event.SHUTDOWN, "SIGTERM")
            await asyncio.wait({driver}, timeout=max(0.1, deadline - time.monotonic()))
        if not driver.done():
            log.error("shutdown_driver_timeout", state=str(p.driver.node.state))
            driver.cancel()
            await asyncio.wait({driver}, timeout=INTAKE_STOP_S)
        # Phase 3: servers and clients.
        await self._close()
        log.info("shutdown_end", state=str(p.driver.node.state))

    async def _close(self) -> None:
        if self.parts.failsafe.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.parts.failsafe.server.stop(), INTAKE_STOP_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.parts.http.stop(), INTAKE_STOP_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.parts.containers.close(), INTAKE_STOP_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.parts.harbor.close(), INTAKE_STOP_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.parts.lease.close(), INTAKE_STOP_S)
        self.parts.notifier.close()
        self.parts.history.close()


async def run_daemon(settings: Settings, *, notify_socket: str | None = None) -> int:
    return await Daemon(settings, notify_socket=notify_socket).run()
