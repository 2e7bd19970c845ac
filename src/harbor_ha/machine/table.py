"""Every decision of the rbd mode, as data: this file and the lease's rows (lease_rows.py).

``transition(node, event) -> (node', actions)`` (evaluate.py, the same for every mode) reads
the table; no I/O.

1. ``OBSERVE[event]``: what the event tells the node whatever its state (keepalived's role,
   maintenance, shutdown asked).
2. ``TABLE[(state, event)]``: rows tried in order; the first whose guard holds applies: its
   field changes, its actions (``Do``), its target state.  Or ``ILLEGAL[(state, event)]``:
   the pair is illegal (IllegalTransition, with its reason).  Every pair is in exactly one of
   them, written once where its decision belongs (no default rows).
3. ``ENTER[state]``: entering a state from another applies its groups of rows the same way:
   its step (STEP_OF), its timer (FENCED_SELF's retry, MASTER's stable timer), and for BACKUP
   how a clean demotion ends (``ARRIVE``: it depends on why it ran) then ``REST``.
4. ``ACTION_OF[do]``: the concrete action of each row action, its delay from the node's
   policy.  The evaluation is evaluate.py's.

Adding a behaviour (e.g. a leadership lease: LEASE_* events, a deadline timer) is adding
events to ``states.Event``, a ``Timer``, rows here and, for a new kind of I/O, a ``Kind``
the driver performs.

Shape of the machine::

    BACKUP -> LEASING -> FENCING -> MAPPING -> MOUNTING -> STARTING -> MASTER
    MASTER / any promotion state -> STOPPING -> UNMOUNTING -> UNMAPPING -> BACKUP
    promotion step fails / times out -> roll back in reverse -> BACKUP + fault flag + backoff
    demotion cannot end unmounted and unmapped -> FENCED_SELF (fault flag, periodic retry)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from .lease_rows import (
    BACKUP_ON_ARRIVAL,
    LEASE_ACTIONS,
    LEASING_ON_ENTRY,
    WATCH_ON_ENTRY,
    add_lease_rows,
)
from .modes import ActionOf, ModeTable
from .rows import (
    BUMP,
    DEMOTE_ON_EXIT,
    EXITING,
    FAILSAFE_HELD,
    FAULT,
    HANDOVER,
    HAS_FAILURES,
    MAY_PROMOTE,
    NOT_EXITING,
    ROLLING_BACK,
    STAY,
    WARM_STANDBY,
    Decisions,
    Do,
    Row,
    Rows,
    but,
    changes,
)
from .states import (
    CANCEL,
    DEMOTING,
    EXIT,
    PROMOTING,
    RBD_EVENTS,
    RBD_STATES,
    STEP_OF,
    Action,
    Event,
    Kind,
    Mode,
    Node,
    State,
    Timer,
    run,
)
from .vip_rows import add_vip_rows

S = State
E = Event

# ------------------------------------------------------------ next-state tables
NEXT_ON_DONE: dict[State, State] = {
    S.LEASING: S.FENCING,
    S.FENCING: S.MAPPING,
    S.MAPPING: S.MOUNTING,
    S.MOUNTING: S.STARTING,
    S.STARTING: S.MASTER,
    S.STOPPING: S.UNMOUNTING,
    S.UNMOUNTING: S.UNMAPPING,
    S.UNMAPPING: S.BACKUP,
}
"""Where a step's success takes the node."""

ROLLBACK: dict[State, State] = {
    S.LEASING: S.BACKUP,  # the lease taken is released by the next clean demotion or lapses
    S.FENCING: S.BACKUP,  # fencing changes nothing on this node
    S.MAPPING: S.UNMAPPING,  # a map may have half-happened
    S.MOUNTING: S.UNMOUNTING,
    S.STARTING: S.STOPPING,
}
"""Leaving a promotion state: undo what its step may have done, in reverse."""

NEXT_ON_FAIL: dict[State, State] = {
    **ROLLBACK,
    # Compose could not stop Harbor (the step already killed by label):
    # unmounting kills whatever still uses the mount.
    S.STOPPING: S.UNMOUNTING,
    # UNMOUNTING / UNMAPPING failed: the node cannot end clean (safety rule 6).
    S.UNMOUNTING: S.FENCED_SELF,
    S.UNMAPPING: S.FENCED_SELF,
}
"""Where a step's failure or timeout takes the node."""

