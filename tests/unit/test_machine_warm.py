"""The warm standby's rows: a ready BACKUP keeps Harbor's stateless services running (the WARM
action), and nothing else ever asks for it (safety rule 5: the data-bearing services start only
in the start step, on the verified mount)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harbor_ha.machine import Action, Event, Kind, Node, Policy, State, transition
from harbor_ha.machine.states import RBD_STATES

S = State
E = Event
WARM = Action(Kind.WARM, reason="standby ready")


def test_ready_standby_warms() -> None:
    """BACKUP + STANDBY_READY with warm_standby: one WARM action, the node unchanged."""
    node = Node(policy=Policy(warm_standby=True))
    new, actions = transition(node, E.STANDBY_READY)
    assert new == node
    assert actions == (WARM,)


@pytest.mark.parametrize(
    "node",
    [
        Node(policy=Policy(warm_standby=False)),
        Node(maintenance=True, fault=True),
        Node(exiting=True),
    ],
    ids=["setting-off", "maintenance", "exiting"],
)
def test_no_warm_when_off_in_maintenance_or_exiting(node: Node) -> None:
    """Warm standby off, a node in maintenance (the operator wants it idle) or one that is
    exiting: STANDBY_READY changes nothing and asks for nothing."""
    new, actions = transition(node, E.STANDBY_READY)
    assert new == node and actions == ()


@pytest.mark.parametrize("state", [s for s in RBD_STATES if s is not S.BACKUP])
def test_warm_only_in_backup(state: State) -> None:
    """In every other state (a step runs, the image is held, or the node is fenced) a late
    STANDBY_READY is a no-op: no WARM, no state change."""
    node = Node(state=state, want_master=state is not S.FENCED_SELF)
    new, actions = transition(node, E.STANDBY_READY)
    assert new.state is state and actions == ()


def test_warm_with_a_fault_flag_still_warms() -> None:
    """A BACKUP backing off after a failed promotion (fault flag, not maintenance) still keeps
    the stateless services up: they hold no data, and the next promotion is faster."""
    node = Node(fault=True, failures=1)
    _, actions = transition(node, E.STANDBY_READY)
    assert actions == (WARM,)


def test_warm_never_comes_with_a_step() -> None:
    """From BACKUP, the promotion (KA_MASTER) runs the lease step and does not warm; WARM only
    ever comes alone, from STANDBY_READY."""
    node = Node()
    new, actions = transition(replace(node), E.KA_MASTER)
    assert new.state is S.LEASING
    assert all(a.kind is not Kind.WARM for a in actions)
