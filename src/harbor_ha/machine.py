"""The node's state machine: a transition table and a pure function.  No I/O here.

``transition(node, event) -> (node', actions)``.  ``node`` is the whole
decision state (an immutable :class:`Node`): the state proper plus the few
facts a transition needs (does keepalived want us MASTER, is the fault flag
up, are we rolling back, ...).  The driver (harbor_ha.daemon) performs the
actions and feeds back the results as events.

Shape of the machine::

    BACKUP -> FENCING -> MAPPING -> MOUNTING -> STARTING -> MASTER
    MASTER / any promotion state -> STOPPING -> UNMOUNTING -> UNMAPPING -> BACKUP
    promotion step fails / times out -> roll back in reverse -> BACKUP + fault flag + backoff
    demotion cannot end unmounted and unmapped -> FENCED_SELF (fault flag, periodic retry)
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace


class State(enum.StrEnum):
    BACKUP = "BACKUP"
    FENCING = "FENCING"
    MAPPING = "MAPPING"
    MOUNTING = "MOUNTING"
    STARTING = "STARTING"
    MASTER = "MASTER"
    STOPPING = "STOPPING"
    UNMOUNTING = "UNMOUNTING"
    UNMAPPING = "UNMAPPING"
    FENCED_SELF = "FENCED_SELF"


class Event(enum.StrEnum):
    # keepalived's view of our VRRP role (FIFO lines, or the VIP check on a tick)
    KA_MASTER = "KA_MASTER"
    KA_BACKUP = "KA_BACKUP"
    KA_FAULT = "KA_FAULT"
    KA_STOP = "KA_STOP"
    # results of the step the driver is running
    STEP_DONE = "STEP_DONE"
    STEP_FAILED = "STEP_FAILED"
    STEP_TIMEOUT = "STEP_TIMEOUT"
    # debounced probe results (Harbor on this node)
    HARBOR_HEALTHY = "HARBOR_HEALTHY"
    HARBOR_UNHEALTHY = "HARBOR_UNHEALTHY"
    # this node lost the image: blocklisted, I/O errors, lock lost (safety rule 2)
    STORAGE_LOST = "STORAGE_LOST"
    # timers
    BACKOFF_EXPIRED = "BACKOFF_EXPIRED"
    RETRY = "RETRY"  # FENCED_SELF: try the demotion again
    MASTER_STABLE = "MASTER_STABLE"  # MASTER for master_stable_s: forget past failures
    # operator
    SWITCHOVER = "SWITCHOVER"
    MAINTENANCE_ON = "MAINTENANCE_ON"
    MAINTENANCE_OFF = "MAINTENANCE_OFF"
    SHUTDOWN = "SHUTDOWN"


class Step(enum.StrEnum):
    """The long-running, cancellable actions, in promotion order then demotion order."""

    FENCE = "fence"
    MAP = "map"
    MOUNT = "mount"
    START = "start"
    STOP = "stop"
    UNMOUNT = "unmount"
    UNMAP = "unmap"


STEP_OF: dict[State, Step] = {
    State.FENCING: Step.FENCE,
    State.MAPPING: Step.MAP,
    State.MOUNTING: Step.MOUNT,
    State.STARTING: Step.START,
    State.STOPPING: Step.STOP,
    State.UNMOUNTING: Step.UNMOUNT,
    State.UNMAPPING: Step.UNMAP,
}
"""The step that runs while the node is in a state (the other states run none)."""

PROMOTING = frozenset({State.FENCING, State.MAPPING, State.MOUNTING, State.STARTING})
DEMOTING = frozenset({State.STOPPING, State.UNMOUNTING, State.UNMAPPING})


class Kind(enum.StrEnum):
    RUN_STEP = "run_step"
    CANCEL_STEP = "cancel_step"  # cancel the running step (kill its process group), wait for it
    START_BACKOFF = "start_backoff"  # arm BACKOFF_EXPIRED; length by Node.failures (driver)
    START_HOLD = "start_hold"  # arm BACKOFF_EXPIRED after switchover_hold_s
    EXIT = "exit"  # the daemon may exit now


@dataclass(frozen=True)
class Action:
    kind: Kind
    step: Step | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.step}" if self.step else str(self.kind)


def run(step: Step) -> Action:
    return Action(Kind.RUN_STEP, step)


CANCEL = Action(Kind.CANCEL_STEP)
BACKOFF = Action(Kind.START_BACKOFF)
HOLD = Action(Kind.START_HOLD)
EXIT = Action(Kind.EXIT)


@dataclass(frozen=True)
class Node:
    """Everything a transition decides on.  Immutable; transitions return a new one."""

    state: State = State.BACKUP
    want_master: bool = False  # the last role keepalived asked for
    fault: bool = False  # failed promotion, unhealthy, storage lost, switchover hold, FENCED_SELF
    maintenance: bool = False  # operator: never take the VIP
    rollback: bool = False  # keep the fault flag when the running demotion ends
    exiting: bool = False  # shutdown asked: exit once the running demotion ends
    failures: int = 0  # consecutive failed promotions (drives the backoff length)
    demote_on_exit: bool = False  # settings.stop_harbor_on_exit: SHUTDOWN demotes first
    handover: bool = False  # planned demotion: keep the VIP until clean, then raise the fault

    @property
    def may_promote(self) -> bool:
        return (
            self.want_master
            and not self.fault
            and not self.maintenance
            and not self.exiting
            and not self.handover
        )

    @property
    def fault_file_on(self) -> bool:
        """The weight-0 track file's value: keepalived must not give (or leave) us the VIP.

        During a planned hand-over (switchover, maintenance, demote-on-exit) the node keeps
        the VIP until it has stopped Harbor, unmounted and unmapped: raising the fault first
        would let the peer fence us in the middle of a clean shutdown (Harbor's database
        would get I/O errors while it checkpoints)."""
        if self.handover and self.state is not State.FENCED_SELF:
            return False
        return self.fault or self.maintenance or self.state is State.FENCED_SELF

    @property
    def step(self) -> Step | None:
        return STEP_OF.get(self.state)


class IllegalTransition(Exception):
    """An event that makes no sense in a state (e.g. STEP_DONE with no step running)."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"event {event} is illegal in state {state}")
        self.state = state
        self.event = event


