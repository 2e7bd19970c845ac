"""The machine's vocabulary: states, events, steps, timers, actions, the node and its policy.

Plain data only; the transitions are in ``table.py``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from harbor_ha.settings.mode import Mode as Mode  # re-exported: the machine's vocabulary


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
    # Last, so the metric's state codes (deploy/) of the older states stay what they were.
    LEASING = "LEASING"  # taking the leadership lease in Ceph (issue 10) before fencing
    # The shared mode's own states (machine/shared.py), after the others for the same reason.
    DOWN = "DOWN"  # shared: holds nothing (Harbor stopped, nothing mounted), out of the pool
    SERVING = "SERVING"  # shared: Harbor runs on the verified mount and serves, in the pool
    DRAINING = "DRAINING"  # shared: out of the pool (readiness 503), waiting drain_wait_s


class Event(enum.StrEnum):
    # keepalived's view of our VRRP role (FIFO lines, notify scripts, or the VIP tick's verdict)
    KA_MASTER = "KA_MASTER"
    KA_BACKUP = "KA_BACKUP"
    KA_FAULT = "KA_FAULT"
    KA_STOP = "KA_STOP"
    KA_GONE = "KA_GONE"  # keepalived closed the notify FIFO and none came back (it died)
    KA_RETURNED = "KA_RETURNED"  # a keepalived holds the FIFO again (after KA_GONE)
    # results of the step the driver is running
    STEP_DONE = "STEP_DONE"
    STEP_FAILED = "STEP_FAILED"
    STEP_TIMEOUT = "STEP_TIMEOUT"
    # debounced probe results (Harbor on this node)
    HARBOR_HEALTHY = "HARBOR_HEALTHY"
    HARBOR_UNHEALTHY = "HARBOR_UNHEALTHY"
    # this node lost the image: blocklisted, I/O errors, lock lost (safety rule 2)
    STORAGE_LOST = "STORAGE_LOST"
    # the storage probe got no answer in time, twice (no error: Ceph does not answer)
    STORAGE_STUCK = "STORAGE_STUCK"
    # the standby's readiness check passed (first pass in BACKUP, or ready again)
    STANDBY_READY = "STANDBY_READY"
    # data-bearing Harbor services run on a BACKUP node, without the image (dockerd brought
    # back restart: always containers; an operator's `compose up`)
    DATA_ON_STANDBY = "DATA_ON_STANDBY"
    # the VIP tick's observation, once per tick: is the VIP on our interface
    VIP_SEEN = "VIP_SEEN"
    VIP_ABSENT = "VIP_ABSENT"
    # timers (see TIMER_EVENT)
    BACKOFF_EXPIRED = "BACKOFF_EXPIRED"
    RETRY = "RETRY"  # FENCED_SELF: try the demotion again (timer or operator)
    MASTER_STABLE = "MASTER_STABLE"  # MASTER for master_stable_s: forget past failures
    # the leadership lease (docs/design.md, "The lease")
    LEASE_HELD_BY_PEER = "LEASE_HELD_BY_PEER"  # the lease step: a live peer renews it
    LEASE_RENEWED = "LEASE_RENEWED"  # a renewal succeeded (within the renewal interval)
    LEASE_LOST = "LEASE_LOST"  # a renewal found the peer holding it
    LEASE_UNREACHABLE = "LEASE_UNREACHABLE"  # a renewal got no (timely) answer from Ceph
    RENEW_DUE = "RENEW_DUE"  # timer: renew now
    LEASE_DEADLINE = "LEASE_DEADLINE"  # timer: no renewal for the deadline: stop serving
    LEASE_STALE = "LEASE_STALE"  # the lease step: the holder's expiry stopped moving
    LEASE_TAKEN = "LEASE_TAKEN"  # the fence step fenced the stopped holder and took its lease
    LEASE_POLL_DUE = "LEASE_POLL_DUE"  # timer: a refused standby looks at the lease again
    LEASE_PEER_RENEWS = "LEASE_PEER_RENEWS"  # the poll: the holder still renews, keep waiting
    LEASE_CLAIM_BACK = "LEASE_CLAIM_BACK"  # the poll: holder stopped / lease free / healed
    LEASE_WATCH_DUE = "LEASE_WATCH_DUE"  # timer: a standby's next look at the lease (BACKUP)
    LEASE_HOLDER_DEMOTING = "LEASE_HOLDER_DEMOTING"  # the lease step: the live holder demotes
    LEASE_HANDOFF_OVER = "LEASE_HANDOFF_OVER"  # timer: the demoting holder's bound has passed
    FAILSAFE_DUE = "FAILSAFE_DUE"  # timer: no renewal for a while: ask the peer in time
    FAILSAFE_CONFIRMED = "FAILSAFE_CONFIRMED"  # the peer cannot reach Ceph and promised
    FAILSAFE_DENIED = "FAILSAFE_DENIED"  # no confirmation from the peer
    FAILSAFE_PROMISED = "FAILSAFE_PROMISED"  # this node promised the peer not to promote
    PROMISE_EXPIRED = "PROMISE_EXPIRED"  # timer: that promise is over
    # the shared mode: the drain's wait is over (the load balancer has taken this node out)
    DRAIN_OVER = "DRAIN_OVER"
    # operator
    DRAIN = "DRAIN"  # the shared mode: take this node out of the pool (maintenance on)
    SWITCHOVER = "SWITCHOVER"
    MAINTENANCE_ON = "MAINTENANCE_ON"
    MAINTENANCE_OFF = "MAINTENANCE_OFF"
    SHUTDOWN = "SHUTDOWN"


SHARED_ONLY_STATES = frozenset({State.DOWN, State.SERVING, State.DRAINING})
SHARED_ONLY_EVENTS = frozenset({Event.DRAIN, Event.DRAIN_OVER})
SHARED_STATES = (
    State.DOWN, State.MOUNTING, State.STARTING, State.SERVING, State.DRAINING, State.STOPPING,
    State.UNMOUNTING,
)  # fmt: skip
"""The shared mode's states (machine/shared.py), in its order of joining then leaving."""
RBD_STATES = tuple(s for s in State if s not in SHARED_ONLY_STATES)
"""The rbd mode's states (every state but the shared mode's own), in State's order."""
RBD_EVENTS = tuple(e for e in Event if e not in SHARED_ONLY_EVENTS)
"""The rbd mode's events (every event but the shared mode's own), in Event's order."""


