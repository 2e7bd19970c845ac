"""The pure state machine: every (state, event) pair, the flags, the timers it arms, the VIP
mismatch count, and random event sequences.  The spec's tables are written out here, apart
from the machine's, and the machine's are checked against them."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harbor_ha import machine
from harbor_ha.daemon.build import policy_of
from harbor_ha.machine import (
    DEMOTING,
    PROBE_OF,
    PROMOTING,
    STEP_OF,
    TABLE,
    Action,
    Clock,
    Event,
    Facts,
    IllegalTransition,
    Kind,
    Node,
    Policy,
    Probes,
    State,
    Step,
    Timer,
    failover_clock,
    from_facts,
    refusal,
    transition,
)
from harbor_ha.machine.states import RBD_EVENTS, RBD_STATES
from tests.fakes import example_settings

S = State
E = Event

ROLLBACK = {
    S.LEASING: S.BACKUP,
    S.FENCING: S.BACKUP,
    S.MAPPING: S.UNMAPPING,
    S.MOUNTING: S.UNMOUNTING,
    S.STARTING: S.STOPPING,
}
PROMOTION = [S.LEASING, S.FENCING, S.MAPPING, S.MOUNTING, S.STARTING, S.MASTER]
DEMOTION = [S.STOPPING, S.UNMOUNTING, S.UNMAPPING, S.BACKUP]
NEXT_ON_DONE = {**dict(pairwise(PROMOTION)), **dict(pairwise(DEMOTION))}
NEXT_ON_FAIL = {
    **ROLLBACK,
    S.STOPPING: S.UNMOUNTING,
    S.UNMOUNTING: S.FENCED_SELF,
    S.UNMAPPING: S.FENCED_SELF,
}
ILLEGAL = object()
POLICY = Policy()
WATCH = Action(
    Kind.START_TIMER, timer=Timer.WATCH, delay_s=POLICY.lease_watch_s,
    reason="look at the lease (standby)",
)  # fmt: skip
"""Entering BACKUP arms the standby's watch of the lease."""
HOLD = Action(
    Kind.START_TIMER, timer=Timer.BACKOFF, delay_s=POLICY.switchover_hold_s,
    reason="switchover hold over",
)  # fmt: skip


def backoff(failures: int) -> Action:
    """The backoff timer the machine arms after ``failures`` consecutive failures (spec)."""
    delay = min(POLICY.backoff_initial_s * 2 ** (failures - 1), POLICY.backoff_max_s)
    return Action(
        Kind.START_TIMER, timer=Timer.BACKOFF, delay_s=delay,
        reason=f"backoff after {failures} failure(s)",
    )  # fmt: skip


def assert_waits_for_the_timer_then_promotes(node: Node) -> None:
    """In BACKUP with the fault flag: a MASTER line does nothing until BACKOFF_EXPIRED, then it
    starts a promotion (with the lease step)."""
    node, acts = transition(node, E.KA_MASTER)
    assert node.state is S.BACKUP and acts == ()
    node, _ = transition(node, E.BACKOFF_EXPIRED)
    assert not node.fault_file_on
    node, acts = transition(node, E.KA_MASTER)
    assert node.state is S.LEASING and acts == (Action(Kind.RUN_STEP, Step.LEASE),)


def timers(acts: tuple[Action, ...]) -> list[Action]:
    return [a for a in acts if a.kind in (Kind.START_TIMER, Kind.CANCEL_TIMER)]


def test_machine_tables_are_the_spec() -> None:
    """The machine's next-state tables are the ones this file writes out."""
    assert machine.NEXT_ON_DONE == NEXT_ON_DONE
    assert machine.NEXT_ON_FAIL == NEXT_ON_FAIL
    assert machine.ROLLBACK == ROLLBACK


def test_every_row_list_ends_unguarded() -> None:
    """Each (state, event) entry and each entry group ends with a row without a guard, so a
    legal pair (and every entry) always has a row that applies."""
    groups = [*TABLE.values(), *(g for gs in machine.ENTER.values() for g in gs)]
    for rows in groups:
        assert rows and rows[-1].when is None


def expected(state: State, event: Event) -> State | object:
    """The target state for a canonical node in ``state`` (the spec, written out)."""
    same = state
    match event:
        case E.KA_MASTER:
            return S.LEASING if state is S.BACKUP else same
        case E.KA_BACKUP | E.KA_FAULT | E.KA_STOP | E.KA_GONE:
            if state is S.MASTER:
                return S.STOPPING
            return ROLLBACK.get(state, same)
        case E.STEP_DONE:
            return NEXT_ON_DONE.get(state, ILLEGAL)
        case E.STEP_FAILED | E.STEP_TIMEOUT:
            return NEXT_ON_FAIL.get(state, ILLEGAL)
        case E.HARBOR_UNHEALTHY:
            return S.STOPPING if state is S.MASTER else same
        case E.DATA_ON_STANDBY:
            return S.STOPPING if state is S.BACKUP else same
        case E.LEASE_HELD_BY_PEER:
            return S.BACKUP if state is S.LEASING else ILLEGAL
        case E.LEASE_HOLDER_DEMOTING:
            return S.LEASING if state is S.LEASING else ILLEGAL
        case E.LEASE_STALE:
            return S.FENCING if state is S.LEASING else ILLEGAL
        case E.LEASE_TAKEN:
            return S.MAPPING if state is S.FENCING else ILLEGAL
        case E.LEASE_LOST | E.LEASE_DEADLINE:
            if state is S.MASTER:
                return S.STOPPING
            return ROLLBACK.get(state, same) if state in LEASED else same
        case E.STORAGE_LOST | E.STORAGE_STUCK:
            return S.STOPPING if state in {S.MASTER, S.MAPPING, S.MOUNTING, S.STARTING} else same
        case E.RETRY:
            return S.STOPPING if state is S.FENCED_SELF else ILLEGAL
        case E.SWITCHOVER | E.MAINTENANCE_ON:
            if state is S.MASTER:
                return S.STOPPING
            return ROLLBACK.get(state, same)
        case E.VIP_SEEN | E.VIP_ABSENT:
            return same  # one tick only counts; the machine acts on the later one (POST)
        case _:
            return same


STEP_OUTCOMES = (E.LEASE_HELD_BY_PEER, E.LEASE_STALE, E.LEASE_TAKEN, E.LEASE_HOLDER_DEMOTING)
"""The events a step ends with instead of STEP_DONE (legal only in that step's state)."""

LEASED = {S.FENCING, S.MAPPING, S.MOUNTING, S.STARTING, S.MASTER}
"""The states that hold the lease (after the lease step): they renew it."""


def canonical(state: State) -> Node:
    """A node as the driver would have it in ``state``."""
    want = state in PROMOTING or state is S.MASTER
    return Node(state=state, want_master=want, fault=state is S.FENCED_SELF)


