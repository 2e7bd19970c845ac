"""The machine's timers on the event loop: arm, disarm, fire, each firing carrying a token.

A timer that was re-armed or disarmed after its firing was queued is stale: :meth:`stale`
says so, and the driver drops the firing, so the machine never sees an old one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from harbor_ha.machine import Timer
from harbor_ha.metrics import Metrics

log = structlog.get_logger("harbor_ha.driver")

Fire = Callable[[Timer, int, str], None]
"""Called on the loop when a timer fires: the timer, its token, the reason it was armed."""


class Timers:
    def __init__(self, metrics: Metrics, fire: Fire) -> None:
        self._metrics = metrics
        self._fire = fire
        self._handles: dict[Timer, asyncio.TimerHandle] = {}
        self._token: dict[Timer, int] = dict.fromkeys(Timer, 0)

    def stale(self, timer: Timer, token: int) -> bool:
        return token != self._token[timer]

    def arm(self, timer: Timer, delay: float, reason: str) -> None:
        self.disarm(timer)
        token = self._token[timer]
        if timer is Timer.RETRY:
            log.warning("fenced_self", retry_in_s=delay)
        elif timer is Timer.BACKOFF:
            log.info("timer_armed", seconds=round(delay, 3), reason=reason)
            self._metrics.backoff_until.set(time.time() + delay)
        else:
            log.debug("timer_armed", timer=str(timer), seconds=round(delay, 3), reason=reason)
        self._handles[timer] = asyncio.get_running_loop().call_later(
            delay, self._fired, timer, token, reason
        )

    def _fired(self, timer: Timer, token: int, reason: str) -> None:
        self._handles.pop(timer, None)
        if timer is Timer.BACKOFF:
            self._metrics.backoff_until.set(0)
        self._fire(timer, token, reason)

    def disarm(self, timer: Timer) -> None:
        self._token[timer] += 1  # a firing already queued is stale
        handle = self._handles.pop(timer, None)
        if handle is not None:
            handle.cancel()
        if timer is Timer.BACKOFF:
            self._metrics.backoff_until.set(0)

    def disarm_all(self) -> None:
        for timer in Timer:
            self.disarm(timer)
