"""The node's readiness is the machine's decision (machine/readiness.py): the priority track
file's value, a standby's verdict and the event it tells, and whether a ready standby
pre-creates Harbor's containers now.  Every state of every mode is decided."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from harbor_ha.machine import MODES, STEP_OF, Event, Mode, Node, Policy, Probes, State, transition
from harbor_ha.machine.readiness import (
    JUDGES_READINESS,
    Readiness,
    harbor_readiness,
    precreate_now,
    priority,
    standby_readiness,
)

E = Event
S = State
VERDICTS = (True, False, None)


def nodes() -> list[Node]:
    """One node in every state of every mode."""
    return [
        Node(state=state, policy=Policy(mode=mode))
        for mode, table in MODES.items()
        for state in sorted(table.states, key=list(State).index)
    ]


def test_priority_is_one_only_for_a_fit_node_that_probes() -> None:
    """The priority file reads 1 exactly when the node probes its role (MASTER, a standby) and
    the verdict is fit; an unfit or unknown verdict, or a state probing nothing, reads 0."""
    for probes, fit in itertools.product(Probes, VERDICTS):
        assert priority(probes, fit) is (probes is not Probes.NONE and fit is True), (probes, fit)


def test_every_state_of_every_mode_has_its_priority_decided() -> None:
    """Each state of each mode probes something or nothing (PROBES_BY_MODE), and the priority
    of its unknown verdict is 0; the states probing nothing are exactly those running a step
    and FENCED_SELF (a node that cannot take over never wins an election), and the shared
    mode's DOWN and DRAINING (no keepalived, no standby role: nothing to judge)."""
    idle_shared = {S.DOWN, S.DRAINING}
    for node in nodes():
        probes = node.probes
        assert priority(probes, None) is False
        none = node.state in STEP_OF or node.state is S.FENCED_SELF
        none = none or (node.policy.mode is Mode.SHARED and node.state in idle_shared)
        assert (probes is Probes.NONE) is none, node.state
        assert priority(probes, True) is not none


def test_a_ready_standby_tells_the_machine_once_per_period_and_on_recovery() -> None:
    """rbd BACKUP: no problem -> ready, priority 1, STANDBY_READY on the period's first check
    or after a verdict other than ready (not ready, none yet); a pass after a pass in the same
    period tells nothing new."""
    first = standby_readiness([], was=True, first=True)
    assert first == Readiness(True, (), True, E.STANDBY_READY)
    assert standby_readiness([], was=True, first=False).tell is None
    assert standby_readiness([], was=False, first=False).tell is E.STANDBY_READY
    assert standby_readiness([], was=None, first=False).tell is E.STANDBY_READY


def test_a_standby_with_a_problem_is_not_ready_and_its_priority_drops() -> None:
    """Any failed readiness fact (safety rule 9): not ready, priority 0, the problems kept in
    order for /readiness and /status, nothing told to the machine (the first check too)."""
    problems = ["ceph: no monitor reachable", "docker engine not answering"]
    for was, first in itertools.product(VERDICTS, (True, False)):
        verdict = standby_readiness(problems, was=was, first=first)
        assert verdict == Readiness(False, tuple(problems), False, None)


@pytest.mark.parametrize(("healthy", "down"), list(itertools.product(VERDICTS, (True, False))))
def test_a_replicated_standby_follows_its_harbor(healthy: bool | None, down: bool) -> None:
    """replicated BACKUP: ready (priority 1) only when its Harbor is healthy; not judged yet
    is not ready.  The machine hears HARBOR_HEALTHY only when it holds harbor_down, and
    HARBOR_UNHEALTHY only when it does not: a verdict it already holds tells nothing."""
    node = Node(policy=Policy(mode=Mode.REPLICATED), harbor_down=down)
    verdict = harbor_readiness(node, healthy, "core: unhealthy")
    assert verdict.ready is verdict.priority is (healthy is True)
    assert verdict.problems == (() if healthy else ("harbor: core: unhealthy",))
    want: dict[tuple[bool | None, bool], Event] = {
        (True, True): E.HARBOR_HEALTHY,
        (False, False): E.HARBOR_UNHEALTHY,
    }
    assert verdict.tell is want.get((healthy, down))


def test_what_a_verdict_tells_is_decided_where_it_is_judged() -> None:
    """Every event a readiness verdict may tell is legal (rows, not an illegal pair) in every
    state of every mode whose probes judge readiness, so the machine decides each."""
    told = {
        Probes.STANDBY: (E.STANDBY_READY,),
        Probes.HARBOR: (E.HARBOR_HEALTHY, E.HARBOR_UNHEALTHY),
    }
    assert set(told) == JUDGES_READINESS
    judged = [n for n in nodes() if n.probes in JUDGES_READINESS]
    assert {(n.policy.mode, n.state) for n in judged} == {
        (Mode.RBD, S.BACKUP),
        (Mode.REPLICATED, S.BACKUP),
    }
    for node in judged:
        for event in told[node.probes]:
            transition(node, event)  # raises IllegalTransition if undecided


def test_precreate_only_on_a_ready_rbd_standby_not_again_after_a_failure() -> None:
    """A precreate runs exactly on an rbd BACKUP whose verdict is ready, with the setting
    on, and not in a BACKUP period whose precreate failed; never in another state or mode."""
    ready, broken = (
        standby_readiness([], was=None, first=True),
        standby_readiness(["docker engine not answering"], was=None, first=True),
    )
    for node, verdict, enabled, failed in itertools.product(
        nodes(), (ready, broken), (True, False), (True, False)
    ):
        want = (
            node.policy.mode is Mode.RBD
            and node.state is S.BACKUP
            and verdict.ready
            and enabled
            and not failed
        )
        got = precreate_now(node, verdict, enabled=enabled, failed_this_period=failed)
        assert got is want, (node.policy.mode, node.state, verdict.ready, enabled, failed)


def test_precreate_ignores_the_flags_the_warm_rows_read() -> None:
    """The precreate decision is the standby's readiness and its own setting only: a ready
    rbd BACKUP in maintenance or with the fault flag up still pre-creates (the containers
    are created, never started)."""
    ready = standby_readiness([], was=None, first=True)
    for node in (replace(Node(), maintenance=True), replace(Node(), fault=True)):
        assert precreate_now(node, ready, enabled=True, failed_this_period=False)