PAIRS = [(s, e) for s in RBD_STATES for e in RBD_EVENTS]


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s}-{e}" for s, e in PAIRS])
def test_every_pair(state: State, event: Event) -> None:
    """Each (state, event) pair goes where the spec says, or raises IllegalTransition naming both;
    a state with a step is entered together with exactly one RUN_STEP of that step (and the
    lease step runs again while its holder demotes)."""
    want = expected(state, event)
    if want is ILLEGAL:
        with pytest.raises(IllegalTransition) as info:
            transition(canonical(state), event)
        assert str(state) in str(info.value) and str(event) in str(info.value)
        return
    new, actions = transition(canonical(state), event)
    assert new.state is want
    runs = [a for a in actions if a.kind is Kind.RUN_STEP]
    if new.state is not state and new.state in STEP_OF:
        assert runs == [Action(Kind.RUN_STEP, STEP_OF[new.state])]
    elif event is E.LEASE_HOLDER_DEMOTING:
        assert runs == [Action(Kind.RUN_STEP, Step.LEASE)], "the lease step runs again"
    else:
        assert runs == []
    if (
        state in PROMOTING
        and new.state is not state
        and event not in (E.STEP_DONE, E.STEP_FAILED, E.STEP_TIMEOUT, *STEP_OUTCOMES)
    ):
        assert actions[0].kind is Kind.CANCEL_STEP, "leaving a promotion cancels its step first"


def test_promotion_happy_path_and_failover_flags() -> None:
    """MASTER line -> fence, map, mount, start -> MASTER; the failure count resets only when
    MASTER_STABLE says the node held MASTER."""
    node = Node(failures=2)
    steps = []
    node, acts = transition(node, E.KA_MASTER)
    while node.state is not S.MASTER:
        steps += [a.step for a in acts if a.kind is Kind.RUN_STEP]
        node, acts = transition(node, E.STEP_DONE)
    assert steps == [Step.LEASE, Step.FENCE, Step.MAP, Step.MOUNT, Step.START]
    assert node.failures == 2 and not node.fault_file_on
    node, _ = transition(node, E.MASTER_STABLE)
    assert node.failures == 0, "failures are forgotten once MASTER held"


@pytest.mark.parametrize("failing", sorted(PROMOTING))
def test_failed_promotion_rolls_back_with_fault_and_backoff(failing: State) -> None:
    """A failed promotion step undoes the earlier steps in reverse, raises the fault flag and arms
    the backoff; at BACKUP the node does not promote again though keepalived still says MASTER."""
    node = Node(state=failing, want_master=True)
    node, acts = transition(node, E.STEP_FAILED)
    assert backoff(1) in acts and node.fault and node.fault_file_on
    assert node.failures == 1
    undo = []
    while node.state is not S.BACKUP:
        undo += [a.step for a in acts if a.kind is Kind.RUN_STEP]
        node, acts = transition(node, E.STEP_DONE)
    order = {
        S.LEASING: [],
        S.FENCING: [],
        S.MAPPING: [Step.UNMAP],
        S.MOUNTING: [Step.UNMOUNT, Step.UNMAP],
        S.STARTING: [Step.STOP, Step.UNMOUNT, Step.UNMAP],
    }
    assert undo == order[failing]
    assert node.fault, "the rollback keeps the fault flag until the backoff expires"
    assert_waits_for_the_timer_then_promotes(node)


def test_backoff_expiring_during_rollback_clears_fault_at_the_end() -> None:
    """If the backoff ends while the rollback still runs, the rollback's end clears the flag."""
    node, _ = transition(Node(state=S.STARTING, want_master=True), E.STEP_FAILED)
    node, _ = transition(node, E.KA_FAULT)  # keepalived reacts to the fault file
    node, _ = transition(node, E.BACKOFF_EXPIRED)
    assert node.fault and node.state is S.STOPPING
    for _ in range(3):
        node, _ = transition(node, E.STEP_DONE)
    assert node.state is S.BACKUP and not node.fault


def test_partition_ping_pong_backs_off_longer() -> None:
    """Storage lost right after each promotion (a peer fencing us in a partition): failures keep
    counting up across the successful promotions, so the backoff doubles each round."""
    node = Node(want_master=True)
    for n in (1, 2, 3):
        node, _ = transition(node, E.KA_MASTER)
        for _ in range(5):
            node, _ = transition(node, E.STEP_DONE)
        assert node.state is S.MASTER
        node, acts = transition(node, E.STORAGE_LOST)
        assert backoff(n) in acts and node.failures == n
        assert backoff(n).delay_s == POLICY.backoff_initial_s * 2 ** (n - 1), "doubles"
        for _ in range(3):
            node, _ = transition(node, E.STEP_DONE)
        node, _ = transition(node, E.BACKOFF_EXPIRED)


def test_failures_count_up_across_attempts() -> None:
    """Consecutive failed promotions count up (the driver doubles the backoff with it)."""
    node = Node(want_master=True)
    for n in (1, 2, 3):
        node, _ = transition(node, E.KA_MASTER)
        node, _ = transition(node, E.STEP_FAILED)  # the lease step failed: back to BACKUP
        assert node.state is S.BACKUP and node.failures == n
        node, _ = transition(node, E.BACKOFF_EXPIRED)


@pytest.mark.parametrize("state", [S.UNMOUNTING, S.UNMAPPING])
def test_demotion_that_cannot_finish_fences_self(state: State) -> None:
    """umount/unmap impossible -> FENCED_SELF with the fault file on; backoff does not clear it;
    a RETRY re-runs the whole demotion and only its clean end clears the fault."""
    node, _ = transition(Node(state=state), E.STEP_TIMEOUT)
    assert node.state is S.FENCED_SELF and node.fault_file_on
    node, _ = transition(node, E.BACKOFF_EXPIRED)
    node, _ = transition(node, E.MAINTENANCE_OFF)
    node, _ = transition(node, E.KA_MASTER)
    assert node.state is S.FENCED_SELF and node.fault_file_on
    node, acts = transition(node, E.RETRY)
    assert node.state is S.STOPPING
    assert acts == (Action(Kind.CANCEL_TIMER, timer=Timer.RETRY), Action(Kind.RUN_STEP, Step.STOP))
    for _ in range(3):
        node, acts = transition(node, E.STEP_DONE)
    assert not node.fault, "a successful retry clears FENCED_SELF's fault"
    assert node.state is S.LEASING, "and keepalived's last word (MASTER) is followed"


def test_stop_failure_still_unmounts() -> None:
    """Compose failing to stop Harbor does not stop the demotion: unmount kills its users."""
    node, acts = transition(Node(state=S.STOPPING), E.STEP_FAILED)
    assert node.state is S.UNMOUNTING and acts == (Action(Kind.RUN_STEP, Step.UNMOUNT),)