Result = tuple[Node, tuple[Action, ...]]
Rule = Callable[[Node], Result]


# ------------------------------------------------------------------ helpers
def _go(node: Node, state: State, *actions: Action, **changes: object) -> Result:
    """Enter ``state`` (starting its step, if it has one) after ``actions``."""
    new = replace(node, state=state, **changes)  # type: ignore[arg-type]
    step = STEP_OF.get(state)
    return new, (*actions, run(step)) if step is not None else tuple(actions)


def _stay(node: Node, *actions: Action, **changes: object) -> Result:
    return replace(node, **changes), tuple(actions)  # type: ignore[arg-type]


def _rest(node: Node, *actions: Action, **changes: object) -> Result:
    """Back in BACKUP: exit if asked to, promote again if keepalived still wants us."""
    new = replace(node, state=State.BACKUP, **changes)  # type: ignore[arg-type]
    if new.exiting:
        return new, (*actions, EXIT)
    if new.may_promote:
        return _go(new, State.FENCING, *actions)
    return new, tuple(actions)


ROLLBACK_FROM: dict[State, State] = {
    State.FENCING: State.BACKUP,  # fencing changes nothing on this node
    State.MAPPING: State.UNMAPPING,  # a map may have half-happened
    State.MOUNTING: State.UNMOUNTING,
    State.STARTING: State.STOPPING,
}


def _roll_back(node: Node, *pre: Action, **changes: object) -> Result:
    """Leave a promotion state: undo what its step may have done, in reverse."""
    target = ROLLBACK_FROM[node.state]
    node = replace(node, **changes)  # type: ignore[arg-type]
    if target is State.BACKUP:
        if node.handover:  # nothing held: hand over at once
            hold = (HOLD,) if node.fault else ()
            return _rest(node, *pre, *hold, rollback=False, handover=False)
        return _rest(node, *pre, rollback=False)
    return _go(node, target, *pre)


# ------------------------------------------------------------------- rules
def _ka_master(node: Node) -> Result:
    node = replace(node, want_master=True)
    if node.state is State.BACKUP:
        return _rest(node)
    return node, ()  # promoting/master: on it; demoting: the end re-promotes; fenced: no


def _ka_not_master(node: Node) -> Result:
    node = replace(node, want_master=False)
    if node.state in PROMOTING:
        return _roll_back(node, CANCEL)
    if node.state is State.MASTER:
        return _go(node, State.STOPPING)
    return node, ()


