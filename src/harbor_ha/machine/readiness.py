"""The node's readiness, decided: what the priority track file, ``/readiness`` and the ready
metric say, when the machine hears that a standby is ready (or that a replicated standby's
Harbor changed its verdict), and whether a ready standby pre-creates Harbor's containers now.
Pure; the monitor reports the facts (the readiness facts' problems, Harbor's debounced
verdict, whether a precreate failed in the current BACKUP period) and performs the writes.

- rbd BACKUP (``Probes.STANDBY``): ready when no readiness fact failed
  (daemon/standby_readiness.py); STANDBY_READY on the first pass of a BACKUP period and when
  readiness comes back (the table decides what a ready standby does: WARM).
- replicated BACKUP (``Probes.HARBOR``): ready when its own Harbor is (debounced) healthy;
  HARBOR_HEALTHY / HARBOR_UNHEALTHY when the verdict differs from the node's
  ``harbor_down`` (the fault file).
- MASTER: the priority file follows Harbor's debounced health; the ready metric reads 0.
- Any other state (a step runs, FENCED_SELF): not fit, priority 0 (safety rule 9: a node
  that cannot take over never wins an election).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .states import Event, Node, Probes, State

Verdict = tuple[bool, str]
"""An HTTP check's answer: ok, and why."""

JUDGES_READINESS = frozenset({Probes.STANDBY, Probes.HARBOR})
"""The probes whose verdict is the node's readiness (the ready metric, /readiness's standby
part); in every other the ready metric reads 0 (no stale 1 from the last role)."""


@dataclass(frozen=True)
class Readiness:
    """A standby's readiness verdict, as the monitor publishes it."""

    ready: bool  # the ready metric, /readiness's standby part
    problems: tuple[str, ...]  # why not ready (empty when ready)
    priority: bool  # the priority track file
    tell: Event | None  # what the verdict tells the machine (None: nothing new)


def priority(probes: Probes, fit: bool | None) -> bool:
    """The priority track file: 1 only when the node is fit for the role it probes (a MASTER
    whose Harbor is healthy, debounced; a standby that is ready); 0 when it probes nothing (a
    step runs, FENCED_SELF) or the verdict is unknown yet."""
    return probes is not Probes.NONE and fit is True


def standby_readiness(problems: Sequence[str], *, was: bool | None, first: bool) -> Readiness:
    """rbd BACKUP: ready when no readiness fact failed.  ``was``: the last verdict (None:
    none yet); ``first``: the first check of this BACKUP period.  STANDBY_READY on a pass
    that is the period's first or follows a verdict other than ready; not on every check."""
    ready = not problems
    tell = Event.STANDBY_READY if ready and (first or was is not True) else None
    return Readiness(ready, tuple(problems), priority(Probes.STANDBY, ready), tell)


def harbor_readiness(node: Node, healthy: bool | None, reason: str) -> Readiness:
    """replicated BACKUP: ready when its own Harbor is healthy (debounced; None: not judged
    yet, not ready).  The machine hears the verdict only where it differs from what the node
    holds (``harbor_down``, which raises the fault file)."""
    ready = healthy is True
    problems = () if healthy else (f"harbor: {reason}",)
    tell: Event | None = None
    if healthy is True and node.harbor_down:
        tell = Event.HARBOR_HEALTHY
    elif healthy is False and not node.harbor_down:
        tell = Event.HARBOR_UNHEALTHY
    return Readiness(ready, problems, priority(Probes.HARBOR, healthy), tell)


def precreate_now(
    node: Node, verdict: Readiness, *, enabled: bool, failed_this_period: bool
) -> bool:
    """Pre-create Harbor's containers now (warm standby: promotion's ``up -d`` then only
    starts them)?  Only on an rbd BACKUP that is ready, with the setting on, and not again
    in a BACKUP period whose precreate failed: Harbor's own file binds secrets and data with
    the long syntax, which Docker refuses while the data volume is not mounted, so it cannot
    succeed before the next period.  The action itself creates only when the project has no
    container at all (a standby never touches containers it did not make)."""
    return node.probes is Probes.STANDBY and verdict.ready and enabled and not failed_this_period


def readiness(
    node: Node, alive: Verdict, primary: Verdict, standby_ready: bool | None, problems: list[str]
) -> Verdict:
    """``/readiness`` (Patroni's sense): the loop is alive and the node can serve its role
    now (a MASTER with Harbor healthy, or a BACKUP out of maintenance whose last standby
    check passed)."""
    if not alive[0]:
        return alive
    if node.serving:
        return primary
    if node.state is not State.BACKUP:
        return False, f"state is {node.state}"
    if node.maintenance:
        return False, "BACKUP in maintenance"
    if standby_ready is not True:
        return False, "standby not ready: " + ("; ".join(problems) or "not checked yet")
    return True, "BACKUP and ready to take over"
