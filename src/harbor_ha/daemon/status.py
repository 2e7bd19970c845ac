"""What /status shows, built when read from the read-only views of the facts' owners.

Each fact has one owner: the driver owns the node (state, since, transitions), the steps own
the mapped device and Harbor's health at start, the monitor owns the probe results, the VIP
ticker owns the last VIP observation, the FIFO follower the last keepalived line, the
replication watch (replicated mode) what it saw of replication.  Nobody writes here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harbor_ha.replication.watch import ReplicationWatch

from .cluster import ClusterWatch
from .driver import Driver
from .monitor import Monitor
from .recent import Errors, merged
from .steps import Steps
from .watchers import FifoFollower, VipTicker


@dataclass(frozen=True)
class StatusView:
    node_name: str
    driver: Driver
    steps: Steps
    monitor: Monitor
    ticker: VipTicker
    fifo: FifoFollower
    reconciled: Callable[[], bool]
    replication: ReplicationWatch | None = None  # None in the rbd mode
    replication_errors: Errors | None = None
    cluster: ClusterWatch | None = None  # None without HARBOR_HA_NODES

    def harbor_healthy(self) -> bool | None:
        """The monitor's debounced verdict in the current state, else the start step's."""
        probed = self.monitor.harbor_healthy(self.driver.since)
        return probed if probed is not None else self.steps.harbor_healthy

    def snapshot(self) -> dict[str, Any]:
        n = self.driver.node
        since = self.driver.since
        errors = (
            self.driver.errors, self.ticker.errors, self.monitor.errors,
            self.replication_errors or (), self.cluster.errors if self.cluster else (),
        )  # fmt: skip
        return {
            "node": self.node_name,
            "mode": str(n.policy.mode),
            "state": str(n.state),
            "since": since,
            "seconds_in_state": round(time.time() - since, 3),
            "want_master": n.want_master,
            "fault": n.fault_file_on,
            "maintenance": n.maintenance,
            "failures": n.failures,
            "step": str(n.step) if n.step else None,
            "vip_present": self.ticker.vip_present,
            "harbor_healthy": self.harbor_healthy(),
            "harbor_degraded": list(self.monitor.degraded),
            "standby_ready": self.monitor.ready,
            "standby_problems": list(self.monitor.ready_problems),
            "device": self.steps.device,
            "lease": self.steps.lease_view(),
            "reconciled": self.reconciled(),
            "probes": dict(self.monitor.probes),
            "last_event": self.fifo.last_event,
            "last_transitions": list(self.driver.transitions),
            "last_failover": self.driver.last_failover,
            "last_errors": merged(errors),
            "replication": self.replication.view() if self.replication else None,
            "cluster_fingerprint": self.cluster.view() if self.cluster else None,
        }