class Step(enum.StrEnum):
    """The long-running, cancellable actions, in promotion order then demotion order."""

    LEASE = "lease"
    FENCE = "fence"
    MAP = "map"
    MOUNT = "mount"
    START = "start"
    STOP = "stop"
    UNMOUNT = "unmount"
    UNMAP = "unmap"


STEP_OF: dict[State, Step] = {
    State.LEASING: Step.LEASE,
    State.FENCING: Step.FENCE,
    State.MAPPING: Step.MAP,
    State.MOUNTING: Step.MOUNT,
    State.STARTING: Step.START,
    State.STOPPING: Step.STOP,
    State.UNMOUNTING: Step.UNMOUNT,
    State.UNMAPPING: Step.UNMAP,
}
"""The step that runs while the node is in a state (the other states run none)."""

STEP_RESULTS = frozenset({Event.STEP_DONE, Event.STEP_FAILED, Event.STEP_TIMEOUT})
OUTCOMES: dict[Step, frozenset[Event]] = {
    **{step: STEP_RESULTS for step in Step},
    # the lease step: a live holder, a holder that stopped renewing, a holder demoting cleanly
    Step.LEASE: STEP_RESULTS
    | {Event.LEASE_HELD_BY_PEER, Event.LEASE_STALE, Event.LEASE_HOLDER_DEMOTING},
    # the fence step: it fenced the stopped holder and took its lease
    Step.FENCE: STEP_RESULTS | {Event.LEASE_TAKEN},
}
"""The events each step may end with.  The driver posts an undeclared one (a bug) as
STEP_FAILED, and logs it."""

PROMOTING = frozenset({State.LEASING, State.FENCING, State.MAPPING, State.MOUNTING, State.STARTING})
DEMOTING = frozenset({State.STOPPING, State.UNMOUNTING, State.UNMAPPING})
RENEWS = frozenset(PROMOTING - {State.LEASING}) | {State.MASTER} | DEMOTING
"""The states whose node renews the lease it took (a demotion until its release, unless the
lease caused it: ``Node.lease_lost``)."""


