"""The lease's rows of the table (docs/design.md, "The lease"), and their actions.

- The lease step takes a free lease (STEP_DONE: renew every interval, arm the deadline).
- It finds a holder whose expiry does not move (LEASE_STALE): FENCING fences that holder's
  lease client with the image's watchers, then breaks its lock and takes it (LEASE_TAKEN).
- It finds a live holder (LEASE_HELD_BY_PEER): never fence it.  Back to BACKUP keeping the
  fault (keepalived gives the VIP up), and poll the lease every interval: the holder renews
  (LEASE_PEER_RENEWS) -> keep waiting; it stopped, the lease is free, or the partition healed
  (LEASE_CLAIM_BACK) -> clear the fault.
- It finds a live holder that is demoting cleanly (LEASE_HOLDER_DEMOTING: its /status says
  STOPPING, UNMOUNTING or UNMAPPING): stay in LEASING and run the step again, bounded by the
  HANDOFF timer (``lease_handoff_s``); the holder's release lets the next step take the lease
  without a fence.  The bound over (LEASE_HANDOFF_OVER): back to BACKUP as for a live holder.
- A standby watches the lease while BACKUP (the WATCH timer, every interval): the lease step
  then judges a holder that stopped renewing from looks already in the past.
- A master whose renewal finds the peer holding it (LEASE_LOST), or whose deadline passes
  without a renewal (LEASE_DEADLINE), stops serving as for a lost image.  After LEASE_LOST
  its demotion no longer renews (``lease_lost``); after the deadline, as any other
  demotion, it keeps renewing until the unmap step releases the lease, so the peer never
  judges a demoting node stopped and fences it before its stop and unmount flushed; a stuck
  demotion ends in FENCED_SELF, which does not renew.
- Failsafe (configured): no renewal for ``failsafe_ask_s`` (the ASK timer, re-armed by each
  renewal) asks the peer, early enough for its answer to come before the deadline; its
  promise (FAILSAFE_CONFIRMED) moves the deadline to the end of the promise minus the
  margins, and asks again before that (``failsafe_held`` until the next renewal: a storage
  probe without an answer, STORAGE_STUCK, then does not demote).  The peer's promise is its
  machine's decision (FAILSAFE_PROMISED): granted only in BACKUP, refused in any other state
  (a promotion in flight included); a node that promised does not promote until the PROMISE
  timer fires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .rows import (
    FAILSAFE,
    FAULT,
    PROMISE_ONLY,
    STAY,
    Decisions,
    Do,
    Guard,
    Row,
    Rows,
    but,
    changes,
)
from .states import DEMOTING, PROMOTING, RBD_STATES, Action, Event, Kind, Node, State, Timer

if TYPE_CHECKING:
    from collections.abc import Callable

S = State
E = Event

ROUTINE_EVENTS = frozenset(
    {E.RENEW_DUE, E.LEASE_RENEWED, E.LEASE_POLL_DUE, E.LEASE_PEER_RENEWS, E.LEASE_WATCH_DUE}
)
"""Events that repeat every renewal interval while nothing changes.  Their decisions are
logged at debug (at info they would be four lines a second on the master); a renewal that
fails, a refused standby's first refusal and every transition stay at info."""

ROUTINE_KINDS = frozenset({Kind.WATCH_LEASE})
"""Background I/Os armed every ``lease_watch_s`` (0.1 s with the lab's adverts): one still
running when the next is due (a look waiting on a frozen Ceph, up to its request timeout) is
logged at debug, not as a warning ten times a second."""


RENEWING = Guard("not lease_lost", lambda n: not n.lease_lost)
"""A demotion not caused by the lease: it keeps renewing until the release."""
MAINTENANCE = Guard("maintenance", lambda n: n.maintenance)
AWAITING = Guard("awaiting_release", lambda n: n.awaiting_release)
LOST = changes(lease_lost=True)
NOT_RENEWING = (S.BACKUP, S.LEASING, S.FENCED_SELF)
"""The states whose node does not renew a lease (RENEWS: the others)."""

WATCH_ON_ENTRY: Rows = (Row(do=(Do.ARM_WATCH,)),)
"""Entering BACKUP (and reconciling into it): start watching the lease."""
LEASING_ON_ENTRY: Rows = (Row(set=changes(awaiting_release=False), do=(Do.RUN_STEP,)),)
"""Entering LEASING: run the lease step.  A HANDOFF timer left from an earlier attempt finds
``awaiting_release`` false (STAY), and the first LEASE_HOLDER_DEMOTING re-arms it."""
BACKUP_ON_ARRIVAL = changes(lease_lost=False)
"""Back in BACKUP: the next demotion renews again."""