OBSERVE: dict[Event, Mapping[str, object]] = {
    E.KA_MASTER: {"want_master": True, "keepalived_gone": False},
    E.KA_BACKUP: {"want_master": False, "keepalived_gone": False},
    E.KA_FAULT: {"want_master": False, "keepalived_gone": False},
    E.KA_STOP: {"want_master": False, "keepalived_gone": False},
    # keepalived died (kill -9, crash): no VRRP on this node, so no claim to the VIP; a VIP
    # it left on the interface is no verdict either (the VIP tick rows below).
    E.KA_GONE: {"want_master": False, "keepalived_gone": True},
    E.KA_RETURNED: {"keepalived_gone": False},
    E.MAINTENANCE_ON: {"maintenance": True},
    E.MAINTENANCE_OFF: {"maintenance": False},
    E.SHUTDOWN: {"exiting": True},
}
"""What an event tells the node in every state, applied before its row is chosen."""

REQUIRES: dict[Event, tuple[State, str]] = {
    E.SWITCHOVER: (S.MASTER, "switchover needs MASTER"),
    E.RETRY: (S.FENCED_SELF, "retry is for FENCED_SELF"),
}
"""Operator commands refused (not posted) outside a state: see ``refusal``."""

VIP_VERDICT: dict[Event, Event] = {E.VIP_SEEN: E.KA_MASTER, E.VIP_ABSENT: E.KA_BACKUP}
"""The keepalived line a persistent VIP mismatch stands for (a FIFO line we missed)."""


# ------------------------------------------------------------------ (state, event) rows
FAILED = changes(fault=True, rollback=True, failures=BUMP)
"""A failure of this node (promotion failed, Harbor unhealthy, storage lost)."""
HANDING_OVER = changes(fault=True, handover=True)

REST: Rows = (Row(do=(Do.EXIT,), when=EXITING), Row(S.LEASING, when=MAY_PROMOTE), STAY)
"""BACKUP holding nothing: exit if asked to, promote if keepalived wants us and nothing stops
us (fault, maintenance, hand-over, exiting)."""

_DECIDE = Decisions()
TABLE: dict[tuple[State, Event], Rows] = _DECIDE.table
"""Every legal (state, event) pair and its rows."""
ILLEGAL: dict[tuple[State, Event], str] = _DECIDE.illegal_pairs
"""Every illegal (state, event) pair and why: ``transition`` raises IllegalTransition.  Each
pair of State x Event is in exactly one of TABLE and ILLEGAL (tests/unit/test_machine_complete)."""
ALL = RBD_STATES
HOLDING = (S.MASTER, *sorted(PROMOTING))  # has (or is taking) the image
LEASED = (S.MASTER, *sorted(PROMOTING - {S.LEASING}))  # holds the lease (after the lease step)
NOT_HOLDING = (S.BACKUP, *sorted(DEMOTING), S.FENCED_SELF)  # neither serving nor promoting
_rows = _DECIDE.rows
_each = _DECIDE.each
_illegal = _DECIDE.illegal


# Every pair is decided here or in lease_rows, once: rows (a stay says why that state
# ignores the event) or a declared illegal pair.

# keepalived: MASTER.  Promoting/master: on it; demoting: the end (REST) re-promotes; fenced:
# never (a clean demotion first).  Only the role is observed (OBSERVE).
_rows([S.BACKUP], E.KA_MASTER, *REST)
_rows(but(S.BACKUP), E.KA_MASTER, STAY)
# keepalived: not MASTER.  A node holding nothing, or already releasing it, only observes it.
for _ev in (E.KA_BACKUP, E.KA_FAULT, E.KA_STOP, E.KA_GONE):
    _each(PROMOTING, _ev, lambda s: (Row(ROLLBACK[s], do=(Do.CANCEL,)),))
    _rows([S.MASTER], _ev, Row(S.STOPPING))
    _rows(NOT_HOLDING, _ev, STAY)
