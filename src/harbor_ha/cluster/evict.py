"""Which other nodes' CephFS sessions this node evicts at the MDS (pure: fed the answers of
each look and the time, it says what to do).  A node whose harbor-ha has not answered for
``after_s`` is taken for dead, and its sessions are evicted so that the others stop waiting
for the capabilities it held.  Eviction blocklists the client, a fence, so it is decided only
while this node reaches a majority of the nodes, itself included: of two sides cut apart, at
most one evicts, and a node cut from all the others evicts no one.  One eviction per outage;
a failed one is tried again ``retry_s`` later; a node that answers again starts afresh."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

RETRY_S = 10.0
"""Seconds before a failed eviction (the MDS or the monitors not answering) is tried again."""


@dataclass
class _Track:
    down_since: float | None = None  # the first unanswered look since it last answered
    evicted: bool = False  # this outage's eviction done
    retry_at: float = 0.0  # not before (after a failed eviction)
    held: bool = False  # this outage's "no majority" already said


@dataclass(frozen=True)
class Decision:
    """One decision about one node: evict it now, or hold back (no majority)."""

    node: str
    evict: bool
    down_s: float
    reason: str


@dataclass
class EvictPolicy:
    """The eviction decisions of node ``me`` among ``nodes`` (every node's name)."""

    nodes: Sequence[str]
    me: str
    after_s: float
    retry_s: float = RETRY_S
    _tracks: dict[str, _Track] = field(default_factory=dict)

    def look(self, answered: Mapping[str, bool], now: float) -> list[Decision]:
        """One look: ``answered`` says which other nodes answered; the decisions it takes
        (each at most once per outage, but a failed eviction again after ``retry_s``)."""
        reachable = 1 + sum(1 for node, ok in answered.items() if ok and node != self.me)
        majority = 2 * reachable > len(self.nodes)
        out: list[Decision] = []
        for node, ok in answered.items():
            if node == self.me:
                continue
            t = self._tracks.setdefault(node, _Track())
            if ok:
                self._tracks[node] = _Track()
                continue
            if t.down_since is None:
                t.down_since = now
            down = now - t.down_since
            if t.evicted or down < self.after_s or now < t.retry_at:
                continue
            seen = f"{reachable} of {len(self.nodes)} nodes reachable, this one included"
            if majority:
                t.held = False
                reason = f"no answer for {down:.1f} s (limit {self.after_s:g} s); {seen}"
                out.append(Decision(node, True, down, reason))
            elif not t.held:
                t.held = True
                reason = (
                    f"no answer for {down:.1f} s, but only {seen}: this node may be the one "
                    "cut off, so it evicts no one"
                )
                out.append(Decision(node, False, down, reason))
        return out

    def evicted(self, node: str) -> None:
        """The eviction of ``node`` succeeded: none again in this outage."""
        self._tracks.setdefault(node, _Track()).evicted = True

    def failed(self, node: str, now: float) -> None:
        """The eviction of ``node`` failed: try again ``retry_s`` later."""
        self._tracks.setdefault(node, _Track()).retry_at = now + self.retry_s
