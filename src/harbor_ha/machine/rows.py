"""The language of the table: rows, their guards, their field changes and their actions.

A row says: when its guard holds, set these fields, do these actions, go to this state.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from .states import RBD_STATES, Event, Node, State


class Do(enum.StrEnum):
    """The actions a row asks for (turned into :class:`Action` by ``table.ACTION_OF``)."""

    RUN_STEP = "run_step"  # the step of the state entered (STEP_OF)
    CANCEL = "cancel_step"
    BACKOFF = "backoff"  # arm Timer.BACKOFF for policy.backoff_s(failures)
    HOLD = "hold"  # arm Timer.BACKOFF for policy.switchover_hold_s
    ARM_RETRY = "arm_retry"  # arm Timer.RETRY for policy.fenced_self_retry_s
    CANCEL_RETRY = "cancel_retry"
    ARM_STABLE = "arm_stable"  # arm Timer.STABLE for policy.master_stable_s
    WARM = "warm"  # start the stateless services (Kind.WARM)
    RENEW = "renew"  # renew the lease (Kind.RENEW_LEASE)
    ARM_RENEW = "arm_renew"  # arm Timer.RENEW for policy.lease_renew_interval_s
    ARM_DEADLINE = "arm_deadline"  # arm Timer.DEADLINE for policy.lease_deadline_s
    CANCEL_BACKOFF = "cancel_backoff"  # a pending backoff must not clear the fault
    ARM_POLL = "arm_poll"  # arm Timer.POLL for policy.lease_renew_interval_s
    POLL = "poll_lease"  # look at the lease (Kind.POLL_LEASE)
    ASK_PEER = "ask_peer"  # failsafe: ask the peer (Kind.ASK_PEER)
    ARM_WATCH = "arm_watch"  # arm Timer.WATCH for policy.lease_watch_s
    WATCH = "watch_lease"  # look at the lease, remember the look (Kind.WATCH_LEASE)
    ARM_HANDOFF = "arm_handoff"  # arm Timer.HANDOFF for policy.lease_handoff_s
    ARM_FAILSAFE = "arm_failsafe"  # arm Timer.DEADLINE for policy.failsafe_deadline_s
    ARM_PROMISE = "arm_promise"  # arm Timer.PROMISE for policy.failsafe_window_s
    ARM_ASK = "arm_ask"  # arm Timer.ASK for policy.failsafe_ask_s
    REARM_ASK = "rearm_ask"  # arm Timer.ASK for policy.failsafe_reask_s
    ARM_DRAIN = "arm_drain"  # shared: arm Timer.DRAIN for policy.drain_wait_s
    POST_VERDICT = "post_verdict"  # the VIP mismatch lasted: post VIP_VERDICT[event]
    EXIT = "exit"


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

    def __and__(self, other: Guard) -> Guard:
        return Guard(f"{self} and {other}", lambda n: self(n) and other(n))


EXITING = Guard("exiting", lambda n: n.exiting)
NOT_EXITING = Guard("not exiting", lambda n: not n.exiting)
MAY_PROMOTE = Guard("may_promote", lambda n: n.may_promote)
DEMOTE_ON_EXIT = Guard("demote_on_exit", lambda n: n.demote_on_exit)
WANTED = Guard("want_master", lambda n: n.want_master)
UNWANTED = Guard("not want_master", lambda n: not n.want_master)
KEEPALIVED_HERE = Guard("keepalived here", lambda n: not n.keepalived_gone)
HANDOVER = Guard("handover", lambda n: n.handover)
FAULT = Guard("fault", lambda n: n.fault)
ROLLING_BACK = Guard("rollback", lambda n: n.rollback)
WARM_STANDBY = Guard(
    "warm_standby and not maintenance and not exiting",
    lambda n: n.policy.warm_standby and not n.maintenance and not n.exiting,
)
"""A ready standby keeps Harbor's stateless services running (settings.warm_standby)."""
HAS_FAILURES = Guard("failures > 0", lambda n: n.failures > 0)
FAILSAFE = Guard("failsafe configured", lambda n: n.policy.failsafe)
FAILSAFE_HELD = Guard("failsafe_held", lambda n: n.failsafe_held)
"""The peer's failsafe promise holds (no renewal since): nobody can take the image over."""
PROMISE_ONLY = Guard(
    "may_promote but for the promise",
    lambda n: n.promised and replace(n, promised=False).may_promote,
)
MISMATCH_DUE = Guard(
    "vip_mismatch_ticks reached", lambda n: n.vip_mismatch + 1 >= n.policy.vip_mismatch_ticks
)
"""This tick makes vip_mismatch_ticks consecutive mismatching ticks."""


def changes(**kw: object) -> Mapping[str, object]:
    return MappingProxyType(kw)


@dataclass(frozen=True)
class Row:
    to: State | None = None  # None: stay
    set: Mapping[str, object] = field(default_factory=lambda: changes())
    do: tuple[Do, ...] = ()
    when: Guard | None = None

    def __str__(self) -> str:
        parts = [f"when {self.when}"] if self.when is not None else []
        parts += [", ".join(f"{k}={v!r}" for k, v in self.set.items())] if self.set else []
        parts += [", ".join(self.do)] if self.do else []
        parts += [f"-> {self.to}"] if self.to is not None else []
        return "; ".join(parts) or "(nothing)"


STAY = Row()

Rows = tuple[Row, ...]


def but(*states: State) -> tuple[State, ...]:
    """Every state of the rbd mode except ``states`` (in State's order)."""
    return tuple(s for s in RBD_STATES if s not in states)


class Decisions:
    """A mode's table being written: each (state, event) pair gets one decision, written
    once: its rows (a deliberate stay included) or a declared illegal pair with its reason.
    Deciding a pair twice is an error (no default that a later row silently replaces)."""

    def __init__(self) -> None:
        self.table: dict[tuple[State, Event], Rows] = {}
        self.illegal_pairs: dict[tuple[State, Event], str] = {}

    def _free(self, state: State, event: Event) -> None:
        if (state, event) in self.table or (state, event) in self.illegal_pairs:
            raise ValueError(f"({state}, {event}) decided twice")

    def rows(self, states: Iterable[State], event: Event, *rows: Row) -> None:
        """In each of ``states``, ``event`` applies the first of ``rows`` whose guard holds."""
        self.each(states, event, lambda _: rows)

    def each(self, states: Iterable[State], event: Event, rows: Callable[[State], Rows]) -> None:
        """As ``rows``, the rows computed from the state."""
        for s in states:
            self._free(s, event)
            self.table[(s, event)] = rows(s)

    def illegal(self, states: Iterable[State], event: Event, why: str) -> None:
        """``event`` is illegal in each of ``states`` (IllegalTransition), for ``why``."""
        for s in states:
            self._free(s, event)
            self.illegal_pairs[(s, event)] = why