def add_lease_rows(
    table: Decisions,
    leased: Iterable[State],
    rollback: Mapping[State, State],
    failed: Mapping[str, object],
) -> None:
    """Decide the lease's (state, event) pairs in ``table``, each once."""
    rows = table.rows
    leased = tuple(leased)
    fresh = changes(failsafe_held=False)  # a new lease (or a renewal): no promise needed

    # The lease step's outcomes (LEASING) and the fence step's (FENCING); illegal elsewhere.
    rows([S.LEASING], E.STEP_DONE, Row(S.FENCING, fresh, (Do.ARM_RENEW, Do.ARM_DEADLINE)))
    rows([S.LEASING], E.LEASE_STALE, Row(S.FENCING))
    rows([S.FENCING], E.LEASE_TAKEN, Row(S.MAPPING, fresh, (Do.ARM_RENEW, Do.ARM_DEADLINE)))
    rows(
        [S.LEASING],
        E.LEASE_HELD_BY_PEER,
        Row(S.BACKUP, changes(fault=True, rollback=True), (Do.CANCEL_BACKOFF, Do.ARM_POLL)),
    )
    rows(
        [S.LEASING],
        E.LEASE_HOLDER_DEMOTING,
        Row(do=(Do.RUN_STEP,), when=AWAITING),
        Row(set=changes(awaiting_release=True), do=(Do.RUN_STEP, Do.ARM_HANDOFF)),
    )
    for ev in (E.LEASE_STALE, E.LEASE_HELD_BY_PEER, E.LEASE_HOLDER_DEMOTING):
        table.illegal(but(S.LEASING), ev, "only the lease step (LEASING) reports it")
    table.illegal(but(S.FENCING), E.LEASE_TAKEN, "only the fence step (FENCING) reports it")

    rows(
        [S.LEASING],
        E.LEASE_HANDOFF_OVER,
        Row(
            S.BACKUP,
            changes(fault=True, rollback=True, awaiting_release=False),
            (Do.CANCEL, Do.CANCEL_BACKOFF, Do.ARM_POLL),
            when=AWAITING,
        ),
        STAY,
    )
    # A HANDOFF timer left from a LEASING the node has left: the wait is over anyway.
    rows(but(S.LEASING), E.LEASE_HANDOFF_OVER, STAY)

    # A refused standby's poll (BACKUP with the fault up) and a standby's watch: BACKUP only.
    rows([S.BACKUP], E.LEASE_POLL_DUE, Row(do=(Do.POLL,), when=FAULT), STAY)
    rows([S.BACKUP], E.LEASE_PEER_RENEWS, Row(do=(Do.ARM_POLL,), when=FAULT), STAY)
    rows([S.BACKUP], E.LEASE_CLAIM_BACK, Row(set=changes(fault=False), when=FAULT), STAY)
    rows(
        [S.BACKUP],
        E.LEASE_WATCH_DUE,
        Row(do=(Do.ARM_WATCH,), when=MAINTENANCE),
        Row(do=(Do.WATCH, Do.ARM_WATCH)),
    )
    # Their timers and answers outside BACKUP: late (the node went on to promote, or is
    # fenced); the next arrival in BACKUP starts the watch again.
    for ev in (E.LEASE_POLL_DUE, E.LEASE_PEER_RENEWS, E.LEASE_CLAIM_BACK, E.LEASE_WATCH_DUE):
        rows(but(S.BACKUP), ev, STAY)

    rows(leased, E.RENEW_DUE, Row(do=(Do.RENEW, Do.ARM_RENEW)))
    rows(DEMOTING, E.RENEW_DUE, Row(do=(Do.RENEW, Do.ARM_RENEW), when=RENEWING), STAY)
    rows(DEMOTING, E.LEASE_LOST, Row(set=LOST))
    rows(
        leased,
        E.LEASE_RENEWED,
        Row(set=fresh, do=(Do.ARM_DEADLINE, Do.ARM_ASK), when=FAILSAFE),
        Row(set=fresh, do=(Do.ARM_DEADLINE,)),
    )
    # A node that does not renew (BACKUP, LEASING, FENCED_SELF): a late renewal's timer or
    # answer.  A demotion renews, but its deadline no longer matters (it is stopping).
    for ev in (E.RENEW_DUE, E.LEASE_LOST, E.LEASE_RENEWED):
        rows(NOT_RENEWING, ev, STAY)
    rows(DEMOTING, E.LEASE_RENEWED, STAY)
    # A failed renewal (no timely answer): the deadline decides, not one answer.
    rows(RBD_STATES, E.LEASE_UNREACHABLE, STAY)

    rows([S.MASTER], E.FAILSAFE_DUE, Row(do=(Do.ASK_PEER,), when=FAILSAFE), STAY)
    rows(
        [S.MASTER],
        E.FAILSAFE_CONFIRMED,
        Row(set=changes(failsafe_held=True), do=(Do.ARM_FAILSAFE, Do.REARM_ASK)),
    )
    # Only a MASTER asks the peer: the timer or answer of a MASTER that has since left.
    rows(but(S.MASTER), E.FAILSAFE_DUE, STAY)
    rows(but(S.MASTER), E.FAILSAFE_CONFIRMED, STAY)
    # No confirmation from the peer: the deadline decides.
    rows(RBD_STATES, E.FAILSAFE_DENIED, STAY)

    # LEASE_LOST: the peer holds the lease, the demotion cannot renew it.  LEASE_DEADLINE:
    # nobody else holds it yet; the demotion goes on renewing until its release, so once
    # Ceph answers again the peer sees a live, demoting holder and waits for the release
    # instead of fencing it in the middle of its stop (up to stop_timeout_s); while Ceph
    # does not answer, the renewals fail, the peer fences, and the stop could not have
    # flushed anything to Ceph anyway.
    for ev, change in ((E.LEASE_LOST, changes(**failed, **LOST)), (E.LEASE_DEADLINE, failed)):
        rows([S.MASTER], ev, Row(S.STOPPING, change, (Do.BACKOFF,)))
        for s in sorted(PROMOTING - {S.LEASING}):
            rows([s], ev, Row(rollback[s], change, (Do.CANCEL, Do.BACKOFF)))
    # The deadline where nothing is served: not leased (BACKUP, LEASING, FENCED_SELF), or
    # stopping already.
    rows((*NOT_RENEWING, *sorted(DEMOTING)), E.LEASE_DEADLINE, STAY)

    # The promise is granted only where nothing promotes (BACKUP: a promised BACKUP does not
    # promote until PROMISE fires); anywhere else, a promotion in flight included, refused.
    rows([S.BACKUP], E.FAILSAFE_PROMISED, Row(set=changes(promised=True), do=(Do.ARM_PROMISE,)))
    rows(but(S.BACKUP), E.FAILSAFE_PROMISED, STAY)
    rows(
        [S.BACKUP],
        E.PROMISE_EXPIRED,
        Row(S.LEASING, changes(promised=False), when=PROMISE_ONLY),
        Row(set=changes(promised=False)),
    )
    # A promise's end elsewhere (it was given in BACKUP, which the node has left): forget it.
    rows(but(S.BACKUP), E.PROMISE_EXPIRED, Row(set=changes(promised=False)))