def test_master_line_during_demotion_repromotes_after_it() -> None:
    """Flapping: MASTER while demoting is remembered; the demotion finishes, then a fresh promotion
    starts with the lease step (never a second mount on top of the first)."""
    node, _ = transition(Node(state=S.MASTER, want_master=True), E.KA_BACKUP)
    node, acts = transition(node, E.KA_MASTER)
    assert node.state is S.STOPPING and acts == ()
    node, _ = transition(node, E.STEP_DONE)
    node, _ = transition(node, E.STEP_DONE)
    node, acts = transition(node, E.STEP_DONE)
    assert node.state is S.LEASING and acts == (WATCH, Action(Kind.RUN_STEP, Step.LEASE))


def test_unhealthy_master_gives_vip_away() -> None:
    """Harbor unhealthy while MASTER: fault file on at once (keepalived FAULT), demote, backoff."""
    node, acts = transition(Node(state=S.MASTER, want_master=True), E.HARBOR_UNHEALTHY)
    assert node.state is S.STOPPING and node.fault_file_on
    assert backoff(1) in acts


def test_storage_lost_during_promotion_cancels_and_demotes() -> None:
    """Blocklisted while mounting: cancel the step and run the full demotion before any new map."""
    node, acts = transition(Node(state=S.MOUNTING, want_master=True), E.STORAGE_LOST)
    assert acts[0] == Action(Kind.CANCEL_STEP)
    assert node.state is S.STOPPING and node.fault


def test_switchover_hands_over_only_when_clean() -> None:
    """Switchover on MASTER: demote while keeping the VIP (fault file still clear, so the peer
    cannot fence us mid-shutdown and keepalived's MASTER does not re-promote us); once
    unmapped, the fault file goes on (the peer takes the VIP) and the hold timer starts; when
    it fires the node is electable again."""
    node, acts = transition(Node(state=S.MASTER, want_master=True), E.SWITCHOVER)
    assert node.state is S.STOPPING and not node.fault_file_on
    assert HOLD not in acts
    node, acts = transition(node, E.KA_MASTER)  # keepalived still says MASTER: no effect
    assert acts == ()
    for _ in range(2):
        node, _ = transition(node, E.STEP_DONE)
        assert not node.fault_file_on
    node, acts = transition(node, E.STEP_DONE)
    assert node.state is S.BACKUP and node.fault_file_on
    assert acts == (HOLD, WATCH), "no re-promotion, hold armed at hand-over"
    node, _ = transition(node, E.KA_FAULT)
    node, _ = transition(node, E.BACKOFF_EXPIRED)
    assert not node.fault_file_on


def test_switchover_demotion_failing_raises_fault_at_once() -> None:
    """If the hand-over's demotion cannot finish, FENCED_SELF raises the fault file at once."""
    node, _ = transition(Node(state=S.MASTER, want_master=True), E.SWITCHOVER)
    node, _ = transition(node, E.STEP_DONE)
    node, _ = transition(node, E.STEP_FAILED)
    assert node.state is S.FENCED_SELF and node.fault_file_on


def test_switchover_on_backup_does_nothing() -> None:
    """Switchover asked of a node that is not MASTER changes nothing."""
    assert transition(Node(), E.SWITCHOVER) == (Node(), ())


def test_maintenance_keeps_fault_until_off() -> None:
    """Maintenance on: demote (keeping the VIP until clean), then keep the fault file on through
    backoffs and MASTER lines; off clears it."""
    node, _ = transition(Node(state=S.MASTER, want_master=True), E.MAINTENANCE_ON)
    assert not node.fault_file_on, "hand-over only when clean"
    for _ in range(3):
        node, _ = transition(node, E.STEP_DONE)
    assert node.state is S.BACKUP and node.fault_file_on
    node, _ = transition(node, E.BACKOFF_EXPIRED)
    node, _ = transition(node, E.KA_MASTER)
    assert node.state is S.BACKUP and node.fault_file_on
    node, _ = transition(node, E.MAINTENANCE_OFF)
    assert not node.fault_file_on


def test_maintenance_on_a_backup_raises_fault_at_once() -> None:
    """Maintenance on a BACKUP holds nothing to hand over: the fault file goes on at once."""
    node, _ = transition(Node(), E.MAINTENANCE_ON)
    assert node.fault_file_on


def test_shutdown_without_demotion_leaves_harbor_running() -> None:
    """SIGTERM on MASTER (default): exit at once, Harbor stays up (a restart is hitless)."""
    node, acts = transition(Node(state=S.MASTER, want_master=True), E.SHUTDOWN)
    assert node.state is S.MASTER and acts == (Action(Kind.EXIT),)


def test_shutdown_during_promotion_cancels_and_exits() -> None:
    """SIGTERM while promoting: cancel the step and exit; the restart reconciles from facts."""
    _, acts = transition(Node(state=S.MAPPING, want_master=True), E.SHUTDOWN)
    assert acts == (Action(Kind.CANCEL_STEP), Action(Kind.EXIT))


def test_shutdown_with_demotion_demotes_then_exits() -> None:
    """stop_harbor_on_exit: SIGTERM on MASTER demotes first (keeping the VIP until clean), then
    raises the fault file and exits at BACKUP, even if keepalived still wants us."""
    node, acts = transition(Node(state=S.MASTER, want_master=True, demote_on_exit=True), E.SHUTDOWN)
    assert node.state is S.STOPPING and not node.fault_file_on
    for _ in range(2):
        node, acts = transition(node, E.STEP_DONE)
    node, acts = transition(node, E.STEP_DONE)
    assert node.state is S.BACKUP and acts == (WATCH, Action(Kind.EXIT)) and node.fault_file_on


def test_shutdown_during_demotion_finishes_it() -> None:
    """SIGTERM while unmounting: no action now; the demotion finishes and then the daemon exits."""
    node, acts = transition(Node(state=S.UNMOUNTING), E.SHUTDOWN)
    assert acts == ()
    node, _ = transition(node, E.STEP_DONE)
    node, acts = transition(node, E.STEP_DONE)
    assert acts == (WATCH, Action(Kind.EXIT))


def test_exit_even_when_demotion_fails() -> None:
    """A demotion that fails during shutdown ends FENCED_SELF and still lets the daemon exit."""
    node, acts = transition(Node(state=S.UNMAPPING, exiting=True), E.STEP_FAILED)
    assert node.state is S.FENCED_SELF and Action(Kind.EXIT) in acts


