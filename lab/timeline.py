"""Read the nodes' harbor-ha JSON logs back as a failover timeline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

INTERESTING = {
    "transition",
    "step_end",
    "fenced",
    "fsck_done",
    "mounted",
    "compose_up",
    "harbor_serving",
    "promotion_complete",
    "fifo_line",
    "vip_mismatch",
    "reconcile_facts",
    "ready",
    "storage_lost",
    "fenced_self",
    "timer_armed",
}


@dataclass(frozen=True)
class Entry:
    at: float
    node: str
    msg: str
    fields: dict[str, Any]

    def describe(self) -> str:
        f = self.fields
        if self.msg == "transition":
            return f"{f.get('from')} -> {f.get('to')}  ({f.get('event')}: {f.get('reason')})"
        if self.msg == "step_end":
            err = f"  {f['error']}" if f.get("error") else ""
            return f"step {f.get('step')} {f.get('outcome')} in {f.get('duration_s')} s{err}"
        if self.msg == "fifo_line":
            return f"keepalived says: {f.get('line')}"
        if self.msg == "fenced":
            return f"fenced {f.get('address')} (blocklist add, expiry {f.get('expire_s')} s)"
        if self.msg == "promotion_complete":
            return f"promotion complete: {f.get('total_s')} s from keepalived's MASTER"
        rest = {k: v for k, v in f.items() if k not in ("level", "timestamp", "msg")}
        return f"{self.msg} {rest}"


def records(log: Path, since: float = 0.0) -> list[tuple[float, dict[str, Any]]]:
    """(unix time, record) of every JSON line of a harbor-ha log at or after ``since``."""
    out: list[tuple[float, dict[str, Any]]] = []
    if not log.exists():
        return out
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        ts = rec.get("timestamp")
        if not ts:
            continue
        at = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        if at >= since:
            out.append((at, rec))
    return out


def read(log: Path, node: str, since: float = 0.0) -> list[Entry]:
    """The decisions worth a timeline (INTERESTING) of one node's log."""
    return [
        Entry(at, node, rec["msg"], rec)
        for at, rec in records(log, since)
        if rec.get("msg", "") in INTERESTING
    ]


def step_durations(entries: list[Entry]) -> dict[str, float]:
    """step -> seconds, for the steps that ended 'done' or 'refused' with an outcome event
    (the lease step's LEASE_STALE, the fence step's LEASE_TAKEN; last one wins)."""
    return {
        e.fields["step"]: float(e.fields["duration_s"])
        for e in entries
        if e.msg == "step_end" and e.fields.get("outcome") in ("done", "refused")
    }