def _step_done(node: Node) -> Result:
    s = node.state
    if s is State.FENCING:
        return _go(node, State.MAPPING)
    if s is State.MAPPING:
        return _go(node, State.MOUNTING)
    if s is State.MOUNTING:
        return _go(node, State.STARTING)
    if s is State.STARTING:
        # failures are forgotten only once MASTER held (MASTER_STABLE): a node that loses the
        # image again and again (a partition ping-pong) backs off longer each time.
        return _stay(node, state=State.MASTER)
    if s is State.STOPPING:
        return _go(node, State.UNMOUNTING)
    if s is State.UNMOUNTING:
        return _go(node, State.UNMAPPING)
    # UNMAPPING done: the node is clean.  A hand-over now raises the fault (the peer takes
    # the VIP; a switchover's hold timer starts); a rollback keeps the fault flag (its timer
    # clears it); a plain demotion or a FENCED_SELF retry clears it.
    if node.handover:
        hold = (HOLD,) if node.fault and not node.exiting else ()
        return _rest(node, *hold, handover=False, rollback=False)
    if node.rollback:
        return _rest(node, rollback=False)
    return _rest(node, fault=False)


def _step_failed(node: Node) -> Result:
    s = node.state
    if s in PROMOTING:
        return _roll_back(node, BACKOFF, fault=True, rollback=True, failures=node.failures + 1)
    if s is State.STOPPING:
        # Compose could not stop Harbor (the step already killed by label):
        # unmounting kills whatever still uses the mount.
        return _go(node, State.UNMOUNTING)
    # UNMOUNTING / UNMAPPING failed: the node cannot end clean (safety rule 6).
    actions = (EXIT,) if node.exiting else ()
    return _stay(
        node, *actions, state=State.FENCED_SELF, fault=True, rollback=False, handover=False
    )


def _unhealthy_master(node: Node) -> Result:
    """Harbor failed its probes while MASTER: hand the VIP away and demote."""
    return _go(node, State.STOPPING, BACKOFF, fault=True, rollback=True, failures=node.failures + 1)


def _storage_lost(node: Node) -> Result:
    """Blocklisted / I/O errors / lock lost (safety rule 2): stop and unmap before mapping again."""
    pre = (CANCEL, BACKOFF) if node.state in PROMOTING else (BACKOFF,)
    return _go(node, State.STOPPING, *pre, fault=True, rollback=True, failures=node.failures + 1)


def _timer_expired(node: Node) -> Result:
    """Backoff or switchover hold over: the node may be elected again."""
    if node.state is State.BACKUP and node.fault:
        return _stay(node, fault=False)
    if node.state in DEMOTING:
        return _stay(node, rollback=False)  # the demotion's end clears the flag
    return node, ()  # FENCED_SELF keeps its fault until a clean demotion


def _retry(node: Node) -> Result:
    return _go(node, State.STOPPING, rollback=False)


def _switchover(node: Node) -> Result:
    """Planned hand-over: demote while keeping the VIP, then raise the fault (the peer takes
    the VIP and finds nothing to fence), hold it for switchover_hold_s, then clear it."""
    if node.state is State.MASTER:
        return _go(node, State.STOPPING, fault=True, handover=True)
    if node.state in PROMOTING:
        return _roll_back(node, CANCEL, fault=True, handover=True)
    return node, ()  # not master: nothing to hand over


def _maintenance_on(node: Node) -> Result:
    if node.state is State.MASTER:
        return _go(node, State.STOPPING, maintenance=True, handover=True)
    if node.state in PROMOTING:
        return _roll_back(node, CANCEL, maintenance=True, handover=True)
    return _stay(node, maintenance=True)


def _maintenance_off(node: Node) -> Result:
    return _stay(node, maintenance=False)


def _shutdown(node: Node) -> Result:
    demote = node.demote_on_exit
    node = replace(node, exiting=True)
    s = node.state
    if s in DEMOTING:
        return node, ()  # finish the demotion (bounded by its timeouts), then exit
    if demote and s is State.MASTER:
        return _go(node, State.STOPPING, fault=True, handover=True)
    if demote and s in PROMOTING:
        return _roll_back(node, CANCEL, fault=True, handover=True)
    if s in PROMOTING:
        return node, (CANCEL, EXIT)  # a restart reconciles from the facts
    return node, (EXIT,)