# ------------------------------------------------------------------ reconcile
FACT_CASES = [
    (Facts(vip=False, mapped=False, mounted=False, harbor_running=False), S.BACKUP),
    (Facts(vip=True, mapped=False, mounted=False, harbor_running=False), S.LEASING),
    (Facts(vip=True, mapped=True, mounted=False, harbor_running=False), S.MOUNTING),
    (Facts(vip=True, mapped=True, mounted=True, harbor_running=False), S.STARTING),
    (Facts(vip=True, mapped=True, mounted=True, harbor_running=True), S.MASTER),
    (Facts(vip=False, mapped=True, mounted=True, harbor_running=True), S.STOPPING),
    (Facts(vip=False, mapped=True, mounted=False, harbor_running=False), S.STOPPING),
    (Facts(vip=True, mapped=False, mounted=False, harbor_running=True), S.STOPPING),
    (Facts(vip=True, mapped=True, mounted=False, harbor_running=True), S.STOPPING),
    (
        Facts(vip=True, mapped=False, mounted=False, harbor_running=False, mount_foreign=True),
        S.STOPPING,
    ),
]


@pytest.mark.parametrize(("facts", "state"), FACT_CASES)
def test_state_derived_from_facts(facts: Facts, state: State) -> None:
    """On start the state comes from facts: adopt a running master, resume a partial promotion,
    demote anything held without the VIP, and never leave Harbor on a bare mountpoint."""
    node, acts = from_facts(facts)
    assert node.state is state
    assert node.want_master is facts.vip
    step = STEP_OF.get(state)
    resume = (
        (
            Action(Kind.RENEW_LEASE, reason="renew the lease"),
            Action(
                Kind.START_TIMER, timer=Timer.RENEW, delay_s=POLICY.lease_renew_interval_s,
                reason="renew the lease",
            ),
            Action(
                Kind.START_TIMER, timer=Timer.DEADLINE,
                delay_s=POLICY.lease_duration_s - POLICY.lease_margin_s
                - POLICY.lease_renew_interval_s,
                reason="no lease renewal: stop serving",
            ),
        )
        if state in LEASED
        else (WATCH,) if state is S.BACKUP
        else ()
    )  # fmt: skip
    assert acts == ((Action(Kind.RUN_STEP, step),) if step else ()) + resume, (
        "resuming past the lease step renews it at once and arms renewal and deadline"
    )


def test_lease_step_done_arms_renewal_and_deadline() -> None:
    """The lease taken: on to FENCING, with the renewal (every interval) and the self-demotion
    deadline (duration - margin - one interval) armed."""
    node, acts = transition(Node(state=S.LEASING, want_master=True), E.STEP_DONE)
    assert node.state is S.FENCING
    assert timers(acts) == [
        Action(Kind.START_TIMER, timer=Timer.RENEW, delay_s=0.5, reason="renew the lease"),
        Action(
            Kind.START_TIMER, timer=Timer.DEADLINE, delay_s=3.0,
            reason="no lease renewal: stop serving",
        ),
    ]  # fmt: skip


def test_lease_held_by_live_peer_never_fences_and_keeps_the_fault_while_it_renews() -> None:
    """A live holder: back to BACKUP without fencing, fault file on (keepalived gives the VIP
    up), a pending backoff cancelled (it would clear the fault), no failure counted, and a
    poll of the lease every renewal interval.  While the holder renews, every poll re-arms
    the next and the fault stays (a partition never flaps); a MASTER line changes nothing."""
    node, acts = transition(Node(state=S.LEASING, want_master=True), E.LEASE_HELD_BY_PEER)
    assert node.state is S.BACKUP and node.fault_file_on and node.failures == 0
    assert [a.step for a in acts if a.kind is Kind.RUN_STEP] == []
    poll = Action(
        Kind.START_TIMER, timer=Timer.POLL, delay_s=POLICY.lease_renew_interval_s,
        reason="look at the live holder's lease again",
    )  # fmt: skip
    assert timers(acts) == [Action(Kind.CANCEL_TIMER, timer=Timer.BACKOFF), poll, WATCH]
    for _ in range(3):
        node, acts = transition(node, E.LEASE_POLL_DUE)
        assert acts == (Action(Kind.POLL_LEASE, reason="is the holder alive?"),)
        node, acts = transition(node, E.LEASE_PEER_RENEWS)
        assert acts == (poll,) and node.fault_file_on
        node, acts = transition(node, E.KA_MASTER)
        assert node.state is S.BACKUP and acts == ()


def test_claim_back_clears_the_fault_then_the_node_promotes_with_the_lease_step() -> None:
    """The poll finds the holder stopped, the lease free or the partition healed: the fault
    clears (normal priority back) and no poll is armed; the next MASTER line promotes,
    starting with the lease step (never with fencing)."""
    node, _ = transition(Node(state=S.LEASING, want_master=True), E.LEASE_HELD_BY_PEER)
    node, acts = transition(node, E.LEASE_CLAIM_BACK)
    assert not node.fault_file_on and acts == ()
    _, acts = transition(node, E.LEASE_PEER_RENEWS)
    assert acts == (), "a late poll answer after the claim back arms nothing"
    node, acts = transition(node, E.KA_MASTER)
    assert node.state is S.LEASING and acts == (Action(Kind.RUN_STEP, Step.LEASE),)


def test_a_stale_holder_is_fenced_then_its_lease_taken_then_mapped() -> None:
    """The lease step finds the holder's expiry not moving (LEASE_STALE): the fence step runs
    (it fences that holder too); its LEASE_TAKEN goes on to MAPPING and only then arms the
    renewal and the deadline (the lease is ours from the take-over on)."""
    node, acts = transition(Node(state=S.LEASING, want_master=True), E.LEASE_STALE)
    assert node.state is S.FENCING and acts == (Action(Kind.RUN_STEP, Step.FENCE),)
    node, acts = transition(node, E.LEASE_TAKEN)
    assert node.state is S.MAPPING
    assert [a.timer for a in timers(acts)] == [Timer.RENEW, Timer.DEADLINE]
    assert timers(acts)[1].delay_s == POLICY.lease_deadline_s


def test_failsafe_asks_the_peer_before_the_deadline_and_its_promise_moves_it() -> None:
    """With a failsafe configured, each renewal arms the ASK timer early enough for the
    answer to come before the deadline; when it fires, a MASTER asks the peer.  The peer's
    promise re-arms the deadline for the promise window minus the margin and the request's
    timeout, and the next ask before that; no confirmation changes nothing (the deadline
    stands).  Without a failsafe, renewals arm no ASK timer and nobody is asked."""
    policy = replace(POLICY, failsafe=True)
    node = Node(state=S.MASTER, want_master=True, policy=policy)
    _, acts = transition(node, E.LEASE_RENEWED)
    ask_at = policy.lease_deadline_s - policy.failsafe_request_timeout_s
    assert [(a.timer, a.delay_s) for a in timers(acts)] == [
        (Timer.DEADLINE, policy.lease_deadline_s),
        (Timer.ASK, ask_at),
    ]
    assert 0 < ask_at < policy.lease_deadline_s
    _, acts = transition(node, E.FAILSAFE_DUE)
    assert acts == (Action(Kind.ASK_PEER, reason="failsafe request"),)
    _, acts = transition(node, E.FAILSAFE_CONFIRMED)
    want = policy.failsafe_window_s - policy.lease_margin_s - policy.failsafe_request_timeout_s
    assert [(a.timer, a.delay_s) for a in timers(acts)] == [
        (Timer.DEADLINE, want),
        (Timer.ASK, want - policy.failsafe_request_timeout_s),
    ]
    _, acts = transition(node, E.FAILSAFE_DENIED)
    assert acts == ()
    plain = replace(node, policy=POLICY)
    assert [a.timer for a in timers(transition(plain, E.LEASE_RENEWED)[1])] == [Timer.DEADLINE]
    assert transition(plain, E.FAILSAFE_DUE)[1] == ()