# A keepalived holds the FIFO again: only observed (its next role line decides).
_rows(ALL, E.KA_RETURNED, STAY)

# step results
# (LEASING's STEP_DONE also arms the renewals: lease_rows.)
_each(sorted(set(STEP_OF) - {S.LEASING}), E.STEP_DONE, lambda s: (Row(NEXT_ON_DONE[s]),))
for _ev in (E.STEP_FAILED, E.STEP_TIMEOUT):
    _each(PROMOTING, _ev, lambda s: (Row(NEXT_ON_FAIL[s], FAILED, (Do.BACKOFF,)),))
    _rows([S.STOPPING], _ev, Row(NEXT_ON_FAIL[S.STOPPING]))
    _each(
        (S.UNMOUNTING, S.UNMAPPING),
        _ev,
        lambda s: (Row(NEXT_ON_FAIL[s], changes(fault=True, rollback=False, handover=False)),),
    )
# Step results where no step runs are illegal (a cancelled step's late result is stale: the
# driver drops it before the machine sees it).
for _ev in (E.STEP_DONE, E.STEP_FAILED, E.STEP_TIMEOUT):
    _illegal(but(*STEP_OF), _ev, "no step runs in this state")

# The lease (docs/design.md, "The lease"): its rows are in lease_rows.
add_lease_rows(_DECIDE, LEASED, ROLLBACK, FAILED)

# probes: Harbor failed while MASTER: hand the VIP away and demote.
_rows([S.MASTER], E.HARBOR_UNHEALTHY, Row(S.STOPPING, FAILED, (Do.BACKOFF,)))
_rows([S.MASTER], E.HARBOR_HEALTHY, STAY)  # healthy: nothing to do
# Probes' events in states that do not probe Harbor: a verdict from before the state changed.
_rows(but(S.MASTER), E.HARBOR_UNHEALTHY, STAY)
_rows(but(S.MASTER), E.HARBOR_HEALTHY, STAY)
# Blocklisted / I/O errors / lock lost (safety rule 2): stop and unmap before mapping again.
_rows([S.MASTER], E.STORAGE_LOST, Row(S.STOPPING, FAILED, (Do.BACKOFF,)))
_rows(
    sorted(PROMOTING - {S.LEASING, S.FENCING}),
    E.STORAGE_LOST,
    Row(S.STOPPING, FAILED, (Do.CANCEL, Do.BACKOFF)),
)
# The storage probe got no answer (no error): Ceph does not answer this node.  While the
# peer's failsafe promise holds, nobody can take the image over, and demoting would only drop
# Harbor (and hang in the unmap): keep serving; the lease deadline still bounds it.  Else as
# a lost image: a fenced client gets errors, but an unanswered one is no better a master.
_rows(
    [S.MASTER],
    E.STORAGE_STUCK,
    Row(when=FAILSAFE_HELD),
    Row(S.STOPPING, FAILED, (Do.BACKOFF,)),
)
_rows(
    sorted(PROMOTING - {S.LEASING, S.FENCING}),
    E.STORAGE_STUCK,
    Row(S.STOPPING, FAILED, (Do.CANCEL, Do.BACKOFF)),
)
# The storage's events where the image is not mapped yet (BACKUP, LEASING, FENCING), is being
# released already (a demotion), or the node is fenced (FENCED_SELF retries the demotion).
for _ev in (E.STORAGE_LOST, E.STORAGE_STUCK):
    _rows((*NOT_HOLDING, S.LEASING, S.FENCING), _ev, STAY)

# The standby is ready: keep Harbor's stateless services (proxy, portal, log) running, so a
# promotion's start step only starts the data-bearing ones, on the verified mount (safety
# rule 5: the WARM action never starts a data-bearing service).  Only BACKUP: every other
# state either runs a step or holds (or is taking, or releasing) the image.
_rows([S.BACKUP], E.STANDBY_READY, Row(do=(Do.WARM,), when=WARM_STANDBY), STAY)
# Data-bearing services running on a BACKUP node (safety rule 5: never without the verified
# mount): the demotion's steps stop Harbor (the unmount and unmap find nothing to do) and the
# node is BACKUP again, its warm services restarted once it is ready.  Not a fault.
_rows([S.BACKUP], E.DATA_ON_STANDBY, Row(S.STOPPING, when=NOT_EXITING), STAY)
# The standby probe's events outside BACKUP: a verdict from before the state changed.
_rows(but(S.BACKUP), E.STANDBY_READY, STAY)
_rows(but(S.BACKUP), E.DATA_ON_STANDBY, STAY)

