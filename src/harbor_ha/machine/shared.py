"""The shared mode's table: N Harbors on one shared filesystem (CephFS, NFS) or on object
storage, behind a load balancer.  Each node decides for itself; there is no keepalived role,
no VIP, no lease, no fence, no map.

    DOWN -> MOUNTING -> STARTING -> SERVING
    SERVING -> DRAINING (readiness 503; wait drain_wait_s) -> STOPPING -> UNMOUNTING -> DOWN
    a step fails or times out -> undo in reverse -> DOWN, fault, backoff -> MOUNTING again

- DOWN: holds nothing (Harbor stopped, the shared filesystem not mounted, the bare
  mountpoint guarded).  It joins (MOUNTING) unless a fault's backoff runs, maintenance is on
  (``harbor-ha drain`` or ``maintenance on``) or the daemon exits.
- MOUNTING: mount the shared filesystem and verify it in mountinfo (type and source); the
  object-storage variant mounts nothing.  Never fsck, never mkfs.
- STARTING: Harbor starts only on the verified mount, and is done when it serves.
- SERVING: the only state whose readiness and /serving answer 200 (with Harbor healthy).
  Harbor unhealthy (its critical components, debounced) or the mount lost: DRAINING, with
  the fault raised and the failure counted (backoff).  Drain or maintenance: DRAINING.
- DRAINING: out of the load balancer's pool at once (readiness 503), Harbor still answers
  the requests in flight; after ``drain_wait_s`` (the balancer's detection time) STOPPING.
- STOPPING, UNMOUNTING: stop Harbor (compose down), then unmount (a mount that is not the
  configured one is never unmounted); DOWN.

The rows below decide every (state, event) pair of this mode once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .modes import ModeTable
from .rows import (
    BUMP,
    DEMOTE_ON_EXIT,
    EXITING,
    FAULT,
    HAS_FAILURES,
    NOT_EXITING,
    STAY,
    Decisions,
    Do,
    Guard,
    Row,
    Rows,
    changes,
)
from .states import SHARED_STATES, Action, Event, Kind, Mode, Node, State, Timer
from .table import ACTION_OF

S = State
E = Event

STATES = frozenset(SHARED_STATES)
EVENTS = frozenset(
    {
        E.STEP_DONE, E.STEP_FAILED, E.STEP_TIMEOUT,
        E.HARBOR_HEALTHY, E.HARBOR_UNHEALTHY, E.STORAGE_LOST, E.STORAGE_STUCK,
        E.BACKOFF_EXPIRED, E.MASTER_STABLE, E.DRAIN_OVER,
        E.DRAIN, E.MAINTENANCE_ON, E.MAINTENANCE_OFF, E.SHUTDOWN,
    }
)  # fmt: skip
"""The events of this mode: no keepalived line, VIP tick, lease, failsafe or standby event
(the driver never posts them here: they would be illegal)."""

STEPS_RUN = (S.MOUNTING, S.STARTING, S.STOPPING, S.UNMOUNTING)
NO_STEP = (S.DOWN, S.SERVING, S.DRAINING)
UNDO: dict[State, State] = {S.MOUNTING: S.UNMOUNTING, S.STARTING: S.STOPPING}
"""Leaving a joining state before it serves: undo what its step may have done, in reverse
(nothing to drain: readiness was 503 all along)."""
NEXT_ON_DONE: dict[State, State] = {
    S.MOUNTING: S.STARTING,
    S.STARTING: S.SERVING,
    S.STOPPING: S.UNMOUNTING,
    S.UNMOUNTING: S.DOWN,
}
"""Where a step's success takes the node."""

JOINABLE = Guard(
    "not fault and not maintenance and not exiting",
    lambda n: not n.fault and not n.maintenance and not n.exiting,
)
JOINABLE_ONCE_CLEARED = Guard(
    "not maintenance and not exiting", lambda n: not n.maintenance and not n.exiting
)
FAILED = changes(fault=True, failures=BUMP)
"""A failure of this node (a step failed, Harbor unhealthy, the mount lost): the fault holds
the node DOWN for the backoff, which doubles with each failure until SERVING held."""

REST: Rows = (Row(do=(Do.EXIT,), when=EXITING), Row(S.MOUNTING, when=JOINABLE), STAY)
"""DOWN: exit if asked to; join if nothing holds the node down (a fault's backoff,
maintenance)."""

_DECIDE = Decisions()
_rows = _DECIDE.rows
_each = _DECIDE.each
_illegal = _DECIDE.illegal

# Steps: success goes on; a failure undoes what the node holds, in reverse, and backs off.
_each(STEPS_RUN, E.STEP_DONE, lambda s: (Row(NEXT_ON_DONE[s]),))
for _ev in (E.STEP_FAILED, E.STEP_TIMEOUT):
    _each(UNDO, _ev, lambda s: (Row(UNDO[s], FAILED),))
    # Compose could not stop Harbor (the step already killed by label): the unmount kills
    # whatever still uses the mount.
    _rows([S.STOPPING], _ev, Row(S.UNMOUNTING))
    # The unmount failed (busy past its bound, or not the configured filesystem): DOWN with
    # the fault; the next mount step finds what is there and refuses a foreign mount.
    _rows([S.UNMOUNTING], _ev, Row(S.DOWN, FAILED))
    _illegal(NO_STEP, _ev, "no step runs in this state")
_illegal(NO_STEP, E.STEP_DONE, "no step runs in this state")

# Probes (SERVING only): Harbor unhealthy or the mount lost: drain, then stop.  No answer
# from the mount (a hung NFS server, a stuck MDS) is no better a mount than a lost one.
for _ev in (E.HARBOR_UNHEALTHY, E.STORAGE_LOST, E.STORAGE_STUCK):
    _rows([S.SERVING], _ev, Row(S.DRAINING, FAILED))
