"""The lease's errors, classified so the machine can tell a live peer from an outage."""

from __future__ import annotations


class LeaseError(Exception):
    """A lease request failed; ``kind`` says how (busy, absent, timeout, denied, agent, failed)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class LeaseHeldByPeer(LeaseError):
    """Another locker holds the lease and renews it: never fence it (issue 10)."""

    def __init__(self, message: str) -> None:
        super().__init__("busy", message)


class LeaseTimeout(LeaseError):
    """Ceph did not answer within the bound (frozen or unreachable); the agent was restarted."""

    def __init__(self, op: str, timeout_s: float) -> None:
        super().__init__("timeout", f"lease {op}: no answer within {timeout_s:g} s")


def classify(op: str, kind: str, message: str) -> LeaseError:
    """The error for an agent's answer ``{"ok": false, "error": kind}``."""
    text = f"lease {op}: {kind}: {message}"
    if kind == "busy":
        return LeaseHeldByPeer(text)
    if kind == "timeout":
        err = LeaseError("timeout", text)
        return err
    return LeaseError(kind, text)
