"""A mode's table: the states and events it uses, its rows, its declared illegal pairs, its
entry rows and its actions.  The evaluator (evaluate.py) is the same for every mode; the node's
policy says which table decides (``Policy.mode``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .rows import Do, Rows
from .states import Action, Event, Mode, Node, State

ActionOf = Callable[[Node, Node, "Event | None"], Action]


@dataclass(frozen=True)
class ModeTable:
    mode: Mode
    states: frozenset[State]
    events: frozenset[Event]
    table: Mapping[tuple[State, Event], Rows]
    illegal: Mapping[tuple[State, Event], str]
    enter: Mapping[State, tuple[Rows, ...]]
    action_of: Mapping[Do, ActionOf]
    requires: Mapping[Event, tuple[State, str]]
    """Operator commands refused (not posted) outside a state."""

    def missing(self) -> list[tuple[State, Event]]:
        """The pairs of states x events decided neither by rows nor as illegal (a complete
        table has none)."""
        return [
            (s, e)
            for s in sorted(self.states, key=list(State).index)
            for e in sorted(self.events, key=list(Event).index)
            if (s, e) not in self.table and (s, e) not in self.illegal
        ]