# The VIP tick (vip_rows): a VIP seen on a BACKUP, or absent where the node holds (or is
# taking) the image, is a mismatch; counted, acted on as a missed keepalived line.
add_vip_rows(
    _DECIDE, standby=[S.BACKUP], holding=HOLDING, not_holding=NOT_HOLDING, others=but(S.BACKUP)
)

# timers: backoff or switchover hold over: the node may be elected again (FENCED_SELF keeps
# its fault until a clean demotion; a running demotion's end clears the flag).
_rows([S.BACKUP], E.BACKOFF_EXPIRED, Row(set=changes(fault=False)))
_rows(DEMOTING, E.BACKOFF_EXPIRED, Row(set=changes(rollback=False)))
# A backoff left running while the node promotes or serves (its fault cleared otherwise:
# LEASE_CLAIM_BACK) or is FENCED_SELF: nothing to clear.
_rows((*HOLDING, S.FENCED_SELF), E.BACKOFF_EXPIRED, STAY)
_rows([S.FENCED_SELF], E.RETRY, Row(S.STOPPING, changes(rollback=False), (Do.CANCEL_RETRY,)))
_illegal(
    but(S.FENCED_SELF), E.RETRY, "retry is for FENCED_SELF (its timer is cancelled on leaving)"
)
_rows([S.MASTER], E.MASTER_STABLE, Row(set=changes(failures=0)))
# The stable timer of a MASTER that has since left: its failures stay counted.
_rows(but(S.MASTER), E.MASTER_STABLE, STAY)

# operator.  Switchover: demote while keeping the VIP, then raise the fault (the peer takes the
# VIP and finds nothing to fence), hold it for switchover_hold_s, then clear it.
_rows([S.MASTER], E.SWITCHOVER, Row(S.STOPPING, HANDING_OVER))
_each(PROMOTING, E.SWITCHOVER, lambda s: (Row(ROLLBACK[s], HANDING_OVER, (Do.CANCEL,)),))
# Refused outside MASTER (REQUIRES); one posted as the node left MASTER: nothing to hand over.
_rows(NOT_HOLDING, E.SWITCHOVER, STAY)
_rows([S.MASTER], E.MAINTENANCE_ON, Row(S.STOPPING, changes(handover=True)))
_each(
    PROMOTING,
    E.MAINTENANCE_ON,
    lambda s: (Row(ROLLBACK[s], changes(handover=True), (Do.CANCEL,)),),
)
# Holding nothing, or releasing it already: maintenance is only observed (the fault file).
_rows(NOT_HOLDING, E.MAINTENANCE_ON, STAY)
# Maintenance off: only observed; the fault file drops and keepalived elects again.
_rows(ALL, E.MAINTENANCE_OFF, STAY)
# Shutdown: finish a running demotion (bounded by its timeouts), then exit; a promotion is
# cancelled (a restart reconciles from the facts); with demote_on_exit, demote first.
_rows((S.BACKUP, S.FENCED_SELF), E.SHUTDOWN, Row(do=(Do.EXIT,)))
_rows(DEMOTING, E.SHUTDOWN, STAY)
_rows(
    [S.MASTER], E.SHUTDOWN, Row(S.STOPPING, HANDING_OVER, when=DEMOTE_ON_EXIT), Row(do=(Do.EXIT,))
)
_each(
    PROMOTING,
    E.SHUTDOWN,
    lambda s: (
        Row(ROLLBACK[s], HANDING_OVER, (Do.CANCEL,), when=DEMOTE_ON_EXIT),
        Row(do=(Do.CANCEL, Do.EXIT)),
    ),
)