def test_a_promise_blocks_promotion_until_its_timer_then_promotes_if_wanted() -> None:
    """A node that promised the peer not to promote ignores MASTER lines until PROMISE
    fires; if keepalived still wants it then, it promotes at once (lease step first)."""
    node, acts = transition(Node(), E.FAILSAFE_PROMISED)
    assert node.promised and timers(acts) == [
        Action(
            Kind.START_TIMER, timer=Timer.PROMISE, delay_s=POLICY.failsafe_window_s,
            reason="failsafe promise over",
        )
    ]  # fmt: skip
    node, acts = transition(node, E.KA_MASTER)
    assert node.state is S.BACKUP and acts == ()
    node, acts = transition(node, E.PROMISE_EXPIRED)
    assert not node.promised and node.state is S.LEASING
    assert acts == (Action(Kind.RUN_STEP, Step.LEASE),)
    node, _ = transition(Node(), E.FAILSAFE_PROMISED)
    node, acts = transition(node, E.PROMISE_EXPIRED)
    assert node.state is S.BACKUP and not node.promised and acts == ()


@pytest.mark.parametrize("state", sorted(LEASED))
def test_renewal_due_renews_and_rearms(state: State) -> None:
    """While holding the lease, each RENEW_DUE renews it and arms the next renewal; a
    successful renewal re-arms the deadline."""
    node = Node(state=state, want_master=True)
    _, acts = transition(node, E.RENEW_DUE)
    assert acts == (
        Action(Kind.RENEW_LEASE, reason="renew the lease"),
        Action(Kind.START_TIMER, timer=Timer.RENEW, delay_s=0.5, reason="renew the lease"),
    )
    _, acts = transition(node, E.LEASE_RENEWED)
    assert [a.timer for a in timers(acts)] == [Timer.DEADLINE]


@pytest.mark.parametrize("state", [S.BACKUP, S.LEASING, S.FENCED_SELF])
def test_no_renewal_outside_the_leased_states(state: State) -> None:
    """A stale renewal timer or a late answer outside the leased and demoting states does
    nothing (the renewal stops by itself when the node leaves them)."""
    node = canonical(state)
    for event in (E.RENEW_DUE, E.LEASE_RENEWED, E.LEASE_UNREACHABLE, E.LEASE_DEADLINE):
        assert transition(node, event) == (node, ())


@pytest.mark.parametrize("event", [E.LEASE_LOST, E.LEASE_DEADLINE])
def test_master_stops_serving_when_the_lease_is_lost_or_due(event: Event) -> None:
    """The peer holds the lease, or no renewal came for the deadline: the master demotes as
    for a lost image (fault, failure counted, backoff)."""
    node, acts = transition(Node(state=S.MASTER, want_master=True), event)
    assert node.state is S.STOPPING and node.fault_file_on and node.failures == 1
    assert backoff(1) in acts


def test_an_unreachable_lease_alone_does_not_demote() -> None:
    """One renewal without a (timely) answer changes nothing: only the deadline demotes."""
    node = Node(state=S.MASTER, want_master=True)
    assert transition(node, E.LEASE_UNREACHABLE) == (node, ())


def test_lease_deadline_is_before_the_lease_can_be_taken() -> None:
    """The deadline from a renewal's event is shorter than the lease by the margin and one
    interval (the renewal is reported only when answered within one interval)."""
    p = Policy(lease_duration_s=5, lease_renew_interval_s=0.5, lease_margin_s=1.5)
    assert p.lease_deadline_s + p.lease_renew_interval_s + p.lease_margin_s == 5


# ------------------------------------------------------------- random walks
KEEPALIVED = [E.KA_MASTER, E.KA_BACKUP, E.KA_FAULT, E.KA_STOP, E.KA_GONE, E.KA_RETURNED]
OTHER = [
    E.VIP_SEEN,
    E.VIP_ABSENT,
    E.HARBOR_HEALTHY,
    E.HARBOR_UNHEALTHY,
    E.STORAGE_LOST,
    E.STORAGE_STUCK,
    E.BACKOFF_EXPIRED,
    E.SWITCHOVER,
    E.MAINTENANCE_ON,
    E.MAINTENANCE_OFF,
    E.STANDBY_READY,
    E.DATA_ON_STANDBY,
]
RESULTS = [E.STEP_DONE, E.STEP_FAILED, E.STEP_TIMEOUT]


class Sim:
    """A minimal driver: tracks the running step and what is held, to check the safety rules."""

    def __init__(self) -> None:
        self.node = Node()
        self.running: Step | None = None
        self.mapped = self.mounted = self.harbor = False
        self.mounts = 0

    def feed(self, event: Event) -> None:
        node, acts = transition(self.node, event)
        posted = []
        for a in acts:
            if a.kind is Kind.POST:
                assert a.event is not None
                posted.append(a.event)
            elif a.kind is Kind.CANCEL_STEP:
                assert self.running is not None
                self.running = None
            elif a.kind is Kind.WARM:
                assert node.state is S.BACKUP and self.running is None, "warm only when idle"
                assert not (self.mapped or self.mounted), "warm only on a node holding nothing"
            elif a.kind is Kind.RUN_STEP:
                assert self.running is None, "a step started while another runs"
                assert a.step is STEP_OF[node.state]
                self.running = a.step
        self.node = node
        if node.state in STEP_OF:
            assert self.running is STEP_OF[node.state]
        for ev in posted:  # the driver posts it back (after what is already queued)
            self.feed(ev)

    def finish(self, event: Event) -> None:
        """The running step ends with ``event``; apply its effect on the node when it succeeds."""
        step = self.running
        assert step is not None
        self.running = None
        if event is E.STEP_DONE:
            if step is Step.MAP:
                self.mapped = True
            elif step is Step.MOUNT:
                assert self.mapped and not self.mounted, "mount only on a mapped, unmounted image"
                self.mounted = True
                self.mounts += 1
            elif step is Step.START:
                assert self.mounted, "Harbor starts only on the mounted image"
                self.harbor = True
            elif step is Step.STOP:
                self.harbor = False
            elif step is Step.UNMOUNT:
                self.harbor = False
                self.mounted = False
            elif step is Step.UNMAP:
                assert not self.mounted
                self.mapped = False
            elif step is Step.FENCE:
                assert not self.mapped
        self.feed(event)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(KEEPALIVED + OTHER + RESULTS), max_size=60),
    st.sampled_from([E.KA_MASTER, E.KA_BACKUP]),
)
def test_random_sequences_keep_safety_and_follow_last_word(
    events: list[Event], last: Event
) -> None:
    """Any sequence of events: one step at a time, mount only after map, Harbor only on a mount,
    never two mounts at once; after the storm, with steps succeeding and timers expired, the node
    ends where keepalived's last word (and the flags) say."""
    sim = Sim()
    for ev in events:
        if ev in RESULTS:
            if sim.running is not None:
                sim.finish(ev)
        else:
            sim.feed(ev)
    sim.feed(last)
    for _ in range(50):
        if sim.running is not None:
            sim.finish(E.STEP_DONE)
        elif sim.node.state is S.FENCED_SELF:
            sim.feed(E.RETRY)
        elif sim.node.fault and sim.node.state is S.BACKUP:
            sim.feed(E.BACKOFF_EXPIRED)
            if not sim.node.fault:
                sim.feed(last)  # keepalived re-elects once the fault file clears
        else:
            break
    if last is E.KA_MASTER and not sim.node.maintenance:
        assert sim.node.state is S.MASTER
        assert sim.mapped and sim.mounted and sim.harbor
    else:
        assert sim.node.state is S.BACKUP
        assert not (sim.mapped or sim.mounted or sim.harbor)


