"""The replicated mode's table (machine/replicated.py) and the modes' shared evaluator: each
mode's table is complete over its own states and events, the replicated machine never runs a
step or touches storage, and its fault file follows Harbor's health on either node."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest

from harbor_ha.machine import (
    MODES,
    OBSERVE,
    Event,
    Facts,
    IllegalTransition,
    Kind,
    Mode,
    Node,
    Policy,
    Probes,
    State,
    Timer,
    from_facts,
    refusal,
    transition,
)
from harbor_ha.machine.replicated import EVENTS

S = State
E = Event
REP = Policy(mode=Mode.REPLICATED)


def rep(**kw: object) -> Node:
    return replace(Node(policy=REP), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", list(Mode))
def test_every_mode_decides_each_of_its_pairs_exactly_once(mode: Mode) -> None:
    """In every mode's table each (state, event) pair of that mode is decided by rows or
    declared illegal, never both; no pair of the mode is left to a default."""
    table = MODES[mode]
    assert table.missing() == []
    assert set(table.table).isdisjoint(table.illegal)
    pairs = set(itertools.product(table.states, table.events))
    assert set(table.table) | set(table.illegal) == pairs


def test_every_observed_event_belongs_to_the_replicated_mode() -> None:
    """What an event tells the node in every state (OBSERVE: keepalived's role, maintenance,
    shutdown) is an event of the replicated mode too: the modes share that vocabulary."""
    assert set(OBSERVE) <= EVENTS


@pytest.mark.parametrize(
    "event", [E.STEP_DONE, E.STORAGE_LOST, E.LEASE_LOST, E.STANDBY_READY, E.RENEW_DUE]
)
def test_events_of_the_rbd_mode_are_illegal_in_the_replicated_mode(event: Event) -> None:
    """A step result, the storage's, the lease's or the standby readiness's event has no
    meaning without an image: the replicated machine refuses it (IllegalTransition)."""
    for state in (S.BACKUP, S.MASTER):
        with pytest.raises(IllegalTransition, match="replicated"):
            transition(rep(state=state), event)


def test_a_standby_not_yet_seen_healthy_keeps_the_fault_file_up_and_does_not_promote() -> None:
    """harbor_down (raised at start until the first verdict): the fault file is up, and
    keepalived's MASTER line does not promote; the first healthy verdict then does."""
    node = rep(harbor_down=True)
    assert node.fault_file_on
    node, actions = transition(node, E.KA_MASTER)
    assert (node.state, actions) == (S.BACKUP, ())
    node, actions = transition(node, E.HARBOR_HEALTHY)
    assert node.state is S.MASTER and not node.harbor_down and not node.fault_file_on
    assert actions == ()


def test_harbor_unhealthy_on_the_master_gives_the_vip_away_and_keeps_harbor() -> None:
    """A critical component failing on the MASTER: BACKUP with the fault file up (keepalived
    moves the VIP) and no action at all (no step: Harbor keeps running); healthy again,
    the fault file drops and the node is a standby again."""
    node, actions = transition(rep(state=S.MASTER, want_master=True), E.HARBOR_UNHEALTHY)
    assert node.state is S.BACKUP and node.harbor_down and node.fault_file_on
    assert node.failures == 1 and actions == ()
    node, _ = transition(node, E.KA_FAULT)
    node, actions = transition(node, E.HARBOR_HEALTHY)
    assert node.state is S.BACKUP and not node.fault_file_on and actions == ()


def test_an_unhealthy_standby_raises_its_fault_file() -> None:
    """The standby's own Harbor failing raises its fault file (a broken standby never takes
    the VIP), without leaving BACKUP."""
    node, actions = transition(rep(), E.HARBOR_UNHEALTHY)
    assert node.state is S.BACKUP and node.fault_file_on and actions == ()


def test_switchover_hands_the_vip_over_for_the_hold() -> None:
    """`harbor-ha switchover` on the MASTER: BACKUP with the fault up, the hold timer armed;
    its expiry clears the fault.  Refused outside MASTER."""
    node, actions = transition(rep(state=S.MASTER, want_master=True), E.SWITCHOVER)
    assert node.state is S.BACKUP and node.fault and node.fault_file_on
    assert [(a.kind, a.timer) for a in actions] == [(Kind.START_TIMER, Timer.BACKOFF)]
    assert refusal(node, E.SWITCHOVER) is not None
    node, _ = transition(node, E.BACKOFF_EXPIRED)
    assert not node.fault_file_on


