"""One verdict on the local Harbor: containers + TCP port + health API."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from harbor_ha.probes.containers import ContainerProbe, ContainerReport
from harbor_ha.probes.http import HealthProbe, HealthReport, ProbeResult, tcp_probe
from harbor_ha.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class HarborHealth:
    """The combined result; ``reason`` names the first failing part (containers, tcp, health)."""

    healthy: bool
    reason: str
    containers: ContainerReport
    tcp: ProbeResult
    health: HealthReport
    duration_s: float


class HarborProbe:
    """Runs the three probes concurrently (each bounded by probe_timeout_s)."""

    def __init__(self, settings: Settings, container_probe: ContainerProbe) -> None:
        self._settings = settings
        self._containers = container_probe
        self._health = HealthProbe(settings)

    async def close(self) -> None:
        """Drop the health probe's kept-alive connection."""
        await self._health.close()

    async def check(self) -> HarborHealth:
        s = self._settings
        started = time.monotonic()
        containers, tcp, health = await asyncio.gather(
            self._containers.check(),
            tcp_probe(s.probe_host, s.https_port, s.probe_timeout_s),
            self._health.check(),
        )
        if not containers.healthy:
            ok, reason = False, f"containers: {containers.reason}"
        elif not tcp.ok:
            ok, reason = False, f"tcp: {tcp.reason}"
        elif not health.ok:
            ok, reason = False, f"health: {health.reason}"
        else:
            ok, reason = True, "harbor healthy"
        result = HarborHealth(ok, reason, containers, tcp, health, time.monotonic() - started)
        log.debug(
            "harbor_probe", healthy=ok, reason=reason, duration_ms=round(result.duration_s * 1e3)
        )
        return result