def test_demoting_and_promoting_sets_are_disjoint() -> None:
    """Sanity of the partition the table is built on."""
    assert not (DEMOTING & PROMOTING)
    assert set(STEP_OF) == DEMOTING | PROMOTING
    assert replace(Node(), state=S.MASTER).step is None


# ----------------------------------------------------------------- timers
def test_backoff_doubles_and_is_capped() -> None:
    """The machine computes the backoff: initial * 2**(n-1) after n failures, at most max."""
    p = Policy(backoff_initial_s=10, backoff_max_s=300)
    assert [p.backoff_s(n) for n in (0, 1, 2, 3, 5, 6, 9)] == [10, 10, 20, 40, 160, 300, 300]
    node = Node(state=S.MOUNTING, want_master=True, failures=5, policy=p)
    _, acts = transition(node, E.STEP_TIMEOUT)
    assert [a.delay_s for a in timers(acts)] == [300]


def test_fenced_self_arms_its_retry_timer() -> None:
    """Entering FENCED_SELF arms the RETRY timer for fenced_self_retry_s (and while exiting,
    exits right after); the timer posts RETRY."""
    p = Policy(fenced_self_retry_s=7)
    _, acts = transition(Node(state=S.UNMAPPING, policy=p), E.STEP_FAILED)
    assert timers(acts) == [
        Action(
            Kind.START_TIMER, timer=Timer.RETRY, delay_s=7, reason="periodic retry of the demotion"
        )
    ]
    _, acts = transition(Node(state=S.UNMAPPING, exiting=True, policy=p), E.STEP_FAILED)
    assert [a.kind for a in acts] == [Kind.START_TIMER, Kind.EXIT]
    assert machine.TIMER_EVENT[Timer.RETRY] is E.RETRY


@pytest.mark.parametrize("failures", [0, 1, 3])
def test_master_stable_timer_only_after_failures(failures: int) -> None:
    """MASTER entered with past failures arms MASTER_STABLE (master_stable_s); without, none."""
    node, acts = transition(
        Node(state=S.STARTING, want_master=True, failures=failures), E.STEP_DONE
    )
    assert node.state is S.MASTER
    want = [Action(Kind.START_TIMER, timer=Timer.STABLE, delay_s=60.0, reason="MASTER for 60 s")]
    assert timers(acts) == (want if failures else [])
    assert machine.TIMER_EVENT[Timer.STABLE] is E.MASTER_STABLE


def test_policy_defaults_are_the_settings_defaults() -> None:
    """Node() decides with the same timings as a daemon with default settings."""
    assert Policy() == policy_of(example_settings())


# ------------------------------------------------------------ VIP mismatch
HOLDING = [S.MASTER, *PROMOTING]


@pytest.mark.parametrize("state", RBD_STATES)
@pytest.mark.parametrize("vip", [E.VIP_SEEN, E.VIP_ABSENT])
def test_vip_mismatch_counted_then_posted(state: State, vip: Event) -> None:
    """The VIP tick's observation: a VIP on a BACKUP keepalived did not make MASTER, or no VIP
    on a node holding (or taking) the image that keepalived made MASTER, is a mismatch.  The
    machine counts consecutive mismatching ticks and on the vip_mismatch_ticks-th posts the
    keepalived line it stands for (KA_MASTER / KA_BACKUP), then counts from 0; any other tick
    resets the count and does nothing."""
    wanted = state in HOLDING
    node = Node(state=state, want_master=wanted, policy=Policy(vip_mismatch_ticks=3))
    mismatch = (vip is E.VIP_SEEN and state is S.BACKUP) or (vip is E.VIP_ABSENT and wanted)
    for tick in (1, 2):
        node, acts = transition(node, vip)
        assert node.state is state and acts == ()
        assert node.vip_mismatch == (tick if mismatch else 0)
    node, acts = transition(node, vip)
    assert node.vip_mismatch == 0 and node.state is state
    if mismatch:
        verdict = E.KA_MASTER if vip is E.VIP_SEEN else E.KA_BACKUP
        assert acts == (Action(Kind.POST, event=verdict, ticks=3),)
    else:
        assert acts == ()


def test_agreeing_tick_resets_the_vip_count() -> None:
    """absent, seen, absent on a MASTER never reaches two consecutive mismatches."""
    node = Node(state=S.MASTER, want_master=True)
    for ev in (E.VIP_ABSENT, E.VIP_SEEN, E.VIP_ABSENT):
        node, acts = transition(node, ev)
        assert acts == ()
    assert node.vip_mismatch == 1


def test_vip_on_a_backup_keepalived_wants_is_no_mismatch() -> None:
    """VIP present on a BACKUP that keepalived already asked to be MASTER (in backoff) is
    not a mismatch: keepalived's word is already known."""
    node = Node(want_master=True, fault=True)
    for _ in range(3):
        node, acts = transition(node, E.VIP_SEEN)
        assert acts == () and node.vip_mismatch == 0


