"""What the latest execution of a replication policy says, in a few fields (pure: no I/O).

Harbor's ``GET /api/v2.0/replication/executions`` answers ReplicationExecution objects:
``status`` (InProgress, Succeed, Failed, Stopped), ``start_time``, ``end_time`` (RFC 3339;
Go's zero time, year 1, or nothing while it runs), ``total``, ``failed`` and the other item
counts, ``trigger`` (manual, event_based, scheduled) and ``status_text``."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

NONE = "none"
"""The status of a policy without any execution yet."""
UNKNOWN = "unknown"
"""The status of an execution whose status is none of Harbor's four."""
STATUSES = ("Succeed", "Failed", "InProgress", "Stopped", NONE, UNKNOWN)
"""Every value of Summary.status (the label values of harbor_ha_replication_last_status)."""
TEXT_MAX = 200
"""status_text is cut to this many characters (it can hold a whole error)."""


@dataclass(frozen=True)
class Summary:
    """The latest execution of ``policy`` (its id on this node's Harbor ``policy_id``)."""

    policy: str
    policy_id: int
    status: str  # one of STATUSES
    age_s: float | None  # since it ended, or since it started while it runs; None: none
    failed: int
    total: int
    execution_id: int | None = None
    trigger: str = ""
    status_text: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_time(value: object) -> float | None:
    """A Unix time from Harbor's RFC 3339 timestamp; None for nothing, Go's zero time (year
    1: not ended yet) or anything that does not parse."""
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if at.year <= 1:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.UTC)
    return at.timestamp()


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def summarise(policy: str, policy_id: int, latest: Mapping[str, Any] | None, now: float) -> Summary:
    """The summary of ``latest`` (the policy's newest execution, None: it has none) at Unix
    time ``now``.  The age is from the end, or from the start while there is no end; a clock
    ahead of ``now`` (the Harbor's clock differs) reads as age 0."""
    if latest is None:
        return Summary(policy, policy_id, NONE, None, 0, 0)
    raw = latest.get("status")
    status = raw if isinstance(raw, str) and raw in STATUSES[:4] else UNKNOWN
    at = parse_time(latest.get("end_time"))
    if at is None:
        at = parse_time(latest.get("start_time"))
    ident = latest.get("id")
    return Summary(
        policy=policy,
        policy_id=policy_id,
        status=status,
        age_s=None if at is None else round(max(0.0, now - at), 3),
        failed=_count(latest.get("failed")),
        total=_count(latest.get("total")),
        execution_id=ident if isinstance(ident, int) else None,
        trigger=str(latest.get("trigger") or ""),
        status_text=str(latest.get("status_text") or "")[:TEXT_MAX],
    )
