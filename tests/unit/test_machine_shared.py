"""The shared mode's table (machine/shared.py): complete over its own states and events; a node
joins (mount, start, serve) on its own, drains before it stops (readiness 503 for the drain
wait, then Harbor stops), rejoins by itself after a failure with a doubling backoff, stays
out while drained or in maintenance, and never runs a step of the rbd mode (no lease, fence,
map or unmap) nor acts on keepalived."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest

from harbor_ha.machine import (
    MODES,
    Action,
    Event,
    Facts,
    IllegalTransition,
    Kind,
    Mode,
    Node,
    Policy,
    Probes,
    State,
    Step,
    Timer,
    from_facts,
    refusal,
    transition,
)
from harbor_ha.machine.shared import EVENTS, STATES

S = State
E = Event
SHARED = Policy(mode=Mode.SHARED, backoff_initial_s=10.0, backoff_max_s=40.0, drain_wait_s=7.0)


def node(**kw: object) -> Node:
    return replace(Node(policy=SHARED), **kw)  # type: ignore[arg-type]


def kinds(actions: tuple[Action, ...]) -> list[tuple[Kind, object]]:
    return [(a.kind, a.step or a.timer) for a in actions]


def test_the_shared_table_decides_each_of_its_pairs_exactly_once() -> None:
    """Every (state, event) pair of the shared mode has rows or is declared illegal, never
    both, and nothing outside its states and events."""
    table = MODES[Mode.SHARED]
    assert table.missing() == []
    assert set(table.table).isdisjoint(table.illegal)
    assert set(table.table) | set(table.illegal) == set(itertools.product(STATES, EVENTS))


@pytest.mark.parametrize(("state", "event"), list(itertools.product(STATES, EVENTS)))
def test_every_pair_goes_where_its_rows_say_or_raises(state: State, event: Event) -> None:
    """Each pair either raises IllegalTransition (declared illegal) or ends in a state of the
    mode; a step is started only by entering a state that runs one."""
    n = node(state=state)
    if (state, event) in MODES[Mode.SHARED].illegal:
        with pytest.raises(IllegalTransition):
            transition(n, event)
        return
    new, actions = transition(n, event)
    assert new.state in STATES
    for action in actions:
        if action.kind is Kind.RUN_STEP:
            assert action.step is new.step


def test_a_down_node_joins_mounts_starts_and_serves() -> None:
    """DOWN with nothing holding it down: MOUNTING at once (the mount step), then STARTING
    (the start step), then SERVING (no step; /serving and readiness may answer 200)."""
    n, actions = from_facts(
        Facts(vip=False, mapped=False, mounted=False, harbor_running=False), policy=SHARED
    )
    assert n.state is S.MOUNTING and kinds(actions) == [(Kind.RUN_STEP, Step.MOUNT)]
    n, actions = transition(n, E.STEP_DONE)
    assert n.state is S.STARTING and kinds(actions) == [(Kind.RUN_STEP, Step.START)]
    n, actions = transition(n, E.STEP_DONE)
    assert n.state is S.SERVING and n.serving and actions == ()
    assert n.probes is Probes.MASTER


@pytest.mark.parametrize("cause", [E.HARBOR_UNHEALTHY, E.STORAGE_LOST, E.STORAGE_STUCK])
def test_a_failure_while_serving_drains_then_stops_then_backs_off_and_rejoins(
    cause: Event,
) -> None:
    """Harbor unhealthy or the mount lost (or not answering) on a SERVING node: DRAINING at
    once (not serving: readiness 503), the drain timer armed for drain_wait_s; its firing
    stops Harbor, then unmounts; DOWN with the fault and the backoff armed; the backoff's end
    rejoins (MOUNTING) by itself."""
    n, actions = transition(node(state=S.SERVING), cause)
    assert n.state is S.DRAINING and not n.serving and n.fault and n.failures == 1
    assert [(a.kind, a.timer, a.delay_s) for a in actions] == [(Kind.START_TIMER, Timer.DRAIN, 7.0)]
    n, actions = transition(n, E.DRAIN_OVER)
    assert n.state is S.STOPPING and kinds(actions) == [(Kind.RUN_STEP, Step.STOP)]
    n, actions = transition(n, E.STEP_DONE)
    assert n.state is S.UNMOUNTING and kinds(actions) == [(Kind.RUN_STEP, Step.UNMOUNT)]
    n, actions = transition(n, E.STEP_DONE)
    assert n.state is S.DOWN and [(a.timer, a.delay_s) for a in actions] == [(Timer.BACKOFF, 10.0)]
    n, actions = transition(n, E.BACKOFF_EXPIRED)
    assert n.state is S.MOUNTING and not n.fault
    assert kinds(actions) == [(Kind.RUN_STEP, Step.MOUNT)]


def test_the_backoff_doubles_with_repeated_failures_up_to_its_max() -> None:
    """A mount that fails again and again: each failure undoes (UNMOUNTING), arrives DOWN and
    backs off 10, 20, 40, 40 s (backoff_initial_s doubling, capped at backoff_max_s)."""
    n = node(state=S.MOUNTING)
    delays = []
    for _ in range(4):
        n, _acts = transition(n, E.STEP_FAILED)
        assert n.state is S.UNMOUNTING
        n, actions = transition(n, E.STEP_DONE)
        assert n.state is S.DOWN and n.fault
        delays += [a.delay_s for a in actions if a.timer is Timer.BACKOFF]
        n, _acts = transition(n, E.BACKOFF_EXPIRED)
        assert n.state is S.MOUNTING
    assert delays == [10.0, 20.0, 40.0, 40.0]


def test_failures_are_forgotten_only_once_serving_held() -> None:
    """Entering SERVING after failures arms the stable timer; its firing resets the count
    (the next failure backs off from the start again); a firing after SERVING was left
    keeps the count."""
    n, actions = transition(node(state=S.STARTING, failures=3), E.STEP_DONE)
    assert n.state is S.SERVING and (Kind.START_TIMER, Timer.STABLE) in kinds(actions)
    assert transition(n, E.MASTER_STABLE)[0].failures == 0
    left, _ = transition(n, E.HARBOR_UNHEALTHY)
    assert transition(left, E.MASTER_STABLE)[0].failures == 4


@pytest.mark.parametrize("command", [E.DRAIN, E.MAINTENANCE_ON])
def test_drain_and_maintenance_take_the_node_out_until_maintenance_off(command: Event) -> None:
    """`harbor-ha drain` or `maintenance on` on a SERVING node: DRAINING (readiness 503),
    the drain wait, Harbor stopped, unmounted, DOWN without a fault and without a backoff:
    it stays DOWN; `maintenance off` rejoins at once."""
    n, _ = transition(node(state=S.SERVING), command)
    assert n.state is S.DRAINING and n.maintenance and not n.fault
    for event in (E.DRAIN_OVER, E.STEP_DONE, E.STEP_DONE):
        n, actions = transition(n, event)
    assert n.state is S.DOWN and actions == ()
    assert refusal(n, E.DRAIN) is None
    n, actions = transition(n, E.MAINTENANCE_OFF)
    assert n.state is S.MOUNTING and kinds(actions) == [(Kind.RUN_STEP, Step.MOUNT)]


@pytest.mark.parametrize(("state", "undo"), [(S.MOUNTING, S.UNMOUNTING), (S.STARTING, S.STOPPING)])
def test_a_drain_while_joining_undoes_at_once(state: State, undo: State) -> None:
    """A node that does not serve yet has nothing to drain: its step is cancelled and undone
    (no drain timer)."""
    n, actions = transition(node(state=state), E.DRAIN)
    assert n.state is undo and n.maintenance
    assert [a.kind for a in actions] == [Kind.CANCEL_STEP, Kind.RUN_STEP]


def test_a_failed_start_stops_harbor_and_unmounts_without_draining() -> None:
    """The start step failing (Harbor never served): STOPPING at once, no drain timer; the
    failure counts."""
    n, actions = transition(node(state=S.STARTING), E.STEP_TIMEOUT)
    assert n.state is S.STOPPING and n.fault and n.failures == 1
    assert kinds(actions) == [(Kind.RUN_STEP, Step.STOP)]


def test_a_failed_unmount_ends_down_with_the_fault_not_fenced() -> None:
    """An unmount that cannot finish (busy past its bound, or a foreign mount refused): DOWN
    with the fault and a backoff; the shared mode has no FENCED_SELF."""
    n, actions = transition(node(state=S.UNMOUNTING), E.STEP_FAILED)
    assert n.state is S.DOWN and n.fault
    assert [a.timer for a in actions] == [Timer.BACKOFF]


def test_shutdown_keeps_a_serving_harbor_unless_asked_to_demote() -> None:
    """SHUTDOWN on a SERVING node exits at once (Harbor keeps serving; the restart adopts
    it); with demote_on_exit it drains first and exits once DOWN."""
    n, actions = transition(node(state=S.SERVING), E.SHUTDOWN)
    assert n.state is S.SERVING and [a.kind for a in actions] == [Kind.EXIT]
    n, _ = transition(node(state=S.SERVING, demote_on_exit=True), E.SHUTDOWN)
    assert n.state is S.DRAINING
    for event in (E.DRAIN_OVER, E.STEP_DONE):
        n, _ = transition(n, event)
    n, actions = transition(n, E.STEP_DONE)
    assert n.state is S.DOWN and [a.kind for a in actions] == [Kind.EXIT]


@pytest.mark.parametrize(
    ("facts", "state"),
    [
        (dict(mounted=True, harbor_running=True), S.SERVING),
        (dict(mounted=True, harbor_running=False), S.STARTING),
        (dict(mounted=False, harbor_running=True), S.STOPPING),
        (dict(mounted=False, harbor_running=False, mount_foreign=True), S.UNMOUNTING),
    ],
)
def test_reconcile_adopts_a_serving_node_and_never_harbor_off_the_mount(
    facts: dict[str, bool], state: State
) -> None:
    """At start: the verified mount with Harbor running is SERVING (a daemon restart is
    hitless); the mount alone resumes at STARTING; Harbor without the verified mount is
    stopped first; a foreign mount goes to the unmount step (which refuses it)."""
    n, _ = from_facts(Facts(vip=False, mapped=False, **facts), policy=SHARED)
    assert n.state is state


@pytest.mark.parametrize(
    "event", [E.KA_MASTER, E.VIP_SEEN, E.LEASE_LOST, E.STANDBY_READY, E.RETRY, E.SWITCHOVER]
)
def test_keepalived_lease_and_rbd_commands_mean_nothing_here(event: Event) -> None:
    """keepalived's lines, the VIP tick, the lease's and the standby's events are illegal in
    the shared mode, and switchover and retry are refused naming the mode."""
    with pytest.raises(IllegalTransition, match="shared"):
        transition(node(state=S.SERVING), event)
    assert refusal(node(state=S.SERVING), event) == f"{event} has no meaning in the shared mode"


def test_drain_is_refused_in_the_other_modes() -> None:
    """`harbor-ha drain` has no meaning in the rbd or replicated modes: refused by name."""
    assert refusal(Node(state=S.MASTER), E.DRAIN) == "DRAIN has no meaning in the rbd mode"
    rep = Node(state=S.MASTER, policy=Policy(mode=Mode.REPLICATED))
    assert refusal(rep, E.DRAIN) == "DRAIN has no meaning in the replicated mode"


def test_random_walks_serve_only_after_mount_and_start_and_stop_only_after_a_drain() -> None:
    """Thousands of random events of the mode: the only steps ever run are mount, start,
    stop and unmount; SERVING is entered only from STARTING's success; a SERVING node leaves
    only through DRAINING (or its stop: never straight to STOPPING); maintenance keeps a DOWN
    node down."""
    rng = random.Random(20261207)
    events = sorted(EVENTS)
    for _ in range(200):
        n = node()
        for _ in range(60):
            event = rng.choice(events)
            try:
                new, actions = transition(n, event)
            except IllegalTransition:
                continue
            steps = {a.step for a in actions if a.kind is Kind.RUN_STEP}
            assert steps <= {Step.MOUNT, Step.START, Step.STOP, Step.UNMOUNT}
            if new.state is S.SERVING and n.state is not S.SERVING:
                assert (n.state, event) == (S.STARTING, E.STEP_DONE)
            if n.state is S.SERVING and new.state is not S.SERVING:
                assert new.state is S.DRAINING
            if new.state is S.DOWN and new.maintenance:
                assert not any(a.step is Step.MOUNT for a in actions)
            n = new
