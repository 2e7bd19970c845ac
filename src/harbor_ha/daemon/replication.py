"""The replicated mode's watch of replication, as the daemon shows it: the metrics and the
errors /status merges (the watch itself: harbor_ha.replication.watch)."""

from __future__ import annotations

import contextlib

from harbor_ha.metrics import Metrics
from harbor_ha.replication.summary import STATUSES, Summary
from harbor_ha.replication.watch import ReplicationWatch
from harbor_ha.settings import Settings

from .recent import Errors


class WatchMetrics:
    """The watch's observer: every look into the metrics, each new error into ``errors``."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics
        self.errors = Errors()

    def summarised(self, summary: Summary) -> None:
        m, policy = self._m, summary.policy
        for status in STATUSES:
            m.replication_last_status.labels(policy, status).set(
                1 if status == summary.status else 0
            )
        if summary.age_s is None:
            with contextlib.suppress(KeyError):
                m.replication_last_age.remove(policy)
        else:
            m.replication_last_age.labels(policy).set(summary.age_s)
        m.replication_failed_items.labels(policy).set(summary.failed)
        m.replication_total_items.labels(policy).set(summary.total)

    def peer_probed(self, peer: str, up: bool) -> None:
        self._m.replication_peer_up.labels(peer).set(1 if up else 0)

    def manual_run(self, policy: str) -> None:
        self._m.replication_manual_runs.inc()

    def error(self, where: str, error: str, repeated: bool) -> None:
        self._m.errors.labels(where).inc()
        if not repeated:
            self.errors.record(where, error)


def replication_watch(settings: Settings, observer: WatchMetrics) -> ReplicationWatch:
    """The watch of this node's replication policy, as the settings say."""
    return ReplicationWatch(
        credentials=settings.replication_credentials_file,
        node_name=settings.node_name,
        interval_s=settings.replication_watch_interval_s,
        timeout_s=settings.replication_timeout_s,
        observer=observer,
    )
