"""How long this node has been FENCED_SELF without a clean demotion since (a metric).

A node that stays FENCED_SELF and mapped longer than the blocklist's expiry is one whose
fence lapses while it may still hold the image: the HarborHaFencedSelfStillMapped alert
compares this clock with ``harbor_ha_blocklist_expire_seconds``.  FENCED_SELF's retries pass
through the demotion states; only a clean end (BACKUP) resets the clock.
"""

from __future__ import annotations

from typing import Any

from harbor_ha.metrics import Metrics


class FencedSelfClock:
    """A driver observer: sets ``harbor_ha_fenced_self_since_timestamp_seconds``."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.since = 0.0

    def __call__(self, record: dict[str, Any]) -> None:
        if record["to"] == "FENCED_SELF" and not self.since:
            self.since = float(record["at"])
        elif record["to"] == "BACKUP":
            self.since = 0.0
        self._metrics.fenced_self_since.set(self.since)
