"""Root tasks that turn the outside world into events: keepalived's FIFO, the VIP tick, Docker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from harbor_ha.keepalived.fifo import FifoLine
from harbor_ha.machine import Event
from harbor_ha.metrics import Metrics
from harbor_ha.probes.containers import may_have_started

from .driver import Driver
from .pulse import Pulse
from .recent import Errors
from .sdnotify import SdNotifier

log = structlog.get_logger("harbor_ha.watchers")

ROLE_EVENTS: dict[str, Event] = {
    "MASTER": Event.KA_MASTER,
    "BACKUP": Event.KA_BACKUP,
    "FAULT": Event.KA_FAULT,
    "STOP": Event.KA_STOP,
    "DELETED": Event.KA_STOP,  # instance removed by a reload: we cannot be its master
}
"""keepalived state words that change our role; the others (priority changes) are counted only."""


def event_for_line(line: FifoLine, instance: str) -> Event | None:
    """The machine event a FIFO line asks for, or None (another instance, or informational)."""
    if line.kind != "INSTANCE" or line.name != instance:
        return None
    return ROLE_EVENTS.get(line.state)


class FifoFollower:
    """Forwards keepalived's role changes for our instance to the driver.  Owns the last line."""

    def __init__(self, instance: str, driver: Driver, metrics: Metrics) -> None:
        self._instance = instance
        self._driver = driver
        self._metrics = metrics
        self.last_event: dict[str, Any] | None = None

    async def follow(self, lines: AsyncIterator[FifoLine]) -> None:
        async for line in lines:
            self._metrics.fifo_lines.labels(line.state).inc()
            self._metrics.last_event_ts.set(time.time())
            self.last_event = {"at": time.time(), "line": line.raw}
            event = event_for_line(line, self._instance)
            if event is None:
                log.debug("fifo_line_ignored", line=line.raw)
                continue
            log.info("fifo_line", line=line.raw, _event=str(event))
            self._driver.post(event, f"keepalived: {line.raw}")


class VipTicker:
    """Every tick: tell the machine whether the VIP is on the interface (it judges the mismatch:
    missed FIFO lines must not matter), re-assert the fault file, and ping systemd's watchdog if
    the loop made progress.  Owns the last VIP observation and the tick time."""

    def __init__(
        self,
        *,
        interval_s: float,
        driver: Driver,
        metrics: Metrics,
        vip_present: Callable[[], Awaitable[bool]] | None,
        notifier: SdNotifier,
    ) -> None:
        self._interval_s = interval_s
        self._driver = driver
        self._metrics = metrics
        self._vip_present = vip_present
        self._notifier = notifier
        self.vip_present: bool | None = None
        self.last_tick_monotonic = time.monotonic()
        self.errors = Errors()

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await self.tick()
            await asyncio.sleep(max(0.0, self._interval_s - (time.monotonic() - started)))

    async def tick(self) -> None:
        now = time.monotonic()
        lag = now - self.last_tick_monotonic
        self.last_tick_monotonic = now
        self._metrics.loop_tick_ts.set(time.time())
        if self._vip_present is not None:  # the shared mode has no VIP to observe
            await self._observe_vip(self._vip_present)
        self._driver.rewrite_fault()
        # The tick ran, so the loop is not blocked; a lag of several ticks means it was.
        if lag < 5 * self._interval_s + 5:
            self._notifier.notify("WATCHDOG=1")
        else:
            log.warning("loop_lag", lag_s=round(lag, 3))

    async def _observe_vip(self, vip_present: Callable[[], Awaitable[bool]]) -> None:
        try:
            vip = await vip_present()
        except Exception as exc:
            self._metrics.errors.labels("vip_check").inc()
            self.errors.record("vip_check", str(exc))
            log.warning("vip_check_failed", error=str(exc))
        else:
            self.vip_present = vip
            self._metrics.vip_present.set(int(vip))
            event = Event.VIP_SEEN if vip else Event.VIP_ABSENT
            self._driver.post(event, "VIP tick")


async def forward_container_events(
    events: AsyncIterator[str], wake: Pulse, on_start: Callable[[], None] | None = None
) -> None:
    """Docker container start/die/stop/health_status of the project: wake the monitor and the
    start step at once (each waits on the pulse with its own mark, so neither swallows it);
    a container start is also told to ``on_start`` (the monitor: a standby then looks for
    data-bearing services at once, not at its next readiness check)."""
    async for what in events:
        log.debug("container_event", what=what)
        if on_start is not None and may_have_started(what):
            on_start()
        wake.fire()
