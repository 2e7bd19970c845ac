"""Root tasks that turn the outside world into events: keepalived's FIFO, the VIP tick, Docker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog

from harbor_ha.keepalived.fifo import FifoLine
from harbor_ha.machine import PROMOTING, Event, State
from harbor_ha.metrics import Metrics
from harbor_ha.settings import Settings

from .driver import Driver
from .sdnotify import SdNotifier
from .status import StatusBoard

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


async def follow_fifo(
    lines: AsyncIterator[FifoLine],
    settings: Settings,
    driver: Driver,
    board: StatusBoard,
    metrics: Metrics,
) -> None:
    """Forward keepalived's role changes for our instance to the driver."""
    async for line in lines:
        metrics.fifo_lines.labels(line.state).inc()
        metrics.last_event_ts.set(time.time())
        board.last_event = {"at": time.time(), "line": line.raw}
        event = event_for_line(line, settings.vrrp_instance)
        if event is None:
            log.debug("fifo_line_ignored", line=line.raw)
            continue
        log.info("fifo_line", line=line.raw, _event=str(event))
        driver.post(event, f"keepalived: {line.raw}")


class VipTicker:
    """Every tick: compare the VIP on the interface with the state (missed FIFO lines must not
    matter), re-assert the fault file, and ping systemd's watchdog if the loop made progress."""

    def __init__(
        self,
        settings: Settings,
        *,
        driver: Driver,
        board: StatusBoard,
        metrics: Metrics,
        vip_present: Callable[[], Awaitable[bool]],
        notifier: SdNotifier,
    ) -> None:
        self._s = settings
        self._driver = driver
        self._board = board
        self._metrics = metrics
        self._vip_present = vip_present
        self._notifier = notifier
        self._mismatch = 0

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await self.tick()
            await asyncio.sleep(max(0.0, self._s.tick_interval_s - (time.monotonic() - started)))

    async def tick(self) -> None:
        now = time.monotonic()
        lag = now - self._board.last_tick_monotonic
        self._board.last_tick_monotonic = now
        self._metrics.loop_tick_ts.set(time.time())
        try:
            vip = await self._vip_present()
        except Exception as exc:
            self._metrics.errors.labels("vip_check").inc()
            self._board.record_error("vip_check", str(exc))
            log.warning("vip_check_failed", error=str(exc))
        else:
            self._board.vip_present = vip
            self._compare(vip)
        self._driver.rewrite_fault()
        # The tick ran, so the loop is not blocked; a lag of several ticks means it was.
        if lag < 5 * self._s.tick_interval_s + 5:
            self._notifier.notify("WATCHDOG=1")
        else:
            log.warning("loop_lag", lag_s=round(lag, 3))

    def _compare(self, vip: bool) -> None:
        node = self._driver.node
        holding = node.state is State.MASTER or node.state in PROMOTING
        if vip and node.state is State.BACKUP and not node.want_master:
            mismatch, event = True, Event.KA_MASTER
        elif not vip and holding and node.want_master:
            mismatch, event = True, Event.KA_BACKUP
        else:
            mismatch, event = False, None
        self._mismatch = self._mismatch + 1 if mismatch else 0
        if event is not None and self._mismatch >= self._s.vip_mismatch_ticks:
            why = "VIP present" if vip else "VIP absent"
            log.warning(
                "vip_mismatch",
                state=str(node.state),
                vip=vip,
                ticks=self._mismatch,
                _event=str(event),
            )
            self._driver.post(
                event,
                f"{why} on {self._s.interface} for {self._mismatch} ticks "
                "without a matching keepalived line",
            )
            self._mismatch = 0


async def forward_container_events(events: AsyncIterator[str], *wakes: asyncio.Event) -> None:
    """Docker container start/die/stop/health_status of the project: wake the monitor (and the
    start step, on its own event) at once."""
    async for what in events:
        log.debug("container_event", what=what)
        for wake in wakes:
            wake.set()