# ----------------------------------------------------------------- entering
ARRIVE: Rows = (
    Row(
        set=changes(handover=False, rollback=False),
        do=(Do.HOLD,),
        when=HANDOVER & FAULT & NOT_EXITING,
    ),
    Row(set=changes(handover=False, rollback=False), when=HANDOVER),
    Row(set=changes(rollback=False), when=ROLLING_BACK),
    Row(set=changes(fault=False)),
)
"""Back in BACKUP holding nothing.  A hand-over now raises the fault (the peer takes the VIP; a
switchover's hold timer starts); a rollback keeps the fault flag (its backoff clears it); a
plain demotion or a FENCED_SELF retry clears it."""

ENTER: dict[State, tuple[Rows, ...]] = {
    **{s: ((Row(do=(Do.RUN_STEP,)),),) for s in STEP_OF},
    S.LEASING: (LEASING_ON_ENTRY,),
    S.BACKUP: (ARRIVE, (Row(set=BACKUP_ON_ARRIVAL),), WATCH_ON_ENTRY, REST),
    # Failures are forgotten only once MASTER held: a node that loses the image again and again
    # (a partition ping-pong) backs off longer each time.
    S.MASTER: ((Row(do=(Do.ARM_STABLE,), when=HAS_FAILURES), STAY),),
    S.FENCED_SELF: ((Row(do=(Do.ARM_RETRY, Do.EXIT), when=EXITING), Row(do=(Do.ARM_RETRY,))),),
}
"""Entering a state (from another): groups of rows, one row applies per group, in order."""


# ------------------------------------------------------------------ actions
def _timer(timer: Timer, delay_s: float, reason: str) -> Action:
    return Action(Kind.START_TIMER, timer=timer, delay_s=float(delay_s), reason=reason)


def _backoff(after: Node) -> Action:
    n = max(after.failures, 1)
    return _timer(Timer.BACKOFF, after.policy.backoff_s(n), f"backoff after {n} failure(s)")


def _stable(after: Node) -> Action:
    delay = after.policy.master_stable_s
    return _timer(Timer.STABLE, delay, f"MASTER for {delay:g} s")


ACTION_OF: dict[Do, ActionOf] = {
    Do.RUN_STEP: lambda before, after, event: run(STEP_OF[after.state]),
    Do.CANCEL: lambda before, after, event: CANCEL,
    Do.BACKOFF: lambda before, after, event: _backoff(after),
    Do.HOLD: lambda before, after, event: _timer(
        Timer.BACKOFF, after.policy.switchover_hold_s, "switchover hold over"
    ),
    Do.ARM_RETRY: lambda before, after, event: _timer(
        Timer.RETRY, after.policy.fenced_self_retry_s, "periodic retry of the demotion"
    ),
    Do.CANCEL_RETRY: lambda before, after, event: Action(Kind.CANCEL_TIMER, timer=Timer.RETRY),
    Do.ARM_STABLE: lambda before, after, event: _stable(after),
    Do.WARM: lambda before, after, event: Action(Kind.WARM, reason="standby ready"),
    **LEASE_ACTIONS,
    Do.POST_VERDICT: lambda before, after, event: Action(
        Kind.POST, event=VIP_VERDICT[event] if event else None, ticks=before.vip_mismatch + 1
    ),
    Do.EXIT: lambda before, after, event: EXIT,
}
"""What each row action is, computed from the node before and after the row (delays from the
node's policy)."""


RBD = ModeTable(
    mode=Mode.RBD,
    states=frozenset(RBD_STATES),
    events=frozenset(RBD_EVENTS),
    table=TABLE,
    illegal=ILLEGAL,
    enter=ENTER,
    action_of=ACTION_OF,
    requires=REQUIRES,
)
"""The rbd mode: one exclusive Ceph RBD image, failed over (every state and event but the
shared mode's own)."""


class Clock(enum.StrEnum):
    START = "start"
    STOP = "stop"
    RESET = "reset"


def failover_clock(old: State, new: State) -> Clock | None:
    """The failover-duration metric: from BACKUP -> LEASING to MASTER (reset at BACKUP)."""
    if old is S.BACKUP and new is S.LEASING:
        return Clock.START
    if new is S.MASTER and old is not S.MASTER:
        return Clock.STOP
    if new is S.BACKUP:
        return Clock.RESET
    return None