_rows([S.SERVING], E.HARBOR_HEALTHY, STAY)  # healthy: nothing to do
# A probe's verdict from before the state changed (only SERVING probes): nothing to do.
for _ev in (E.HARBOR_HEALTHY, E.HARBOR_UNHEALTHY, E.STORAGE_LOST, E.STORAGE_STUCK):
    _rows(STATES - {S.SERVING}, _ev, STAY)

# Timers.  The backoff is over: join again (DOWN); it is armed only on arriving DOWN with the
# fault, and DOWN leaves only once it is over, so elsewhere it is a firing of an earlier one.
_rows(
    [S.DOWN],
    E.BACKOFF_EXPIRED,
    Row(S.MOUNTING, changes(fault=False), when=JOINABLE_ONCE_CLEARED),
    Row(set=changes(fault=False)),
)
_rows(STATES - {S.DOWN}, E.BACKOFF_EXPIRED, STAY)
_rows([S.SERVING], E.MASTER_STABLE, Row(set=changes(failures=0)))
# The stable timer of a node that has since left SERVING: its failures stay counted.
_rows(STATES - {S.SERVING}, E.MASTER_STABLE, STAY)
_rows([S.DRAINING], E.DRAIN_OVER, Row(S.STOPPING))
_illegal(
    STATES - {S.DRAINING},
    E.DRAIN_OVER,
    "the drain timer runs only in DRAINING, and only its firing leaves DRAINING",
)


def _undo(fields: Mapping[str, object]) -> Callable[[State], Rows]:
    """Cancel the running step and undo it (UNDO), setting ``fields``."""
    return lambda s: (Row(UNDO[s], fields, (Do.CANCEL,)),)


# Operator.  Drain and maintenance on are one (both observed as maintenance): out of the
# pool and stopped until maintenance off.  A node that does not serve yet has nothing to
# drain: it undoes its step at once.
# (MAINTENANCE_ON is observed as maintenance in every mode; DRAIN is the shared mode's own
# event and sets it in its rows.)
for _ev, _set in ((E.DRAIN, changes(maintenance=True)), (E.MAINTENANCE_ON, changes())):
    _rows([S.SERVING], _ev, Row(S.DRAINING, _set))
    _each(UNDO, _ev, _undo(_set))
    # DOWN stays down; a drain or a stop under way goes on (it ends DOWN).
    _rows([S.DOWN, S.DRAINING, S.STOPPING, S.UNMOUNTING], _ev, Row(set=_set))
# Maintenance off: DOWN joins again (unless a fault's backoff runs); a node on its way down
# finishes (it arrives DOWN, and joins from there); a joining or serving node goes on.
_rows([S.DOWN], E.MAINTENANCE_OFF, Row(S.MOUNTING, when=JOINABLE), STAY)
_rows(STATES - {S.DOWN}, E.MAINTENANCE_OFF, STAY)
# Shutdown: DOWN exits.  SERVING keeps Harbor serving across a daemon restart (reconcile
# adopts it) unless demote_on_exit: then it drains first.  A joining node stops joining (with
# demote_on_exit it undoes its step first); a node on its way down exits once DOWN.
_rows([S.DOWN], E.SHUTDOWN, Row(do=(Do.EXIT,)))
_rows([S.SERVING], E.SHUTDOWN, Row(S.DRAINING, when=DEMOTE_ON_EXIT), Row(do=(Do.EXIT,)))
_each(
    UNDO,
    E.SHUTDOWN,
    lambda s: (Row(UNDO[s], do=(Do.CANCEL,), when=DEMOTE_ON_EXIT), Row(do=(Do.CANCEL, Do.EXIT))),
)
_rows([S.DRAINING, S.STOPPING, S.UNMOUNTING], E.SHUTDOWN, STAY)

ARRIVE: Rows = (Row(do=(Do.BACKOFF,), when=FAULT & NOT_EXITING), STAY)
"""Arriving DOWN after a failure: the backoff starts (its end clears the fault)."""

ENTER: dict[State, tuple[Rows, ...]] = {
    **{s: ((Row(do=(Do.RUN_STEP,)),),) for s in STEPS_RUN},
    S.DOWN: (ARRIVE, REST),
    S.DRAINING: ((Row(do=(Do.ARM_DRAIN,)),),),
    # Failures are forgotten only once SERVING held master_stable_s: a node whose Harbor or
    # mount fails again and again backs off longer each time.
    S.SERVING: ((Row(do=(Do.ARM_STABLE,), when=HAS_FAILURES), STAY),),
}
"""Entering a state (from another): groups of rows, one row applies per group, in order."""


def _drain(after: Node) -> Action:
    delay = after.policy.drain_wait_s
    return Action(
        Kind.START_TIMER,
        timer=Timer.DRAIN,
        delay_s=float(delay),
        reason=f"drain: the load balancer's detection time ({delay:g} s)",
    )


SHARED = ModeTable(
    mode=Mode.SHARED,
    states=STATES,
    events=EVENTS,
    table=_DECIDE.table,
    illegal=_DECIDE.illegal_pairs,
    enter=ENTER,
    action_of={
        **{d: ACTION_OF[d] for d in (Do.RUN_STEP, Do.CANCEL, Do.BACKOFF, Do.ARM_STABLE, Do.EXIT)},
        Do.ARM_DRAIN: lambda before, after, event: _drain(after),
    },
    requires={},
)
"""The shared mode: each node mounts, starts, serves, drains and stops on its own."""
