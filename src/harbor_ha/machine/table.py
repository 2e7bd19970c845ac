"""Every decision the node makes, as data: everything that affects the machine lives in this file.

``transition(node, event) -> (node', actions)`` reads the table; no I/O.

1. ``OBSERVE[event]``: what the event tells the node whatever its state (keepalived's role,
   maintenance, shutdown asked).
2. ``TABLE[(state, event)]``: rows tried in order; the first whose guard holds applies: its
   field changes, its actions (``Do``), its target state.  A pair missing from the table is
   illegal (IllegalTransition).
3. Entering a new state performs ``enter``: its step (STEP_OF), its timer (FENCED_SELF's
   retry, MASTER's stable timer), and for BACKUP the arrival rules (``arrive``), the only
   code the rows cannot say: how a clean demotion ends depends on why it ran.

Shape of the machine::

    BACKUP -> FENCING -> MAPPING -> MOUNTING -> STARTING -> MASTER
    MASTER / any promotion state -> STOPPING -> UNMOUNTING -> UNMAPPING -> BACKUP
    promotion step fails / times out -> roll back in reverse -> BACKUP + fault flag + backoff
    demotion cannot end unmounted and unmapped -> FENCED_SELF (fault flag, periodic retry)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from .states import (
    CANCEL,
    DEMOTING,
    EXIT,
    PROMOTING,
    STEP_OF,
    Action,
    Event,
    IllegalTransition,
    Kind,
    Node,
    Result,
    State,
    Timer,
    run,
)

S = State
E = Event

# ------------------------------------------------------------ next-state tables
NEXT_ON_DONE: dict[State, State] = {
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
    E.KA_MASTER: {"want_master": True},
    E.KA_BACKUP: {"want_master": False},
    E.KA_FAULT: {"want_master": False},
    E.KA_STOP: {"want_master": False},
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


# ------------------------------------------------------------------- rows
class Do(enum.StrEnum):
    """The actions a row asks for, before the target state's entry actions."""

    CANCEL = "cancel_step"
    BACKOFF = "backoff"  # arm Timer.BACKOFF for policy.backoff_s(failures)
    EXIT = "exit"
    CANCEL_RETRY = "cancel_retry"
    POST_VERDICT = "post_verdict"  # the VIP mismatch lasted: post VIP_VERDICT[event]


class Bump:
    """A field change that adds one (failures, vip_mismatch)."""

    def __repr__(self) -> str:
        return "+1"


BUMP = Bump()


@dataclass(frozen=True)
class Guard:
    name: str
    test: Callable[[Node], bool]

    def __call__(self, node: Node) -> bool:
        return self.test(node)

    def __str__(self) -> str:
        return self.name


EXITING = Guard("exiting", lambda n: n.exiting)
MAY_PROMOTE = Guard("may_promote", lambda n: n.may_promote)
DEMOTE_ON_EXIT = Guard("demote_on_exit", lambda n: n.demote_on_exit)
WANTED = Guard("want_master", lambda n: n.want_master)
UNWANTED = Guard("not want_master", lambda n: not n.want_master)


def _due(g: Guard) -> Guard:
    """``g`` and this tick makes vip_mismatch_ticks consecutive mismatching ticks."""
    return Guard(
        f"{g} and mismatch for vip_mismatch_ticks",
        lambda n: g(n) and n.vip_mismatch + 1 >= n.policy.vip_mismatch_ticks,
    )


@dataclass(frozen=True)
class Row:
    to: State | None = None  # None: stay
    set: Mapping[str, object] = field(default_factory=dict)
    do: tuple[Do, ...] = ()
    when: Guard | None = None


def _changes(**kw: object) -> Mapping[str, object]:
    return MappingProxyType(kw)


STAY = Row()
FAILED = _changes(fault=True, rollback=True, failures=BUMP)
"""A failure of this node (promotion failed, Harbor unhealthy, storage lost)."""
HANDOVER = _changes(fault=True, handover=True)

TABLE: dict[tuple[State, Event], tuple[Row, ...]] = {}


def _rows(states: Iterable[State], event: Event, *rows: Row) -> None:
    for s in states:
        TABLE[(s, event)] = rows


def _each(states: Iterable[State], event: Event, row: Callable[[State], tuple[Row, ...]]) -> None:
    for s in states:
        TABLE[(s, event)] = row(s)


ALL = tuple(State)
HOLDING = (S.MASTER, *sorted(PROMOTING))  # has (or is taking) the image

# Every event has a row in every state, except step results where no step runs and RETRY
# outside FENCED_SELF: those are illegal.  Later rows for a pair replace earlier ones.
for _ev in (*OBSERVE, E.HARBOR_HEALTHY, E.HARBOR_UNHEALTHY, E.STORAGE_LOST, E.BACKOFF_EXPIRED):
    _rows(ALL, _ev, STAY)
_rows(ALL, E.SWITCHOVER, STAY)
_rows(ALL, E.MASTER_STABLE, STAY)