def _master_stable(node: Node) -> Result:
    return _stay(node, failures=0)


def _ignore(node: Node) -> Result:
    return node, ()


# -------------------------------------------------------------------- table
ALL_STATES = tuple(State)
STEP_STATES = tuple(STEP_OF)

TABLE: dict[tuple[State, Event], Rule] = {}


def _rule(states: tuple[State, ...] | frozenset[State], event: Event, rule: Rule) -> None:
    for s in states:
        TABLE[(s, event)] = rule


_rule(ALL_STATES, Event.KA_MASTER, _ka_master)
for _ev in (Event.KA_BACKUP, Event.KA_FAULT, Event.KA_STOP):
    _rule(ALL_STATES, _ev, _ka_not_master)
_rule(STEP_STATES, Event.STEP_DONE, _step_done)
_rule(STEP_STATES, Event.STEP_FAILED, _step_failed)
_rule(STEP_STATES, Event.STEP_TIMEOUT, _step_failed)
_rule(ALL_STATES, Event.HARBOR_HEALTHY, _ignore)
_rule(ALL_STATES, Event.HARBOR_UNHEALTHY, _ignore)
TABLE[(State.MASTER, Event.HARBOR_UNHEALTHY)] = _unhealthy_master
_rule(ALL_STATES, Event.STORAGE_LOST, _ignore)
_rule((State.MASTER, *PROMOTING - {State.FENCING}), Event.STORAGE_LOST, _storage_lost)
_rule(ALL_STATES, Event.BACKOFF_EXPIRED, _timer_expired)
TABLE[(State.FENCED_SELF, Event.RETRY)] = _retry
_rule(ALL_STATES, Event.SWITCHOVER, _switchover)
_rule(ALL_STATES, Event.MAINTENANCE_ON, _maintenance_on)
_rule(ALL_STATES, Event.MAINTENANCE_OFF, _maintenance_off)
_rule(ALL_STATES, Event.SHUTDOWN, _shutdown)
_rule(ALL_STATES, Event.MASTER_STABLE, _ignore)
TABLE[(State.MASTER, Event.MASTER_STABLE)] = _master_stable


def transition(node: Node, event: Event) -> Result:
    """The one pure function: where ``event`` takes ``node``, and what to do about it.

    Raises IllegalTransition for a (state, event) pair the table does not hold.
    """
    rule = TABLE.get((node.state, event))
    if rule is None:
        raise IllegalTransition(node.state, event)
    return rule(node)


# ---------------------------------------------------------------- reconcile
@dataclass(frozen=True)
class Facts:
    """What the node observed about itself at start (safety rule 8)."""

    vip: bool  # the VIP is on our interface
    mapped: bool  # the image is mapped on this node
    mounted: bool  # the mountpoint is mounted from the mapped device
    harbor_running: bool  # some container of the Harbor project is running
    mount_foreign: bool = False  # something else is mounted at the mountpoint


def from_facts(facts: Facts, *, demote_on_exit: bool = False) -> Result:
    """Derive the state from facts, and what to do first.  Never trusts a remembered state.

    - VIP, mapped, mounted, Harbor up: adopt as MASTER (a daemon restart is hitless).
    - VIP and a partial promotion: resume it at the first step not yet done
      (every step is idempotent; Ceph fences us if the peer took the image).
    - VIP and nothing: promote from the start.
    - No VIP and anything held, or Harbor running on a bare mountpoint: demote.
    - Nothing held, no VIP: BACKUP.
    """
    base = Node(want_master=facts.vip, demote_on_exit=demote_on_exit)
    bare_harbor = facts.harbor_running and not facts.mounted
    held = facts.mapped or facts.mounted or facts.harbor_running or facts.mount_foreign
    if bare_harbor or facts.mount_foreign or (held and not facts.vip):
        return _go(base, State.STOPPING)
    if not facts.vip:
        return base, ()
    if facts.mapped and facts.mounted and facts.harbor_running:
        return replace(base, state=State.MASTER), ()
    if facts.mapped and facts.mounted:
        return _go(base, State.STARTING)
    if facts.mapped:
        return _go(base, State.MOUNTING)
    return _go(base, State.FENCING)