def test_a_master_whose_keepalived_died_demotes_and_its_stale_vip_is_no_verdict() -> None:
    """KA_GONE (keepalived closed the FIFO and none came back: kill -9) on a MASTER demotes it
    like keepalived's FAULT (with the lease, a renewing master whose keepalived is dead would
    otherwise keep the peer refused forever); back in BACKUP, the VIP keepalived left on the
    interface is no KA_MASTER verdict while keepalived is gone; once a keepalived holds the
    FIFO again (KA_RETURNED, or any of its lines) the VIP tick counts again."""
    node, _ = transition(Node(state=S.MASTER, want_master=True), E.KA_GONE)
    assert node.state is S.STOPPING and node.keepalived_gone and not node.want_master
    node = replace(node, state=S.BACKUP)
    for _ in range(4):
        node, acts = transition(node, E.VIP_SEEN)
        assert acts == () and node.vip_mismatch == 0 and node.state is S.BACKUP
    node, _ = transition(node, E.KA_RETURNED)
    assert not node.keepalived_gone and node.state is S.BACKUP
    node, _ = transition(node, E.VIP_SEEN)
    assert node.vip_mismatch == 1
    gone, _ = transition(Node(), E.KA_GONE)
    back, _ = transition(gone, E.KA_BACKUP)
    assert gone.keepalived_gone and not back.keepalived_gone


# ------------------------------------------------------- derived properties
@pytest.mark.parametrize("state", RBD_STATES)
@pytest.mark.parametrize("event", [E.SWITCHOVER, E.RETRY, E.MAINTENANCE_ON, E.KA_MASTER])
def test_operator_refusals(state: State, event: Event) -> None:
    """switchover needs MASTER, retry is for FENCED_SELF; other commands are never refused."""
    why = refusal(Node(state=state), event)
    if event is E.SWITCHOVER and state is not S.MASTER:
        assert why == f"switchover needs MASTER; this node is {state}"
    elif event is E.RETRY and state is not S.FENCED_SELF:
        assert why == f"retry is for FENCED_SELF; this node is {state}"
    else:
        assert why is None


def test_probes_by_state() -> None:
    """MASTER probes Harbor and its storage, BACKUP its readiness, the others nothing."""
    assert PROBE_OF[S.MASTER] is Probes.MASTER and PROBE_OF[S.BACKUP] is Probes.STANDBY
    assert {PROBE_OF[s] for s in RBD_STATES if s not in (S.MASTER, S.BACKUP)} == {Probes.NONE}
    assert Node(state=S.MASTER).serving and not Node(state=S.STARTING).serving


def test_failover_clock_marks() -> None:
    """The failover duration runs from BACKUP -> FENCING to MASTER; back at BACKUP it resets."""
    assert failover_clock(S.BACKUP, S.LEASING) is Clock.START
    assert failover_clock(S.STARTING, S.MASTER) is Clock.STOP
    assert failover_clock(S.UNMAPPING, S.BACKUP) is Clock.RESET
    assert failover_clock(S.FENCING, S.MAPPING) is None


# ------------------------------------------------------------------ lease: issue 10 rows
def test_a_standby_watches_the_lease_every_interval_but_in_maintenance() -> None:
    """BACKUP: each WATCH firing looks at the lease (remembered for a later lease step) and
    arms the next; in maintenance it only keeps the timer going (no look); in every other
    state a firing does nothing, so the watch stops outside BACKUP."""
    node = canonical(S.BACKUP)
    look = Action(Kind.WATCH_LEASE, reason="remember a look")
    assert transition(node, E.LEASE_WATCH_DUE) == (node, (look, WATCH))
    resting = replace(node, maintenance=True)
    assert transition(resting, E.LEASE_WATCH_DUE) == (resting, (WATCH,))
    for state in set(RBD_STATES) - {S.BACKUP}:
        assert transition(canonical(state), E.LEASE_WATCH_DUE) == (canonical(state), ())


def test_every_way_into_backup_starts_the_watch() -> None:
    """A clean demotion, a refused lease step and a failed promotion all end in BACKUP with
    the WATCH timer armed."""
    node, acts = transition(Node(state=S.UNMAPPING), E.STEP_DONE)
    assert WATCH in acts
    node, acts = transition(Node(state=S.LEASING, want_master=True), E.LEASE_HELD_BY_PEER)
    assert WATCH in acts
    node, acts = transition(Node(state=S.FENCING, want_master=True), E.STEP_FAILED)
    assert node.state is S.BACKUP and WATCH in acts


def test_a_demoting_holder_is_awaited_in_leasing_within_its_bound() -> None:
    """The lease step found a live holder that demotes cleanly: stay in LEASING and run the
    step again; the first time arms HANDOFF for the holder's demotion bound (+ a duration),
    later times do not re-arm it (the bound counts from the first)."""
    handoff = Action(
        Kind.START_TIMER, timer=Timer.HANDOFF, delay_s=POLICY.demotion_bound_s
        + POLICY.lease_duration_s, reason="the demoting holder's bound is over",
    )  # fmt: skip
    node, acts = transition(Node(state=S.LEASING, want_master=True), E.LEASE_HOLDER_DEMOTING)
    assert node.state is S.LEASING and node.awaiting_release and not node.fault_file_on
    assert acts == (Action(Kind.RUN_STEP, Step.LEASE), handoff)
    node, acts = transition(node, E.LEASE_HOLDER_DEMOTING)
    assert acts == (Action(Kind.RUN_STEP, Step.LEASE),)
    node, acts = transition(node, E.STEP_DONE)  # the holder released: taken, no fence of it
    assert node.state is S.FENCING


def test_the_handoff_bound_over_gives_up_as_for_a_live_holder() -> None:
    """The demoting holder still renews after its bound: cancel the step, back to BACKUP
    keeping the fault and polling (as LEASE_HELD_BY_PEER); never a fence.  A HANDOFF left
    from an earlier attempt (awaiting_release false: entering LEASING clears it) does
    nothing."""
    node, _ = transition(Node(state=S.LEASING, want_master=True), E.LEASE_HOLDER_DEMOTING)
    node, acts = transition(node, E.LEASE_HANDOFF_OVER)
    assert node.state is S.BACKUP and node.fault_file_on and not node.awaiting_release
    assert acts[0] == Action(Kind.CANCEL_STEP)
    assert [a.timer for a in timers(acts)] == [Timer.BACKOFF, Timer.POLL, Timer.WATCH]
    fresh = Node(state=S.LEASING, want_master=True)
    assert transition(fresh, E.LEASE_HANDOFF_OVER) == (fresh, ())
    node, _ = transition(replace(node, fault=False, rollback=False), E.KA_MASTER)
    assert node.state is S.LEASING and not node.awaiting_release


RENEW = (
    Action(Kind.RENEW_LEASE, reason="renew the lease"),
    Action(Kind.START_TIMER, timer=Timer.RENEW, delay_s=0.5, reason="renew the lease"),
)


