"""Prometheus metrics, on a registry of their own (one per daemon, so tests stay independent)."""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from harbor_ha import __version__
from harbor_ha.machine import State

STATES = [str(s) for s in State]
"""The values of the harbor_ha_state enum: the machine's states, in its order."""

STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class Metrics:
    """Every metric harbor-ha exports.  Names are prefixed ``harbor_ha_``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # process_* (start time, CPU, memory, fds) and python_info, as every exporter has them:
        # changes(process_start_time_seconds) counts restarts.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.build = Info("harbor_ha_build", "The running harbor-ha's version.", registry=r)
        self.build.info({"version": __version__, "python": platform.python_version()})
        self.state = Enum("harbor_ha_state", "The node's state.", states=STATES, registry=r)
        self.transitions = Counter(
            "harbor_ha_transitions",
            "State transitions.",
            ["from_state", "to_state", "event"],
            registry=r,
        )
        self.step_duration = Histogram(
            "harbor_ha_step_duration_seconds",
            "Duration of each step by outcome.",
            ["step", "outcome"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.failover_duration = Histogram(
            "harbor_ha_failover_duration_seconds",
            "From keepalived's MASTER to Harbor healthy on this node.",
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.probe_results = Counter(
            "harbor_ha_probe_results",
            "Probe results.",
            ["probe", "result"],
            registry=r,
        )
        self.probe_ok = Gauge(
            "harbor_ha_probe_ok",
            "Last raw result of each probe (1 ok).",
            ["probe"],
            registry=r,
        )
        self.harbor_healthy = Gauge(
            "harbor_ha_harbor_healthy",
            "Debounced Harbor health on this node.",
            registry=r,
        )
        self.harbor_degraded = Gauge(
            "harbor_ha_harbor_component_degraded",
            "1 while a non-critical component of Harbor's health API (not in "
            "HARBOR_HA_HARBOR_CRITICAL_COMPONENTS) reads unhealthy on this MASTER: no failover.",
            ["component"],
            registry=r,
        )
        self.lease_held = Gauge(
            "harbor_ha_lease_held",
            "1 while this node holds the leadership lease (its last renewal not yet expired).",
            registry=r,
        )
        self.lease_expiry = Gauge(
            "harbor_ha_lease_expiry_timestamp_seconds",
            "When this node's lease expires at the latest (last renewal + duration); 0: none.",
            registry=r,
        )
        self.ready = Gauge(
            "harbor_ha_standby_ready",
            "1 when this node could take over now.",
            registry=r,
        )
        self.fencing_actions = Counter(
            "harbor_ha_fencing_actions",
            "Blocklist entries added, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.fifo_lines = Counter(
            "harbor_ha_fifo_lines",
            "keepalived FIFO lines, by state word.",
            ["kind"],
            registry=r,
        )
        self.fifo_bad_lines = Counter(
            "harbor_ha_fifo_bad_lines",
            "Unparseable keepalived FIFO lines.",
            registry=r,
        )
        self.fifo_reopens = Counter(
            "harbor_ha_fifo_reopens",
            "FIFO reopened after EOF (keepalived restart).",
            registry=r,
        )
        self.last_event_ts = Gauge(
            "harbor_ha_last_event_timestamp_seconds",
            "Unix time of the last keepalived event.",
            registry=r,
        )
        self.track_file = Gauge(
            "harbor_ha_track_file_value",
            "Value written to each track file.",
            ["file"],
            registry=r,
        )
        self.command_duration = Histogram(
            "harbor_ha_command_duration_seconds",
            "External commands by executable.",
            ["command"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.loop_tick_ts = Gauge(
            "harbor_ha_loop_tick_timestamp_seconds",
            "Unix time of the last main-loop tick.",
            registry=r,
        )
        self.errors = Counter(
            "harbor_ha_errors",
            "Errors by where they happened.",
            ["where"],
            registry=r,
        )
        self.vip_present = Gauge(
            "harbor_ha_vip_present",
            "1 when the VIP was on this node's interface at the last tick (set by the ticker).",
            registry=r,
        )
        self.maintenance = Gauge(
            "harbor_ha_maintenance",
            "1 while the operator's maintenance mode is on.",
            registry=r,
        )
        self.backoff_until = Gauge(
            "harbor_ha_backoff_until_timestamp_seconds",
            "Unix time the backoff or switchover-hold timer fires (0 when none is armed).",
            registry=r,
        )
        self.image_mapped = Gauge(
            "harbor_ha_image_mapped",
            "1 while the image is mapped on this node (as the steps know it).",
            registry=r,
        )
        self.fenced_self_since = Gauge(
            "harbor_ha_fenced_self_since_timestamp_seconds",
            "Unix time this node entered FENCED_SELF with no clean BACKUP since (0: none).",
            registry=r,
        )
        self.blocklist_expire = Gauge(
            "harbor_ha_blocklist_expire_seconds",
            "The configured expiry of the blocklist entries fencing adds (blocklist_expire_s).",
            registry=r,
        )
        self.failed_promotions = Gauge(
            "harbor_ha_failed_promotions",
            "Consecutive failed promotions (drives the backoff; reset after a stable MASTER).",
            registry=r,
        )
        self.promotions = Counter(
            "harbor_ha_promotions",
            "Promotions ended, by outcome (succeeded: Harbor healthy; failed: rolled back).",
            ["outcome"],
            registry=r,
        )
        # The replicated mode's watch of Harbor's replication (absent in the rbd mode).
        self.replication_last_status = Gauge(
            "harbor_ha_replication_last_status",
            "1 for the status of the latest execution of this node's replication policy "
            "(Succeed, Failed, InProgress, Stopped; none: no execution yet), 0 for the others.",
            ["policy", "status"],
            registry=r,
        )
        self.replication_last_age = Gauge(
            "harbor_ha_replication_last_age_seconds",
            "Seconds since the latest execution of the policy ended (started, while it runs).",
            ["policy"],
            registry=r,
        )
        self.replication_failed_items = Gauge(
            "harbor_ha_replication_failed_items",
            "Items (artifacts, deletions) the latest execution of the policy failed to copy.",
            ["policy"],
            registry=r,
        )
        self.replication_total_items = Gauge(
            "harbor_ha_replication_total_items",
            "Items of the latest execution of the policy.",
            ["policy"],
            registry=r,
        )
        self.replication_peer_up = Gauge(
            "harbor_ha_replication_peer_up",
            "1 when the peer's Harbor answered its ping at the watch's last look.",
            ["peer"],
            registry=r,
        )
        self.replication_manual_runs = Counter(
            "harbor_ha_replication_manual_runs",
            "Manual executions of the policy started because the peer's Harbor came back.",
            registry=r,
        )
        # The cluster's consistency (only with HARBOR_HA_NODES): the daemon's comparison.
        self.cluster_mismatch = Gauge(
            "harbor_ha_cluster_mismatch",
            "1 when the item (a secret, an endpoint, Harbor's version; job_logger_file: a node "
            "keeps job logs on FILE) differs between the nodes this node compared, else 0.",
            ["item"],
            registry=r,
        )
        self.cluster_nodes_compared = Gauge(
            "harbor_ha_cluster_nodes_compared",
            "Nodes whose fingerprint the last comparison read (this one included).",
            registry=r,
        )
        self.cephfs_evictions = Counter(
            "harbor_ha_cephfs_evictions_total",
            "Evictions of another node's CephFS sessions at the MDS by this node (shared mode, "
            "HARBOR_HA_SHARED_EVICT_AFTER_S), by node and outcome (done, failed).",
            ["node", "outcome"],
            registry=r,
        )