class Probes(enum.StrEnum):
    """What the monitor checks in a state."""

    MASTER = "master"  # Harbor (debounced) and, in the rbd mode, the storage under it
    STANDBY = "standby"  # readiness to take over (Ceph, image, Docker, images)
    HARBOR = "harbor"  # Harbor's health on a standby that runs it (replicated BACKUP)
    NONE = "none"  # a step is running or the node is fenced: not ready, nothing to probe


PROBE_OF: dict[State, Probes] = {
    s: Probes.MASTER if s is State.MASTER else Probes.STANDBY if s is State.BACKUP else Probes.NONE
    for s in State
}
"""What the monitor checks in each state of the rbd mode."""

PROBES_BY_MODE: dict[Mode, dict[State, Probes]] = {
    Mode.RBD: PROBE_OF,
    # Both nodes run Harbor: the standby's health decides whether it may take the VIP.
    Mode.REPLICATED: {State.BACKUP: Probes.HARBOR, State.MASTER: Probes.MASTER},
    # Each node serves on its own: Harbor and the shared mount while SERVING, nothing else
    # (a draining node is already out of the pool; the steps check what they need).
    Mode.SHARED: {s: Probes.MASTER if s is State.SERVING else Probes.NONE for s in SHARED_STATES},
}


class Timer(enum.StrEnum):
    """The machine's timers.  Arming one that runs replaces it."""

    BACKOFF = "backoff"  # failed-promotion backoff and switchover hold (one timer, last wins)
    RETRY = "retry"  # FENCED_SELF's periodic retry of the demotion
    STABLE = "master_stable"  # MASTER held long enough to forget past failures
    RENEW = "lease_renew"  # the next renewal of the lease
    DEADLINE = "lease_deadline"  # self-demotion: the lease could be taken over soon
    POLL = "lease_poll"  # a refused standby's next look at the lease
    PROMISE = "failsafe_promise"  # this node promised not to promote until it fires
    ASK = "failsafe_ask"  # ask the peer before the deadline (failsafe configured)
    WATCH = "lease_watch"  # a standby's next look at the lease (its past looks speed LEASING)
    HANDOFF = "lease_handoff"  # how long LEASING waits for a demoting holder's release
    DRAIN = "drain"  # shared: the load balancer's detection time, then stop Harbor