# keepalived: MASTER.  Promoting/master: on it; demoting: the end re-promotes; fenced: no.
_rows(
    [S.BACKUP],
    E.KA_MASTER,
    Row(do=(Do.EXIT,), when=EXITING),
    Row(S.FENCING, when=MAY_PROMOTE),
    STAY,
)
# keepalived: not MASTER.
for _ev in (E.KA_BACKUP, E.KA_FAULT, E.KA_STOP):
    _each(PROMOTING, _ev, lambda s: (Row(ROLLBACK[s], do=(Do.CANCEL,)),))
    _rows([S.MASTER], _ev, Row(S.STOPPING))

# step results
_each(STEP_OF, E.STEP_DONE, lambda s: (Row(NEXT_ON_DONE[s]),))
for _ev in (E.STEP_FAILED, E.STEP_TIMEOUT):
    _each(PROMOTING, _ev, lambda s: (Row(NEXT_ON_FAIL[s], FAILED, (Do.BACKOFF,)),))
    _rows([S.STOPPING], _ev, Row(NEXT_ON_FAIL[S.STOPPING]))
    _each(
        (S.UNMOUNTING, S.UNMAPPING),
        _ev,
        lambda s: (Row(NEXT_ON_FAIL[s], _changes(fault=True, rollback=False, handover=False)),),
    )

# probes: Harbor failed while MASTER: hand the VIP away and demote.
_rows([S.MASTER], E.HARBOR_UNHEALTHY, Row(S.STOPPING, FAILED, (Do.BACKOFF,)))
# Blocklisted / I/O errors / lock lost (safety rule 2): stop and unmap before mapping again.
_rows([S.MASTER], E.STORAGE_LOST, Row(S.STOPPING, FAILED, (Do.BACKOFF,)))
_rows(
    sorted(PROMOTING - {S.FENCING}),
    E.STORAGE_LOST,
    Row(S.STOPPING, FAILED, (Do.CANCEL, Do.BACKOFF)),
)

# The VIP tick: count consecutive ticks where the VIP disagrees with the state; act on the
# vip_mismatch_ticks-th as if keepalived had written the line (missed FIFO lines must not matter).
_rows(ALL, E.VIP_SEEN, Row(set=_changes(vip_mismatch=0)))
_rows(ALL, E.VIP_ABSENT, Row(set=_changes(vip_mismatch=0)))
_rows(
    [S.BACKUP],
    E.VIP_SEEN,
    Row(set=_changes(vip_mismatch=0), do=(Do.POST_VERDICT,), when=_due(UNWANTED)),
    Row(set=_changes(vip_mismatch=BUMP), when=UNWANTED),
    Row(set=_changes(vip_mismatch=0)),
)
_rows(
    HOLDING,
    E.VIP_ABSENT,
    Row(set=_changes(vip_mismatch=0), do=(Do.POST_VERDICT,), when=_due(WANTED)),
    Row(set=_changes(vip_mismatch=BUMP), when=WANTED),
    Row(set=_changes(vip_mismatch=0)),
)

# timers: backoff or switchover hold over: the node may be elected again (FENCED_SELF keeps
# its fault until a clean demotion; a running demotion's end clears the flag).
_rows([S.BACKUP], E.BACKOFF_EXPIRED, Row(set=_changes(fault=False)))
_rows(DEMOTING, E.BACKOFF_EXPIRED, Row(set=_changes(rollback=False)))
_rows([S.FENCED_SELF], E.RETRY, Row(S.STOPPING, _changes(rollback=False), (Do.CANCEL_RETRY,)))
_rows([S.MASTER], E.MASTER_STABLE, Row(set=_changes(failures=0)))

# operator.  Switchover: demote while keeping the VIP, then raise the fault (the peer takes the
# VIP and finds nothing to fence), hold it for switchover_hold_s, then clear it.
_rows([S.MASTER], E.SWITCHOVER, Row(S.STOPPING, HANDOVER))
_each(PROMOTING, E.SWITCHOVER, lambda s: (Row(ROLLBACK[s], HANDOVER, (Do.CANCEL,)),))
_rows([S.MASTER], E.MAINTENANCE_ON, Row(S.STOPPING, _changes(handover=True)))
_each(
    PROMOTING,
    E.MAINTENANCE_ON,
    lambda s: (Row(ROLLBACK[s], _changes(handover=True), (Do.CANCEL,)),),
)
# Shutdown: finish a running demotion (bounded by its timeouts), then exit; a promotion is
# cancelled (a restart reconciles from the facts); with demote_on_exit, demote first.
_rows((S.BACKUP, S.FENCED_SELF), E.SHUTDOWN, Row(do=(Do.EXIT,)))
_rows(DEMOTING, E.SHUTDOWN, STAY)
_rows([S.MASTER], E.SHUTDOWN, Row(S.STOPPING, HANDOVER, when=DEMOTE_ON_EXIT), Row(do=(Do.EXIT,)))
_each(
    PROMOTING,
    E.SHUTDOWN,
    lambda s: (
        Row(ROLLBACK[s], HANDOVER, (Do.CANCEL,), when=DEMOTE_ON_EXIT),
        Row(do=(Do.CANCEL, Do.EXIT)),
    ),
)