def test_commands_of_the_rbd_mode_are_refused_in_the_replicated_mode() -> None:
    """`harbor-ha retry` (FENCED_SELF's demotion) means nothing without an image: refused
    with the mode named, never posted and silently ignored."""
    why = refusal(rep(), E.RETRY)
    assert why is not None and "replicated" in why


def test_shutdown_leaves_harbor_running_and_demotes_only_if_asked() -> None:
    """SHUTDOWN exits at once (Harbor keeps running); with demote_on_exit the MASTER first
    raises its fault (the VIP moves to the peer) and then exits."""
    node, actions = transition(rep(state=S.MASTER, want_master=True), E.SHUTDOWN)
    assert node.state is S.MASTER and [a.kind for a in actions] == [Kind.EXIT]
    node, actions = transition(rep(state=S.MASTER, demote_on_exit=True), E.SHUTDOWN)
    assert node.state is S.BACKUP and node.fault_file_on
    assert [a.kind for a in actions] == [Kind.EXIT]


def test_the_replicated_master_probes_harbor_and_the_standby_its_harbor() -> None:
    """The monitor's probes per state: MASTER the master's (Harbor), BACKUP Harbor's health
    on the standby (no Ceph readiness: there is no image)."""
    assert rep(state=S.MASTER).probes is Probes.MASTER
    assert rep().probes is Probes.HARBOR
    assert Node().probes is Probes.STANDBY


def test_random_walks_never_run_a_step_or_touch_the_storage() -> None:
    """Thousands of random events of the mode: the node stays in BACKUP or MASTER and the
    machine only arms its two timers, posts a VIP verdict or exits; MASTER only with Harbor
    seen up, keepalived wanting it, and no fault or maintenance."""
    rng = random.Random(20261207)
    events = sorted(EVENTS)
    allowed = {Kind.START_TIMER, Kind.POST, Kind.EXIT}
    for _ in range(200):
        node = rep(harbor_down=rng.random() < 0.5)
        for _ in range(50):
            before = node
            node, actions = transition(node, rng.choice(events))
            assert node.state in (S.BACKUP, S.MASTER)
            assert {a.kind for a in actions} <= allowed
            assert {a.timer for a in actions if a.timer} <= {Timer.BACKOFF, Timer.STABLE}
            if before.state is S.BACKUP and node.state is S.MASTER:
                assert node.may_promote, (before, node)


def test_a_vip_left_by_a_killed_keepalived_is_no_claim_while_the_peer_is_master() -> None:
    """Restarted after a crash (keepalived killed: it left the VIP on the interface) while the
    peer took over: the peer's /status says MASTER, so the node is a BACKUP keepalived did not
    elect (never a second MASTER, even for a moment), its fault file up until its Harbor is
    seen healthy; a peer that did not answer is no such fact."""
    facts = Facts(vip=True, mapped=False, mounted=False, harbor_running=True, peer_master=True)
    node, actions = from_facts(facts, policy=REP)
    assert node.state is S.BACKUP and not node.want_master and node.fault_file_on
    assert actions == ()
    node, _ = transition(node, E.HARBOR_HEALTHY)
    assert node.state is S.BACKUP and not node.fault_file_on
    unknown = replace(facts, peer_master=False)
    assert from_facts(unknown, policy=REP)[0].state is S.MASTER


def test_reconcile_in_the_replicated_mode() -> None:
    """The first state from facts: the VIP here with Harbor running is MASTER (a daemon
    restart is hitless); anything else is BACKUP with Harbor not yet seen healthy (the fault
    file up until the monitor's first verdict)."""
    node, actions = from_facts(Facts(vip=True, mapped=False, mounted=False,
                                     harbor_running=True), policy=REP)  # fmt: skip
    assert node.state is S.MASTER and not node.harbor_down and actions == ()
    for vip, running in ((True, False), (False, True), (False, False)):
        node, actions = from_facts(
            Facts(vip=vip, mapped=False, mounted=False, harbor_running=running), policy=REP
        )
        assert node.state is S.BACKUP and node.harbor_down and node.fault_file_on, (vip, running)
        assert all(a.kind is not Kind.START_TIMER or a.timer is not Timer.WATCH for a in actions)
