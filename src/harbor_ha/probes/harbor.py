"""One verdict on the local Harbor: its containers, whether it serves through its own proxy,
and its health API judged by each component's criticality."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from harbor_ha.probes.containers import ContainerProbe, ContainerReport
from harbor_ha.probes.http import HealthProbe, HealthReport, ServeReport
from harbor_ha.settings import Settings

log = structlog.get_logger(__name__)

R = TypeVar("R")
RECHECK_S = 0.1
"""While the HTTP probes run, how often a container event is looked for."""
NOT_ASKED = HealthReport(False, "not asked", {}, "health API not asked")
NOT_SERVED = ServeReport(False, "not asked: the containers already failed")


@dataclass(frozen=True)
class HarborHealth:
    """The combined result; ``reason`` names the first failing part (containers, serving,
    health)."""

    healthy: bool
    reason: str
    containers: ContainerReport
    serving: ServeReport
    health: HealthReport
    duration_s: float
    degraded: tuple[str, ...] = ()
    """Non-critical components the health API reports not healthy: an alert, never a
    failover."""
    judged: bool = True
    """False while the health API is not judged (a fresh master's first checker period)."""


def verdict(
    containers: ContainerReport,
    serving: ServeReport,
    health: HealthReport,
    *,
    critical: Collection[str],
    judge_health: bool,
) -> tuple[bool, str, tuple[str, ...]]:
    """(healthy, reason, degraded parts) from the three looks (pure).

    Containers must be up (running, none ``unhealthy``: ``starting`` is not a failure; those
    of non-critical services only degrade) and Harbor must serve through its proxy.  The
    health API counts only when ``judge_health``: then every ``critical`` component must read
    healthy (a critical one missing from the answer counts as not healthy), and the others
    only degrade.  Degraded parts are component names and container names."""
    if not containers.healthy:
        return False, f"containers: {containers.reason}", containers.degraded
    if not serving.ok:
        return False, serving.reason, containers.degraded
    minor = set(containers.degraded)
    if not judge_health:
        why = "harbor serves (health API not judged in its first checker period)"
        return True, why + _listed(minor), tuple(sorted(minor))
    if health.status == "error":  # no answer, not 200, or not Harbor's JSON
        return False, f"health: {health.reason}", tuple(sorted(minor))
    comps = health.components
    bad = [name for name in sorted(critical) if comps.get(name, "not reported") != "healthy"]
    minor |= {name for name, st in comps.items() if st != "healthy" and name not in critical}
    degraded = tuple(sorted(minor))
    if bad:
        parts = ", ".join(f"{name} {comps.get(name, 'not reported')}" for name in bad)
        return False, f"health: critical component not healthy: {parts}", degraded
    if degraded:
        return True, "harbor serves" + _listed(minor), degraded
    return True, "harbor healthy", ()


async def _decided(
    containers: ContainerReport,
    serves: asyncio.Future[ServeReport],
    asked: asyncio.Future[HealthReport] | None,
) -> tuple[ContainerReport, ServeReport, HealthReport]:
    """The containers fail: that is the verdict.  The HTTP probes that ended say what they
    found; the others are cancelled (and waited for, so none is left running)."""
    serving, got = _finished(serves, NOT_SERVED), _finished(asked, NOT_ASKED)
    tasks = [t for t in (serves, asked) if t is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return containers, serving, got


def _finished(task: asyncio.Future[R] | None, otherwise: R) -> R:
    """A probe's report if it has already ended with one, else ``otherwise``."""
    if task is None or not task.done() or task.cancelled() or task.exception() is not None:
        return otherwise
    return task.result()


def _listed(degraded: set[str]) -> str:
    return f"; degraded: {', '.join(sorted(degraded))}" if degraded else ""


class HarborProbe:
    """Runs the probes concurrently (each bounded by probe_timeout_s)."""

    def __init__(self, settings: Settings, container_probe: ContainerProbe) -> None:
        self._settings = settings
        self._containers = container_probe
        self._http = HealthProbe(settings)

    async def close(self) -> None:
        """Drop the HTTP probes' kept-alive connection."""
        await self._http.close()

    async def check(self, *, judge_health: bool = True) -> HarborHealth:
        """Containers, serving and the health API (the MASTER's periodic probe)."""
        started = time.monotonic()
        containers, serving, health = await self._gather(self._http.check())
        return self._result(containers, serving, health, judge_health, started)

    async def serving(self) -> HarborHealth:
        """Containers and serving only: the start step is done when this is healthy.  The
        health API is not asked: its components are checked on core's own 10 s ticker and
        read ``unknown status`` until core's first check ends."""
        started = time.monotonic()
        containers, serving, _ = await self._gather(None)
        return self._result(containers, serving, NOT_ASKED, False, started)

    async def _gather(
        self, health: Coroutine[Any, Any, HealthReport] | None
    ) -> tuple[ContainerReport, ServeReport, HealthReport]:
        """The probes at once.  Containers that already fail decide the verdict: the HTTP
        probes still running are cancelled instead of awaited (a stopped container's address
        may not answer at all, and waiting for probe_timeout_s would only delay the
        failover)."""
        serves = asyncio.ensure_future(self._http.serves())
        asked = asyncio.ensure_future(health) if health is not None else None
        http = [t for t in (serves, asked) if t is not None]
        try:
            containers = await self._containers.check()
            if not containers.healthy:
                return await _decided(containers, serves, asked)
            # Harbor's HTTP answers can take up to probe_timeout_s (a container dying during
            # the probe leaves the proxy's route hanging): a container event meanwhile is
            # looked at, and containers failing then end the wait as above.
            pending = set(http)
            while pending:
                _, pending = await asyncio.wait(pending, timeout=RECHECK_S)
                if pending and self._containers.changed:
                    containers = await self._containers.check()
                    if not containers.healthy:
                        return await _decided(containers, serves, asked)
            return containers, serves.result(), asked.result() if asked is not None else NOT_ASKED
        except BaseException:
            for task in http:
                task.cancel()
            raise

    def _result(
        self,
        containers: ContainerReport,
        serving: ServeReport,
        health: HealthReport,
        judge_health: bool,
        started: float,
    ) -> HarborHealth:
        critical = self._settings.harbor_critical_components
        ok, reason, degraded = verdict(
            containers, serving, health, critical=critical, judge_health=judge_health
        )
        result = HarborHealth(
            ok, reason, containers, serving, health, time.monotonic() - started, degraded,
            judge_health,
        )  # fmt: skip
        log.debug(
            "harbor_probe", healthy=ok, reason=reason, duration_ms=round(result.duration_s * 1e3)
        )
        return result