TIMER_EVENT: dict[Timer, Event] = {
    Timer.BACKOFF: Event.BACKOFF_EXPIRED,
    Timer.RETRY: Event.RETRY,
    Timer.STABLE: Event.MASTER_STABLE,
    Timer.RENEW: Event.RENEW_DUE,
    Timer.DEADLINE: Event.LEASE_DEADLINE,
    Timer.POLL: Event.LEASE_POLL_DUE,
    Timer.PROMISE: Event.PROMISE_EXPIRED,
    Timer.ASK: Event.FAILSAFE_DUE,
    Timer.WATCH: Event.LEASE_WATCH_DUE,
    Timer.HANDOFF: Event.LEASE_HANDOFF_OVER,
    Timer.DRAIN: Event.DRAIN_OVER,
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
    RENEW_LEASE = "renew_lease"  # renew the lease; post LEASE_RENEWED / _LOST / _UNREACHABLE
    POLL_LEASE = "poll_lease"  # look at the lease; post LEASE_PEER_RENEWS / LEASE_CLAIM_BACK
    ASK_PEER = "ask_peer"  # failsafe request; post FAILSAFE_CONFIRMED / FAILSAFE_DENIED
    WATCH_LEASE = "watch_lease"  # look at the lease and remember the look; posts nothing


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

    mode: Mode = Mode.RBD  # which table decides (machine/modes.py)
    backoff_initial_s: float = 10.0
    backoff_max_s: float = 300.0
    switchover_hold_s: float = 15.0
    fenced_self_retry_s: float = 30.0
    master_stable_s: float = 60.0
    vip_mismatch_ticks: int = 2
    warm_standby: bool = True
    lease_duration_s: float = 5.0
    lease_renew_interval_s: float = 0.5
    lease_margin_s: float = 1.5
    lease_watch_s: float = (
        0.75  # a standby's look at the lease while BACKUP (Settings.lease_watch_s)
    )
    failsafe: bool = False  # a shared secret and the peer's address are configured
    failsafe_window_s: float = 15.0  # how long a peer's promise not to promote lasts
    failsafe_request_timeout_s: float = 1.5
    demotion_bound_s: float = 120.0  # stop + unmount + unmap timeouts (the same on both nodes)
    drain_wait_s: float = 10.0  # shared: readiness 503 this long before Harbor stops

    @property
    def lease_deadline_s(self) -> float:
        """From a LEASE_RENEWED to the self-demotion: duration - margin - one interval.

        The event arrives after the renewal was sent; a renewal is reported only when its
        answer came within one interval (the lease adapter), so the deadline counted from
        the event is at most one interval later than from the sending."""
        return self.lease_duration_s - self.lease_margin_s - self.lease_renew_interval_s

    @property
    def failsafe_ask_s(self) -> float:
        """From a LEASE_RENEWED to the failsafe request: its answer can still come before
        the deadline."""
        return max(self.lease_deadline_s - self.failsafe_request_timeout_s, 0.0)

    @property
    def failsafe_reask_s(self) -> float:
        """From a FAILSAFE_CONFIRMED to the next request (before that promise's end)."""
        return max(self.failsafe_deadline_s - self.failsafe_request_timeout_s, 0.0)

    @property
    def failsafe_deadline_s(self) -> float:
        """From a FAILSAFE_CONFIRMED to the self-demotion: the peer's promise runs from its
        receipt of the request, at most one request timeout before the answer arrived here;
        minus the margin, as for the lease."""
        return self.failsafe_window_s - self.lease_margin_s - self.failsafe_request_timeout_s

    @property
    def lease_handoff_s(self) -> float:
        """How long LEASING waits for a cleanly demoting holder to release the lease: its
        demotion ends, or FENCED_SELF stops its renewals, within ``demotion_bound_s``; its
        last renewal then lapses within one duration (the lease step sees it stopped
        renewing well before)."""
        return self.demotion_bound_s + self.lease_duration_s

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
    promised: bool = False  # failsafe: this node promised the peer not to promote (for now)
    failsafe_held: bool = False  # MASTER: the peer confirmed it cannot reach Ceph either
    lease_lost: bool = False  # LEASE_LOST: the peer holds it; the running demotion stops renewing
    awaiting_release: bool = False  # LEASING waits for a demoting holder (HANDOFF armed)
    keepalived_gone: bool = False  # KA_GONE until a keepalived line or KA_RETURNED
    harbor_down: bool = False  # replicated: this node's Harbor not (yet) seen healthy
    policy: Policy = field(default_factory=Policy)

    @property
    def may_promote(self) -> bool:
        return (
            self.want_master
            and not self.fault
            and not self.maintenance
            and not self.exiting
            and not self.handover
            and not self.promised
            and not self.harbor_down
        )

    @property
    def holds_lease(self) -> bool:
        """The machine's own view of the lease: past the lease step and renewing (not lost,
        not FENCED_SELF, not BACKUP).  What /status and the held metric say, with a renewal
        younger than the lease's duration on the monotonic clock."""
        return self.state in RENEWS and not self.lease_lost

    @property
    def fault_file_on(self) -> bool:
        """The weight-0 track file's value: keepalived must not give (or leave) us the VIP.

        During a planned hand-over (switchover, maintenance, demote-on-exit) the node keeps
        the VIP until it has stopped Harbor, unmounted and unmapped: raising the fault first
        would let the peer fence us in the middle of a clean shutdown (Harbor's database
        would get I/O errors while it checkpoints)."""
        if self.handover and self.state is not State.FENCED_SELF:
            return False
        return self.fault or self.maintenance or self.harbor_down or self.state is State.FENCED_SELF

    @property
    def step(self) -> Step | None:
        return STEP_OF.get(self.state)

    @property
    def probes(self) -> Probes:
        return PROBES_BY_MODE[self.policy.mode][self.state]

    @property
    def serving(self) -> bool:
        """Harbor runs here on the verified mount (what /primary and /serving answer, with
        Harbor healthy): the MASTER of the rbd and replicated modes, a SERVING shared node."""
        return self.state is State.MASTER or self.state is State.SERVING


class IllegalTransition(Exception):
    """An event that makes no sense in a state (e.g. STEP_DONE with no step running)."""

    def __init__(self, state: State, event: Event, why: str = "") -> None:
        super().__init__(f"event {event} is illegal in state {state}" + (f": {why}" if why else ""))
        self.state = state
        self.event = event


Result = tuple[Node, tuple[Action, ...]]
