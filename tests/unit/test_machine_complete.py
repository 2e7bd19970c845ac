"""The table is complete: every (state, event) pair is decided once, either by rows or as a
declared illegal pair, and the declared illegal pairs are exactly those transition refuses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harbor_ha.machine import (
    ENTER,
    ILLEGAL,
    OUTCOMES,
    STEP_OF,
    STEP_RESULTS,
    TABLE,
    Decisions,
    Event,
    IllegalTransition,
    Node,
    Policy,
    State,
    transition,
)
from harbor_ha.machine.rows import STAY
from harbor_ha.machine.states import RBD_EVENTS, RBD_STATES

S = State
E = Event

PAIRS = [(s, e) for s in RBD_STATES for e in RBD_EVENTS]

NODES = [
    Node(),
    Node(want_master=True),
    Node(want_master=True, failures=2, vip_mismatch=1),
    Node(fault=True, rollback=True, failures=1),
    Node(maintenance=True, handover=True),
    Node(exiting=True, demote_on_exit=True),
    Node(promised=True, want_master=True),
    Node(failsafe_held=True, lease_lost=True, awaiting_release=True),
    Node(keepalived_gone=True, policy=Policy(failsafe=True, warm_standby=False)),
]
"""Nodes whose flags reach every guard of the table."""


def test_every_pair_is_decided_exactly_once() -> None:
    """Each State x Event pair is in exactly one of TABLE (rows) and ILLEGAL (declared
    illegal): no pair is left to a default, none is both."""
    missing = [p for p in PAIRS if p not in TABLE and p not in ILLEGAL]
    both = [p for p in PAIRS if p in TABLE and p in ILLEGAL]
    assert missing == []
    assert both == []
    assert set(TABLE) | set(ILLEGAL) == set(PAIRS)


def test_every_illegal_pair_says_why() -> None:
    """A declared illegal pair carries its reason, and IllegalTransition names it."""
    for (state, event), why in ILLEGAL.items():
        assert why.strip(), (state, event)
        with pytest.raises(IllegalTransition) as info:
            transition(Node(state=state), event)
        assert (info.value.state, info.value.event) == (state, event)
        assert why in str(info.value)


@pytest.mark.parametrize("node", NODES, ids=range(len(NODES)))
def test_illegal_pairs_raise_whatever_the_flags(node: Node) -> None:
    """An illegal pair raises IllegalTransition whatever the node's flags: legality depends
    on the state and the event only."""
    for state, event in ILLEGAL:
        with pytest.raises(IllegalTransition):
            transition(replace(node, state=state), event)


@pytest.mark.parametrize("node", NODES, ids=range(len(NODES)))
def test_legal_pairs_go_where_their_rows_say(node: Node) -> None:
    """A pair in TABLE never raises, and the node ends in the pair's state, a row's target,
    or where entering that target leads (BACKUP's arrival may go on to LEASING)."""
    for (state, event), rows in TABLE.items():
        assert rows, (state, event)
        new, _ = transition(replace(node, state=state), event)
        targets = {state} | {r.to for r in rows if r.to is not None}
        entered = {r.to for t in targets for g in ENTER.get(t, ()) for r in g if r.to is not None}
        assert new.state in targets | entered, (state, event, new.state)


def test_step_results_are_illegal_exactly_where_no_step_runs() -> None:
    """STEP_DONE, STEP_FAILED and STEP_TIMEOUT are decided in the states that run a step and
    declared illegal in the others (BACKUP, MASTER, FENCED_SELF)."""
    for event in (E.STEP_DONE, E.STEP_FAILED, E.STEP_TIMEOUT):
        assert {s for s in RBD_STATES if (s, event) in ILLEGAL} == set(RBD_STATES) - set(STEP_OF)


def test_a_pair_cannot_be_decided_twice() -> None:
    """Writing a second decision for a pair (rows over rows, or illegal over rows) is an
    error at import, never a silent replacement."""
    table = Decisions()
    table.rows([S.BACKUP], E.KA_MASTER, STAY)
    with pytest.raises(ValueError, match="decided twice"):
        table.rows([S.BACKUP], E.KA_MASTER, STAY)
    with pytest.raises(ValueError, match="decided twice"):
        table.illegal([S.BACKUP], E.KA_MASTER, "no")
    table.illegal([S.MASTER], E.RETRY, "no")
    with pytest.raises(ValueError, match="decided twice"):
        table.rows([S.MASTER], E.RETRY, STAY)


def test_a_step_outcome_is_legal_exactly_where_a_step_declaring_it_runs() -> None:
    """Each event a step may end with (OUTCOMES) has rows in the state running that step, and
    is illegal in every state whose step does not declare it (and where no step runs)."""
    outcomes = {ev for evs in OUTCOMES.values() for ev in evs}
    assert outcomes >= STEP_RESULTS
    for event in outcomes:
        for state in RBD_STATES:
            step = STEP_OF.get(state)
            declared = step is not None and event in OUTCOMES[step]
            assert ((state, event) in TABLE) is declared, (state, event)