def promise_refusal(node: Node) -> str | None:
    """Why this node may not promise the failsafe now; None: it may.  Only a BACKUP promises
    not to promote (a node in a promotion already acts on its own claim; a master answers for
    itself).  The promise itself is the FAILSAFE_PROMISED row above."""
    if node.state is not S.BACKUP:
        return f"this node is {node.state}"
    return None


def _timer(timer: Timer, delay_s: float, reason: str) -> Action:
    return Action(Kind.START_TIMER, timer=timer, delay_s=float(delay_s), reason=reason)


LEASE_ACTIONS: dict[Do, Callable[[Node, Node, Event | None], Action]] = {
    Do.RENEW: lambda before, after, event: Action(Kind.RENEW_LEASE, reason="renew the lease"),
    Do.ARM_RENEW: lambda before, after, event: _timer(
        Timer.RENEW, after.policy.lease_renew_interval_s, "renew the lease"
    ),
    Do.ARM_DEADLINE: lambda before, after, event: _timer(
        Timer.DEADLINE, after.policy.lease_deadline_s, "no lease renewal: stop serving"
    ),
    Do.CANCEL_BACKOFF: lambda before, after, event: Action(Kind.CANCEL_TIMER, timer=Timer.BACKOFF),
    Do.ARM_POLL: lambda before, after, event: _timer(
        Timer.POLL, after.policy.lease_renew_interval_s, "look at the live holder's lease again"
    ),
    Do.POLL: lambda before, after, event: Action(Kind.POLL_LEASE, reason="is the holder alive?"),
    Do.ASK_PEER: lambda before, after, event: Action(Kind.ASK_PEER, reason="failsafe request"),
    Do.ARM_WATCH: lambda before, after, event: _timer(
        Timer.WATCH, after.policy.lease_watch_s, "look at the lease (standby)"
    ),
    Do.WATCH: lambda before, after, event: Action(Kind.WATCH_LEASE, reason="remember a look"),
    Do.ARM_HANDOFF: lambda before, after, event: _timer(
        Timer.HANDOFF, after.policy.lease_handoff_s, "the demoting holder's bound is over"
    ),
    Do.ARM_FAILSAFE: lambda before, after, event: _timer(
        Timer.DEADLINE, after.policy.failsafe_deadline_s, "the peer's failsafe promise ends"
    ),
    Do.ARM_ASK: lambda before, after, event: _timer(
        Timer.ASK, after.policy.failsafe_ask_s, "no renewal: ask the peer (failsafe)"
    ),
    Do.REARM_ASK: lambda before, after, event: _timer(
        Timer.ASK, after.policy.failsafe_reask_s, "ask the peer again before its promise ends"
    ),
    Do.ARM_PROMISE: lambda before, after, event: _timer(
        Timer.PROMISE, after.policy.failsafe_window_s, "failsafe promise over"
    ),
}
"""What each of the lease's row actions is (delays from the node's policy)."""