@pytest.mark.parametrize("event", [E.KA_BACKUP, E.HARBOR_UNHEALTHY, E.SWITCHOVER, E.STORAGE_LOST])
def test_a_clean_demotion_renews_until_the_release(event: Event) -> None:
    """A demotion not caused by the lease keeps renewing in STOPPING, UNMOUNTING and
    UNMAPPING (the unmap step releases the lease), so the peer never judges the demoting
    node stopped and fences it before its unmount flushed."""
    node, _ = transition(Node(state=S.MASTER, want_master=True), event)
    for state in (S.STOPPING, S.UNMOUNTING, S.UNMAPPING):
        assert node.state is state
        assert transition(node, E.RENEW_DUE) == (node, RENEW)
        node, _ = transition(node, E.STEP_DONE)
    assert node.state is S.BACKUP
    assert transition(node, E.RENEW_DUE) == (node, ())


@pytest.mark.parametrize("start", [S.MASTER, S.STARTING, S.MOUNTING, S.MAPPING])
def test_a_demotion_for_a_lost_lease_does_not_renew(start: State) -> None:
    """LEASE_LOST (the peer holds it): the demotion it starts does not renew; the next
    demotion, after BACKUP, renews again."""
    node, _ = transition(Node(state=start, want_master=True), E.LEASE_LOST)
    assert node.state in DEMOTING and node.lease_lost
    while node.state is not S.BACKUP:
        assert transition(node, E.RENEW_DUE) == (node, ())
        node, _ = transition(node, E.STEP_DONE)
    assert not node.lease_lost


def test_a_renewal_that_finds_the_peer_holding_it_stops_the_demotions_renewals() -> None:
    """A clean demotion's renewal answers LEASE_LOST (the peer holds the lease): it stops
    renewing there and then, and goes on demoting."""
    node, _ = transition(Node(state=S.MASTER, want_master=True), E.KA_BACKUP)
    node, acts = transition(node, E.LEASE_LOST)
    assert node.state is S.STOPPING and node.lease_lost and acts == ()
    assert transition(node, E.RENEW_DUE) == (node, ())


def test_a_stuck_demotion_stops_renewing_in_fenced_self() -> None:
    """A demotion whose unmount or unmap fails or times out ends in FENCED_SELF, which does
    not renew: the lease is held at most for the demotion's step timeouts (stop + unmount +
    unmap), then the peer sees it stopped and may fence it.  The retry does not renew either
    (the renewal timer chain ended)."""
    node, _ = transition(Node(state=S.MASTER, want_master=True), E.KA_BACKUP)
    node, _ = transition(node, E.STEP_TIMEOUT)  # stop timed out -> unmount kills the rest
    assert node.state is S.UNMOUNTING and transition(node, E.RENEW_DUE)[1] == RENEW
    node, _ = transition(node, E.STEP_TIMEOUT)
    assert node.state is S.FENCED_SELF
    assert transition(node, E.RENEW_DUE) == (node, ())
    node, acts = transition(node, E.RETRY)
    assert node.state is S.STOPPING and Kind.RENEW_LEASE not in [a.kind for a in acts]


def test_the_handoff_bound_is_the_settings_demotion_bound() -> None:
    """policy_of: the demotion bound is the stop, unmount and unmap timeouts together (both
    nodes have the same settings), and the handoff wait adds one lease duration."""
    s = example_settings(stop_timeout_s=20, unmount_timeout_s=10, unmap_timeout_s=5)
    p = policy_of(s)
    assert p.demotion_bound_s == 35 and p.lease_handoff_s == 35 + s.lease_duration_s


@pytest.mark.parametrize(
    "held",
    [
        dict(mapped=True, mounted=True, harbor_running=True),
        dict(mapped=True, mounted=True, harbor_running=False),
        dict(mapped=True, mounted=False, harbor_running=False),
    ],
)
def test_reconcile_never_masters_while_the_peer_holds_the_lease(held: dict[str, bool]) -> None:
    """A restarted daemon that finds the VIP (left by a killed keepalived), the image and
    Harbor, while another node holds the lease, never adopts MASTER nor resumes past the lease
    step: the peer took over.  It demotes at once, without renewing (the lease is not its
    own), with the fault raised so keepalived gives the VIP away, and backs off."""
    facts = Facts(vip=True, lease_peer=True, **held)
    node, acts = from_facts(facts)
    assert node.state is S.STOPPING
    assert node.lease_lost and node.fault
    assert Action(Kind.RENEW_LEASE, reason="renew the lease") not in acts
    assert [a.timer for a in timers(acts)] == [Timer.BACKOFF]


def test_reconcile_with_the_peer_holding_and_nothing_here_takes_the_lease_step() -> None:
    """VIP but nothing held here while the peer holds the lease: the lease step judges the
    holder (never a fence of a live one), as it does for any promotion."""
    node, _ = from_facts(Facts(vip=True, mapped=False, mounted=False, harbor_running=False,
                               lease_peer=True))  # fmt: skip
    assert node.state is S.LEASING


@pytest.mark.parametrize("state", sorted(set(RBD_STATES) - {S.BACKUP}))
def test_a_promise_is_granted_only_in_backup(state: State) -> None:
    """The failsafe promise is the machine's decision: granted (promised, PROMISE armed) only
    in BACKUP, where nothing promotes; in any other state (a promotion in flight, MASTER, a
    demotion, FENCED_SELF) it is refused: nothing changes, and the peer hears "no promise"."""
    node = Node(state=state, want_master=True)
    new, acts = transition(node, E.FAILSAFE_PROMISED)
    assert new == node and acts == ()


def test_a_promise_that_outlived_a_restart_still_binds() -> None:
    """A daemon restarted while its promise runs (the time left, read at start) starts BACKUP
    and promised, even with the VIP, and promotes only when that time is over."""
    facts = Facts(vip=True, mapped=False, mounted=False, harbor_running=False, promised_s=7.5)
    node, acts = from_facts(facts)
    assert node.state is S.BACKUP and node.promised and node.want_master
    assert (
        Action(Kind.START_TIMER, timer=Timer.PROMISE, delay_s=7.5, reason="failsafe promise over")
        in acts
    )
    node, acts = transition(node, E.PROMISE_EXPIRED)
    assert node.state is S.LEASING


@pytest.mark.parametrize("start", [S.MASTER, S.STARTING, S.MOUNTING, S.MAPPING])
def test_a_deadline_demotion_renews_until_the_release(start: State) -> None:
    """LEASE_DEADLINE (no renewal answered in time, nobody else holds the lease): the node
    stops serving, and its demotion renews through every step until the release, so a
    peer never fences it in the middle of a stop that can take stop_timeout_s."""
    node, _ = transition(Node(state=start, want_master=True), E.LEASE_DEADLINE)
    assert node.state in DEMOTING and not node.lease_lost and node.fault_file_on
    while node.state is not S.BACKUP:
        assert transition(node, E.RENEW_DUE) == (node, RENEW)
        node, _ = transition(node, E.STEP_DONE)
