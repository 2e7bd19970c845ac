"""Prometheus metrics, on a registry of their own (one per daemon, so tests stay independent)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram

from harbor_ha.machine import State

STATES = [str(s) for s in State]
"""The values of the harbor_ha_state enum: the machine's states, in its order."""

STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class Metrics:
    """Every metric harbor-ha exports.  Names are prefixed ``harbor_ha_``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
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
