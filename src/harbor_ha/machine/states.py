"""The machine's vocabulary: states, events, steps, timers, actions, the node and its policy.

Plain data only; the transitions are in ``table.py``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


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
    # keepalived's view of our VRRP role (FIFO lines, notify scripts, or the VIP tick's verdict)
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
    # the standby's readiness check passed (first pass in BACKUP, or ready again)
    STANDBY_READY = "STANDBY_READY"
    # the VIP tick's observation, once per tick: is the VIP on our interface
    VIP_SEEN = "VIP_SEEN"
    VIP_ABSENT = "VIP_ABSENT"
    # timers (see TIMER_EVENT)
    BACKOFF_EXPIRED = "BACKOFF_EXPIRED"
    RETRY = "RETRY"  # FENCED_SELF: try the demotion again (timer or operator)
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


class Probes(enum.StrEnum):
    """What the monitor checks in a state."""

    MASTER = "master"  # Harbor (debounced) and the storage under it
    STANDBY = "standby"  # readiness to take over (Ceph, image, Docker, images)
    NONE = "none"  # a step is running or the node is fenced: not ready, nothing to probe


PROBE_OF: dict[State, Probes] = {
    s: Probes.MASTER if s is State.MASTER else Probes.STANDBY if s is State.BACKUP else Probes.NONE
    for s in State
}


class Timer(enum.StrEnum):
    """The machine's timers.  Arming one that runs replaces it."""

    BACKOFF = "backoff"  # failed-promotion backoff and switchover hold (one timer, last wins)
    RETRY = "retry"  # FENCED_SELF's periodic retry of the demotion
    STABLE = "master_stable"  # MASTER held long enough to forget past failures


TIMER_EVENT: dict[Timer, Event] = {
    Timer.BACKOFF: Event.BACKOFF_EXPIRED,
    Timer.RETRY: Event.RETRY,
    Timer.STABLE: Event.MASTER_STABLE,
}
"""The event a timer posts when it fires."""


class Kind(enum.StrEnum):
    RUN_STEP = "run_step"
    CANCEL_STEP = "cancel_step"  # cancel the running step (kill its process group), wait for it
    START_TIMER = "start_timer"  # arm ``timer`` for ``delay_s``; it posts TIMER_EVENT[timer]
    CANCEL_TIMER = "cancel_timer"  # a pending firing of ``timer`` is dropped
    WARM = "warm"  # start Harbor's stateless services (never the data-bearing ones), no step
    POST = "post"  # feed ``event`` back in (the VIP tick's verdict: a keepalived line we missed)
    EXIT = "exit"  # the daemon may exit now


@dataclass(frozen=True)
class Action:
    kind: Kind
    step: Step | None = None
    timer: Timer | None = None
    delay_s: float | None = None
    event: Event | None = None
    reason: str = ""
    ticks: int = 0  # POST after a VIP mismatch: for how many ticks

    def __str__(self) -> str:
        if self.step is not None:
            return f"{self.kind}:{self.step}"
        if self.timer is not None and self.delay_s is not None:
            return f"{self.kind}:{self.timer}:{self.delay_s:g}s"
        if self.timer is not None:
            return f"{self.kind}:{self.timer}"
        if self.event is not None:
            return f"{self.kind}:{self.event}"
        return str(self.kind)


def run(step: Step) -> Action:
    return Action(Kind.RUN_STEP, step)


CANCEL = Action(Kind.CANCEL_STEP)
EXIT = Action(Kind.EXIT)


@dataclass(frozen=True)
class Policy:
    """The settings the machine decides with: timings, and whether a ready standby keeps
    Harbor's stateless services running (``warm_standby``).  The defaults are the settings'
    defaults; the daemon passes the configured values."""

    backoff_initial_s: float = 10.0
    backoff_max_s: float = 300.0
    switchover_hold_s: float = 15.0
    fenced_self_retry_s: float = 30.0
    master_stable_s: float = 60.0
    vip_mismatch_ticks: int = 2
    warm_standby: bool = True

    def backoff_s(self, failures: int) -> float:
        """Doubling backoff: initial * 2**(n-1) after n consecutive failures, capped."""
        n = max(failures, 1)
        return float(min(self.backoff_initial_s * 2 ** (n - 1), self.backoff_max_s))


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
    vip_mismatch: int = 0  # consecutive ticks the VIP disagreed with the state
    policy: Policy = field(default_factory=Policy)

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

    @property
    def probes(self) -> Probes:
        return PROBE_OF[self.state]

    @property
    def serving(self) -> bool:
        """Harbor runs here on the verified mount (what /primary answers, with Harbor healthy)."""
        return self.state is State.MASTER


class IllegalTransition(Exception):
    """An event that makes no sense in a state (e.g. STEP_DONE with no step running)."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"event {event} is illegal in state {state}")
        self.state = state
        self.event = event


Result = tuple[Node, tuple[Action, ...]]
