"""The standby's readiness to take over (safety rule 9), each fact asked at the cadence its cost
and its rate of change deserve.

Every check (``standby_check_interval_s``), in process, no command run:

- a Ceph monitor accepts a TCP connection (the addresses from ``ceph_mon_host`` or ceph.conf;
  none known: this fact is left to the CLI checks below). A standby cut from Ceph is the
  likely failure, and it shows here within one interval;
- the Docker engine answers, and has every image the compose file names (Docker API).

Every ``standby_ceph_check_interval_s``, and at the next check after any failure or a new
BACKUP period, with one Ceph CLI process each:

- ``rbd info``: Ceph answers our key, the image exists and has the exclusive-lock feature;
- ``rbd device list``: the image is not mapped on this node (a stale mapping).

These two change only by an operator's action or by this node's own failed unmap (which ends
a BACKUP period: the new period asks again at once), and none of them is used by a promotion
without being asked again: the lease step asks Ceph for the lease, the fence step reads the
watchers, the map step lists the mappings before it maps. A stale "ready" can thus at most let
a standby that lost its Ceph key or image take the VIP and then fail its promotion; the
readiness only decides who may win an election, never what a step does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from harbor_ha.probes.http import tcp_probe
from harbor_ha.settings import Settings

from .ports import CephPort, ComposePort, ContainerProbePort

log = structlog.get_logger("harbor_ha.standby_readiness")


class StandbyReadiness:
    """Asks the facts; owns the last answer of the CLI-backed Ceph facts and its time."""

    def __init__(
        self,
        settings: Settings,
        *,
        ceph: CephPort,
        containers: ContainerProbePort,
        compose: ComposePort,
        monitors: list[tuple[str, int]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._s = settings
        self._ceph = ceph
        self._containers = containers
        self._compose = compose
        self._monitors = monitors
        self._clock = clock
        self._ceph_problems: list[str] = []
        self._ceph_at: float | None = None  # when the CLI facts were last asked (None: never)

    def reset(self) -> None:
        """A new BACKUP period: the next check asks every fact afresh."""
        self._ceph_at = None

    @property
    def ceph_age_s(self) -> float | None:
        """Seconds since the CLI-backed Ceph facts were asked (None: not yet in this period)."""
        return None if self._ceph_at is None else self._clock() - self._ceph_at

    async def problems(self) -> list[str]:
        """Everything that keeps this standby from taking over ([] = ready); never raises."""
        reach = await self._monitor_reachable()
        if reach:
            self._ceph_at = None  # ask the CLI facts as soon as the monitors answer again
            problems = reach
        else:
            problems = await self._ceph_facts()
        return problems + await self._docker_facts()

    async def _monitor_reachable(self) -> list[str]:
        if not self._monitors:
            return []
        timeout = self._s.probe_timeout_s
        results = await asyncio.gather(*(tcp_probe(h, p, timeout) for h, p in self._monitors))
        if any(r.ok for r in results):
            return []
        return ["ceph: no monitor reachable (" + "; ".join(r.reason for r in results) + ")"]

    async def _ceph_facts(self) -> list[str]:
        now = self._clock()
        fresh = (
            self._ceph_at is not None
            and not self._ceph_problems
            and now - self._ceph_at < self._s.standby_ceph_check_interval_s
        )
        if fresh:
            return list(self._ceph_problems)
        problems: list[str] = []
        try:
            info = await self._ceph.image_info()
            features = info.get("features", [])
            if not isinstance(features, list) or "exclusive-lock" not in features:
                problems.append(f"image {self._s.image_spec} lacks the exclusive-lock feature")
        except Exception as exc:
            problems.append(f"ceph: {exc}")
        else:
            try:
                stale = await self._ceph.device_for_image()
                if stale is not None:
                    problems.append(f"stale local mapping {stale} while BACKUP")
            except Exception as exc:
                problems.append(f"rbd device list: {exc}")
        self._ceph_problems, self._ceph_at = problems, self._clock()
        return list(problems)

    async def _docker_facts(self) -> list[str]:
        if not await self._containers.ping():
            return ["docker engine not answering"]
        try:  # the file's images (cached), then the Docker API: no docker CLI run
            missing = await self._containers.missing_images(await self._compose.images())
        except Exception as exc:
            return [f"images: {exc}"]
        return ["harbor images missing: " + ", ".join(missing)] if missing else []
