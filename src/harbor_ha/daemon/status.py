"""What /status shows: the current node, recent transitions, recent errors, probe results."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from harbor_ha.machine import Node


@dataclass
class StatusBoard:
    """Written by the daemon's tasks, read by the HTTP endpoints.  Plain data, no I/O."""

    node_name: str
    node: Node = field(default_factory=Node)
    since: float = field(default_factory=time.time)
    step_started: float | None = None
    transitions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20))
    errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20))
    probes: dict[str, Any] = field(default_factory=dict)
    harbor_healthy: bool | None = None
    ready: bool | None = None
    ready_problems: list[str] = field(default_factory=list)
    vip_present: bool | None = None
    last_tick_monotonic: float = field(default_factory=time.monotonic)
    last_event: dict[str, Any] | None = None
    reconciled: bool = False
    device: str | None = None

    def record_transition(self, entry: dict[str, Any]) -> None:
        self.transitions.append(entry)

    def record_error(self, where: str, error: str) -> None:
        self.errors.append({"at": time.time(), "where": where, "error": error})

    def snapshot(self) -> dict[str, Any]:
        n = self.node
        return {
            "node": self.node_name,
            "state": str(n.state),
            "since": self.since,
            "seconds_in_state": round(time.time() - self.since, 3),
            "want_master": n.want_master,
            "fault": n.fault_file_on,
            "maintenance": n.maintenance,
            "failures": n.failures,
            "step": str(n.step) if n.step else None,
            "vip_present": self.vip_present,
            "harbor_healthy": self.harbor_healthy,
            "standby_ready": self.ready,
            "standby_problems": list(self.ready_problems),
            "device": self.device,
            "reconciled": self.reconciled,
            "probes": dict(self.probes),
            "last_event": self.last_event,
            "last_transitions": list(self.transitions),
            "last_errors": list(self.errors),
        }