# ----------------------------------------------------------------- entering
def arrive(node: Node) -> Result:
    """Back in BACKUP holding nothing.  A hand-over now raises the fault (the peer takes the
    VIP; a switchover's hold timer starts); a rollback keeps the fault flag (its backoff clears
    it); a plain demotion or a FENCED_SELF retry clears it.  Then: exit if asked to, promote
    again if keepalived still wants us."""
    hold: tuple[Action, ...] = ()
    if node.handover:
        if node.fault and not node.exiting:
            delay = node.policy.switchover_hold_s
            hold = (_timer(Timer.BACKOFF, delay, "switchover hold over"),)
        node = replace(node, handover=False, rollback=False)
    elif node.rollback:
        node = replace(node, rollback=False)
    else:
        node = replace(node, fault=False)
    if node.exiting:
        return node, (*hold, EXIT)
    if node.may_promote:
        new, acts = enter(replace(node, state=S.FENCING))
        return new, (*hold, *acts)
    return node, hold


def enter(node: Node) -> Result:
    """The entry actions of ``node.state`` (the node has just moved there)."""
    s = node.state
    if s in STEP_OF:
        return node, (run(STEP_OF[s]),)
    if s is S.BACKUP:
        return arrive(node)
    if s is S.FENCED_SELF:
        retry = _timer(
            Timer.RETRY, node.policy.fenced_self_retry_s, "periodic retry of the demotion"
        )
        return node, (retry, EXIT) if node.exiting else (retry,)
    if s is S.MASTER and node.failures:
        # Failures are forgotten only once MASTER held: a node that loses the image again and
        # again (a partition ping-pong) backs off longer each time.
        delay = node.policy.master_stable_s
        return node, (_timer(Timer.STABLE, delay, f"MASTER for {delay:g} s"),)
    return node, ()


def _timer(timer: Timer, delay_s: float, reason: str) -> Action:
    return Action(Kind.START_TIMER, timer=timer, delay_s=delay_s, reason=reason)


def _action(do: Do, event: Event, before: Node, after: Node) -> Action:
    if do is Do.CANCEL:
        return CANCEL
    if do is Do.EXIT:
        return EXIT
    if do is Do.CANCEL_RETRY:
        return Action(Kind.CANCEL_TIMER, timer=Timer.RETRY)
    if do is Do.BACKOFF:
        n = max(after.failures, 1)
        return _timer(Timer.BACKOFF, after.policy.backoff_s(n), f"backoff after {n} failure(s)")
    ticks = before.vip_mismatch + 1
    return Action(Kind.POST, event=VIP_VERDICT[event], ticks=ticks)


def _apply(node: Node, changes: Mapping[str, object]) -> Node:
    out: dict[str, object] = {}
    for name, value in changes.items():
        out[name] = getattr(node, name) + 1 if value is BUMP else value
    return replace(node, **out)  # type: ignore[arg-type]


def select(node: Node, event: Event) -> tuple[Node, Row]:
    """The observed node and the row that applies to it (IllegalTransition if none)."""
    rows = TABLE.get((node.state, event))
    if rows is None:
        raise IllegalTransition(node.state, event)
    seen = _apply(node, OBSERVE.get(event, {}))
    for row in rows:
        if row.when is None or row.when(seen):
            return seen, row
    raise IllegalTransition(node.state, event)  # pragma: no cover - every list ends unguarded


def transition(node: Node, event: Event) -> Result:
    """The one pure function: where ``event`` takes ``node``, and what to do about it.

    Raises IllegalTransition for a (state, event) pair the table does not hold.
    """
    seen, row = select(node, event)
    new = _apply(seen, row.set)
    actions = tuple(_action(do, event, seen, new) for do in row.do)
    if row.to is None or row.to is node.state:
        return new, actions
    new, entry = enter(replace(new, state=row.to))
    return new, (*actions, *entry)


def refusal(node: Node, event: Event) -> str | None:
    """Why an operator command is refused in this state (None: it is accepted)."""
    need = REQUIRES.get(event)
    if need is None or node.state is need[0]:
        return None
    return f"{need[1]}; this node is {node.state}"


class Clock(enum.StrEnum):
    START = "start"
    STOP = "stop"
    RESET = "reset"


def failover_clock(old: State, new: State) -> Clock | None:
    """The failover-duration metric: from BACKUP -> FENCING to MASTER (reset at BACKUP)."""
    if old is S.BACKUP and new is S.FENCING:
        return Clock.START
    if new is S.MASTER and old is not S.MASTER:
        return Clock.STOP
    if new is S.BACKUP:
        return Clock.RESET
    return None
