"""Write every mode's table as Markdown: a Mermaid state diagram and the rows, generated.

    python -m harbor_ha.machine.diagram > docs/state-diagram.md

scripts/test fails when the committed file differs from this output.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from .evaluate import MODES
from .modes import ModeTable
from .rows import Row
from .states import STEP_OF, TIMER_EVENT, Event, Mode, State
from .table import OBSERVE

HEADER = """\
# The state machine

Generated from the modes' tables (`src/harbor_ha/machine/table.py` and `lease_rows.py`: the
rbd mode; `replicated.py`: the replicated mode; `shared.py`: the shared mode) by
`python -m harbor_ha.machine.diagram`; do not edit (scripts/test fails when this file is
stale).  The settings' `HARBOR_HA_MODE` picks the table; the evaluator is the same.
"""

SOURCES = {
    Mode.RBD: "table.py, lease_rows.py",
    Mode.REPLICATED: "replicated.py",
    Mode.SHARED: "shared.py",
}
FIRST = {Mode.RBD: State.BACKUP, Mode.REPLICATED: State.BACKUP, Mode.SHARED: State.DOWN}
"""The state the diagram starts from (reconcile may start elsewhere, from facts)."""


def _label(row: Row) -> str:
    return f"[{row.when}]" if row.when is not None else ""


def _sets(row: Row) -> str:
    return ", ".join(
        f"{k}={v!r}" if not isinstance(v, bool) else f"{k}={v}" for k, v in row.set.items()
    )


def mermaid(mode: ModeTable) -> list[str]:
    edges: dict[tuple[State, State], list[str]] = defaultdict(list)
    for (state, event), rows in mode.table.items():
        for row in rows:
            if row.to is not None and row.to is not state:
                edges[(state, row.to)].append(f"{event}{_label(row)}")
    first = FIRST[mode.mode]
    out = ["```mermaid", "stateDiagram-v2", f"    [*] --> {first}: reconcile (from facts)"]
    for (src, dst), labels in sorted(
        edges.items(), key=lambda kv: (_order(kv[0][0]), _order(kv[0][1]))
    ):
        out.append(f"    {src} --> {dst}: {', '.join(sorted(set(labels)))}")
    rest = _rest(mode, first)
    if rest is not None:
        out.append(f"    note right of {first}: on arrival, {rest[0]} goes on to {rest[1]}")
    out.append("```")
    return out


def _rest(mode: ModeTable, first: State) -> tuple[str, State] | None:
    """Where the first state goes on arrival, and when: read from the table, not restated."""
    rows = (r for group in mode.enter[first] for r in group)
    row = next((r for r in rows if r.when is not None and r.to is not None), None)
    return None if row is None or row.to is None else (str(row.when), row.to)


def _order(state: State) -> int:
    return list(State).index(state)


def rows_table(mode: ModeTable) -> list[str]:
    out = [
        "| state | event | when | to | sets | does |",
        "|---|---|---|---|---|---|",
    ]
    for state in State:
        for event in Event:
            rows = mode.table.get((state, event))
            if rows is None:
                continue
            for row in rows:
                if row == Row():
                    continue
                out.append(
                    f"| {state} | {event} | {row.when or ''} | {row.to or '(stay)'} | "
                    f"{_sets(row)} | {', '.join(str(d) for d in row.do)} |"
                )
    return out


def render() -> str:
    lines = [HEADER]
    for mode in MODES.values():
        lines += render_mode(mode)
    lines += [
        "## What each event observes, in every state and mode",
        "",
        "| event | sets |",
        "|---|---|",
    ]
    lines += [
        f"| {ev} | {', '.join(f'{k}={v}' for k, v in ch.items())} |" for ev, ch in OBSERVE.items()
    ]
    lines += ["", "## Timers", "", "| timer | posts |", "|---|---|"]
    lines += [f"| {timer} | {event} |" for timer, event in TIMER_EVENT.items()]
    return "\n".join(lines) + "\n"


def render_mode(mode: ModeTable) -> list[str]:
    states = [s for s in State if s in mode.states]
    events = [e for e in Event if e in mode.events]
    lines = [f"## The {mode.mode} mode ({SOURCES[mode.mode]})", ""]
    lines += [f"States: {', '.join(states)}.", ""]
    if len(events) < len(Event):
        lines += [f"Events: {', '.join(events)} (any other is illegal in this mode).", ""]
    lines += ["### Diagram", "", *mermaid(mode), ""]
    lines += ["### Rows", ""]
    lines += [
        "Every (state, event) pair has rows or is illegal (below); none is left to a default.  "
        "Rows that change nothing (a state that ignores the event: it changes nothing but what "
        "the event observes) are written in the table, each with why, and not listed "
        "here.  Rows of one pair are tried in order; the first whose guard holds applies.",
        "",
        *rows_table(mode),
        "",
        "### Entering a state",
        "",
        "On entering a state from another, each group of rows applies its first row whose guard "
        "holds, in order (`run_step` runs the state's step).",
        "",
        "| state | step | groups |",
        "|---|---|---|",
    ]
    for state in states:
        groups = " **then** ".join(
            " / ".join(str(r) for r in rows) for rows in mode.enter.get(state, ())
        )
        lines.append(f"| {state} | {STEP_OF.get(state, '')} | {groups} |")
    lines += ["", "### Illegal pairs (IllegalTransition: logged and ignored)", ""]
    for event in events:
        by_why: dict[str, list[str]] = defaultdict(list)
        for s in states:
            if (s, event) in mode.illegal:
                by_why[mode.illegal[(s, event)]].append(str(s))
        for why, bad in by_why.items():
            lines.append(f"- {event} in {', '.join(bad)}: {why}")
    if not mode.illegal:
        lines.append("None: every pair of the mode's states and events has rows.")
    lines += ["", "### Operator commands refused", ""]
    lines += [f'- {ev} outside {need}: "{why}"' for ev, (need, why) in mode.requires.items()]
    return [*lines, ""]


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
