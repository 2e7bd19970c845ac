"""How the fault suite's masters fared just after their promotions: every transition into
MASTER in the nodes' logs, and each MASTER left on HARBOR_UNHEALTHY within FRESH_S of it
while no health fault was injected on that node (the lab's unhealthy switches).  On Harbor's
cadence (30 s container healthchecks, 10 s component checks) a fresh master must never be
demoted by its own Harbor coming up: the suite prints and records the count."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lab import timeline

FRESH_S = 30.0
"""A master is fresh for this long after entering MASTER: the daemon's harbor_health_grace_s
(15 s) plus one Docker healthcheck period of Harbor's images' (30 s) would be the outer bound
of a start-up artefact; 30 s covers the container cadence, which is the longer one."""


@dataclass
class Tally:
    """Promotions seen and the fresh masters demoted on their own Harbor's health."""

    promotions: int = 0
    fresh_demotions: list[str] = field(default_factory=list)

    def line(self) -> str:
        shown = "; ".join(self.fresh_demotions[:5])
        return (
            f"promotions to MASTER: {self.promotions}; fresh masters demoted on Harbor's "
            f"health (within {FRESH_S:g} s, nothing injected): {len(self.fresh_demotions)}"
            + (f" ({shown})" if shown else "")
        )


def tally(logs: dict[str, Path], injected: dict[str, list[float]], since: float) -> Tally:
    """Count over each node's log (node -> path) from ``since``; ``injected`` holds, per node,
    the times a health fault was switched on there (such demotions are the test's)."""
    out = Tally()
    for node, log in logs.items():
        entered: float | None = None
        for e in timeline.read(log, node, since=since):
            if e.msg != "transition":
                continue
            if e.fields.get("to") == "MASTER" and e.fields.get("from") != "MASTER":
                out.promotions += 1
                entered = e.at
            elif e.fields.get("from") == "MASTER" and e.fields.get("to") != "MASTER":
                fresh = entered is not None and e.at - entered <= FRESH_S
                ours = any(entered is not None and entered - 1 <= t <= e.at
                           for t in injected.get(node, []))  # fmt: skip
                if fresh and not ours and e.fields.get("event") == "HARBOR_UNHEALTHY":
                    out.fresh_demotions.append(
                        f"{node} after {e.at - (entered or e.at):.1f} s: {e.fields.get('reason')}"
                    )
                entered = None
    return out
