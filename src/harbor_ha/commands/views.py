"""What the CLI prints: the status verdict (monitoring-plugin exit codes), the both-nodes table
of `harbor-ha list` and the table of `harbor-ha history`.  Pure functions of the JSON the
daemon serves (or the history journal holds)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
"""`harbor-ha status` exit codes, as Nagios plugins and `crm_mon -s` use them."""

LABELS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


def verdict(status: dict[str, Any]) -> tuple[int, str]:
    """The exit code and one-line summary of a node's /status.

    0 OK: MASTER (or the shared mode's SERVING) with Harbor healthy, or BACKUP ready to take
    over; 1 WARNING: DOWN or DRAINING (the shared mode), maintenance,
    backoff after failed promotions, a standby not ready, a step running, Harbor's health
    not measured yet, a non-critical component unhealthy (degraded); 2 CRITICAL:
    FENCED_SELF, or MASTER with Harbor unhealthy."""
    state = str(status.get("state"))
    if state == "FENCED_SELF":
        return CRITICAL, "FENCED_SELF: a demotion did not end clean; the node retries"
    if state in ("MASTER", "SERVING"):  # SERVING: the shared mode
        healthy = status.get("harbor_healthy")
        if healthy is False:
            return CRITICAL, f"{state} but Harbor is unhealthy"
        if status.get("maintenance"):
            return WARNING, f"{state} in maintenance (handing over)"
        if healthy is None:
            return WARNING, f"{state}, Harbor's health not measured yet"
        degraded = status.get("harbor_degraded") or []
        if degraded:
            return WARNING, f"{state}, Harbor serves; degraded: " + ", ".join(map(str, degraded))
        return OK, f"{state}, Harbor healthy"
    if state in ("DOWN", "DRAINING"):  # the shared mode, out of the load balancer's pool
        return WARNING, f"{state}: {_why_out(status)}"
    if state != "BACKUP":
        return WARNING, f"{state}: step {status.get('step') or '-'} running"
    if status.get("maintenance"):
        return WARNING, "BACKUP in maintenance: will not take the VIP"
    if status.get("fault") and status.get("failures"):
        return WARNING, f"BACKUP backing off after {status.get('failures')} failed promotions"
    if status.get("standby_ready") is not True:
        problems = "; ".join(status.get("standby_problems") or []) or "not checked yet"
        return WARNING, f"BACKUP not ready: {problems}"
    return OK, "BACKUP, ready to take over"


def _why_out(status: dict[str, Any]) -> str:
    """Why a node of the shared mode is out of the pool."""
    if status.get("maintenance"):
        return "drained (maintenance)"
    if status.get("fault"):
        return f"backing off after {status.get('failures')} failures"
    return "out of the pool"


def stamp(at: object) -> str:
    """A Unix time as UTC ``2026-12-01 18:30:02Z`` ('-' when there is none)."""
    if not isinstance(at, int | float) or at <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces."""
    cells = [list(header)] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def _yes_no(value: object) -> str:
    return "-" if value is None else ("yes" if value else "no")


def node_row(
    name: str, status: dict[str, Any] | None, error: str = "", *, replication: bool = False
) -> list[object]:
    """One row of `harbor-ha list`: a node's /status, or the reason it could not be read
    (with the REPLICATION column when ``replication``)."""
    if status is None:
        dashes = ["-"] * (6 if replication else 5)
        return [name, "unreachable", *dashes, "-", error]
    failover = status.get("last_failover") or {}
    return [
        status.get("node", name),
        status.get("state"),
        _yes_no(status.get("vip_present")),
        _yes_no(status.get("harbor_healthy")),
        "SET" if status.get("fault") else "clear",
        "on" if status.get("maintenance") else "off",
        lease_holder(status.get("lease")),
        *([replication_text(status.get("replication"))] if replication else []),
        f"{stamp(failover.get('at'))} ({failover.get('failover_s')} s)" if failover else "-",
        LABELS[verdict(status)[0]] + ": " + verdict(status)[1],
    ]


def list_header(replication: bool) -> tuple[str, ...]:
    """`harbor-ha list`'s columns; REPLICATION when a node is of the replicated mode."""
    if not replication:
        return LIST_HEADER
    at = LIST_HEADER.index("LEASE") + 1
    return (*LIST_HEADER[:at], "REPLICATION", *LIST_HEADER[at:])


def ago(seconds: object) -> str:
    """An age as "42 s ago", "5 min ago", "3 h ago", "2 d ago" ("at an unknown time": none)."""
    if not isinstance(seconds, int | float):
        return "at an unknown time"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def replication_text(rep: object, *, long: bool = False) -> str:
    """The replicated mode's replication watch (/status's "replication") in one line: the
    latest execution of this node's policy, an unreachable peer, the current problem; "-" in
    the rbd mode.  ``long`` adds the items, the policy and the problem's text."""
    if not isinstance(rep, dict):
        return "-"
    problem = rep.get("problem")
    if rep.get("configured") is False:
        return "not configured" + (f" ({problem})" if long and problem else "")
    if rep.get("configured") is None:
        return "not checked yet"
    parts: list[str] = []
    last = rep.get("last")
    if isinstance(last, dict):
        policy = last.get("policy")
        if last.get("status") == "none":
            parts.append(f"no execution yet of {policy}" if long else "no execution yet")
        else:
            text = f"{last.get('status')} {ago(last.get('age_s'))}"
            if long:
                text += (
                    f", {last.get('failed')} of {last.get('total')} items failed "
                    f"({policy}, {last.get('trigger') or 'trigger unknown'})"
                )
            parts.append(text)
    if rep.get("peer_reachable") is False:
        parts.append(f"peer {rep.get('peer')} unreachable")
    if problem:
        parts.append(f"problem: {problem}" if long else "watch failing")
    return "; ".join(parts) or "-"


def lease_holder(lease: object) -> str:
    """The lease holder as this node last saw it (a node name), or "-": not reported, or a
    standby that has not looked at the lease since it started (it reads Ceph only when it
    promotes or was refused)."""
    holder = lease.get("holder") if isinstance(lease, dict) else None
    return str(holder) if holder else "-"


LIST_HEADER = (
    "NODE", "STATE", "VIP", "HEALTHY", "FAULT", "MAINT", "LEASE", "LAST FAILOVER", "VERDICT",
)  # fmt: skip


def history_rows(records: Iterable[dict[str, Any]]) -> list[list[object]]:
    return [
        [
            stamp(r.get("at")),
            r.get("node"),
            f"{r.get('from')} -> {r.get('to')}",
            r.get("event"),
            f"{r.get('in_previous_s')} s" if r.get("in_previous_s") is not None else None,
            f"{r['failover_s']} s" if r.get("failover_s") is not None else None,
            r.get("reason"),
        ]
        for r in records
    ]


HISTORY_HEADER = ("TIME", "NODE", "TRANSITION", "EVENT", "HELD", "FAILOVER", "REASON")
