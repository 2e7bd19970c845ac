"""The one evaluator of every mode's table: ``transition(node, event) -> (node', actions)``.

The node's policy names its mode (``Policy.mode``); that mode's table (modes.py) decides:

1. ``OBSERVE[event]``: what the event tells the node whatever its state and mode.
2. ``table[(state, event)]``: rows tried in order; the first whose guard holds applies: its
   field changes, its actions, its target state.  Or ``illegal[(state, event)]``: the pair is
   illegal (IllegalTransition, with its reason).  An event or state the mode does not know is
   illegal too.
3. ``enter[state]``: entering a state from another applies its groups of rows the same way.
4. ``action_of[do]``: the concrete action of each row action.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from .modes import ModeTable
from .replicated import REPLICATED
from .rows import BUMP, Rows
from .shared import SHARED
from .states import Action, Event, IllegalTransition, Mode, Node, Result, State
from .table import OBSERVE, RBD

MODES: dict[Mode, ModeTable] = {Mode.RBD: RBD, Mode.REPLICATED: REPLICATED, Mode.SHARED: SHARED}
"""Every mode's table."""


def table_of(node: Node) -> ModeTable:
    return MODES[node.policy.mode]


def _apply(node: Node, fields: Mapping[str, object]) -> Node:
    out = {k: getattr(node, k) + 1 if v is BUMP else v for k, v in fields.items()}
    return replace(node, **out)  # type: ignore[arg-type]


def _take(
    node: Node, rows: Rows, event: Event | None, mode: ModeTable
) -> tuple[Node, tuple[Action, ...], State | None]:
    """Apply the first row whose guard holds; its target state (None: stay)."""
    row = next(r for r in rows if r.when is None or r.when(node))
    new = _apply(node, row.set)
    return new, tuple(mode.action_of[d](node, new, event) for d in row.do), row.to


def enter(node: Node) -> Result:
    """The node has just moved to ``node.state``: apply its entry rows."""
    mode = table_of(node)
    actions: tuple[Action, ...] = ()
    for rows in mode.enter.get(node.state, ()):
        node, acts, to = _take(node, rows, None, mode)
        actions += acts
        if to is not None and to is not node.state:
            node, more = enter(replace(node, state=to))
            return node, actions + more
    return node, actions


def transition(node: Node, event: Event) -> Result:
    """The one pure function: where ``event`` takes ``node``, and what to do about it.

    Raises IllegalTransition for a declared illegal (state, event) pair, or an event or
    state that the node's mode does not have.
    """
    mode = table_of(node)
    if event not in mode.events or node.state not in mode.states:
        raise IllegalTransition(node.state, event, f"not part of the {mode.mode} mode")
    why = mode.illegal.get((node.state, event))
    if why is not None:
        raise IllegalTransition(node.state, event, why)
    rows = mode.table[(node.state, event)]
    new, actions, to = _take(_apply(node, OBSERVE.get(event, {})), rows, event, mode)
    if to is None or to is node.state:
        return new, actions
    new, entry = enter(replace(new, state=to))
    return new, (*actions, *entry)


def refusal(node: Node, event: Event) -> str | None:
    """Why an operator command is refused in this state (None: it is accepted)."""
    mode = table_of(node)
    if event not in mode.events:
        return f"{event} has no meaning in the {mode.mode} mode"
    need = mode.requires.get(event)
    if need is None or node.state is need[0]:
        return None
    return f"{need[1]}; this node is {node.state}"
