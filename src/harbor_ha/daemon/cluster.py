"""The daemon's look at the cluster (only with HARBOR_HA_NODES): every
``fingerprint_interval_s`` it reads this node's fingerprint from Harbor's files (off the
loop, bounded by ``command_timeout_s``: a hung mount cannot stall the daemon) for /status,
reads the other nodes' from their /status, compares, and sets the metrics
harbor_ha_cluster_mismatch{item} and harbor_ha_cluster_nodes_compared."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from harbor_ha.blocking import call_bounded
from harbor_ha.cluster import Fingerprint, compare_nodes
from harbor_ha.cluster.fingerprint import ITEMS
from harbor_ha.metrics import Metrics
from harbor_ha.peer.cluster import cluster_readings, local_fingerprint
from harbor_ha.settings import Settings

from .recent import Errors

log = structlog.get_logger("harbor_ha.cluster")

FILE_LOGGER_ITEM = "job_logger_file"
"""The metric's item for a node whose jobservice keeps job logs on FILE."""


class ClusterWatch:
    """This node's latest fingerprint (for /status) and the cluster's comparison (metrics)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._s = settings
        self._m = metrics
        self.latest: Fingerprint | None = None
        self.errors = Errors()
        self._differing: set[str] | None = None

    def view(self) -> dict[str, Any] | None:
        """/status's cluster_fingerprint: None until the first reading."""
        return self.latest.to_json() if self.latest is not None else None

    async def look(self) -> None:
        """One reading and comparison."""
        s = self._s
        try:
            self.latest = await call_bounded(
                lambda: local_fingerprint(s), s.command_timeout_s, "harbor-ha-fingerprint"
            )
        except TimeoutError:
            why = f"reading Harbor's files took over {s.command_timeout_s} s"
            self.errors.record("cluster", why)
            return
        comparison = compare_nodes(await cluster_readings(s, self.latest))
        differing = set(comparison.differing)
        if comparison.file_loggers:
            differing.add(FILE_LOGGER_ITEM)
        for item in (*ITEMS, FILE_LOGGER_ITEM):
            self._m.cluster_mismatch.labels(item).set(1 if item in differing else 0)
        self._m.cluster_nodes_compared.set(len(comparison.compared))
        if differing != self._differing:
            emit = log.warning if differing else log.info
            emit(
                "cluster_compared", differing=sorted(differing), compared=comparison.compared,
                reason="the set of differing items changed",
            )  # fmt: skip
            self._differing = differing

    async def run(self) -> None:
        """Look every fingerprint_interval_s; a failed look is an error in /status, never the
        end of the daemon (the watch only informs)."""
        while True:
            try:
                await self.look()
            except Exception as exc:
                self.errors.record("cluster", f"{type(exc).__name__}: {exc}")
                log.exception("cluster_look_failed", reason=str(exc))
            await asyncio.sleep(self._s.fingerprint_interval_s)
