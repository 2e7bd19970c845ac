"""Write the machine's table as Markdown: a Mermaid state diagram and the rows, generated.

    python -m harbor_ha.machine.diagram > docs/state-diagram.md

scripts/test fails when the committed file differs from this output.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from .rows import MAY_PROMOTE, Row
from .states import STEP_OF, TIMER_EVENT, Event, State
from .table import ENTER, ILLEGAL, OBSERVE, REQUIRES, REST, TABLE

HEADER = """\
# The state machine

Generated from `src/harbor_ha/machine/table.py` by `python -m harbor_ha.machine.diagram`;
do not edit (scripts/test fails when this file is stale).
"""


def _label(row: Row) -> str:
    return f"[{row.when}]" if row.when is not None else ""


def _sets(row: Row) -> str:
    return ", ".join(
        f"{k}={v!r}" if not isinstance(v, bool) else f"{k}={v}" for k, v in row.set.items()
    )


def mermaid() -> list[str]:
    edges: dict[tuple[State, State], list[str]] = defaultdict(list)
    for (state, event), rows in TABLE.items():
        for row in rows:
            if row.to is not None and row.to is not state:
                edges[(state, row.to)].append(f"{event}{_label(row)}")
    out = ["```mermaid", "stateDiagram-v2", "    [*] --> BACKUP: reconcile (from facts)"]
    for (src, dst), labels in sorted(
        edges.items(), key=lambda kv: (_order(kv[0][0]), _order(kv[0][1]))
    ):
        out.append(f"    {src} --> {dst}: {', '.join(sorted(set(labels)))}")
    out.append(f"    note right of BACKUP: on arrival, {MAY_PROMOTE} goes on to {_promote_to()}")
    out.append("```")
    return out


def _promote_to() -> State:
    """Where BACKUP goes on arrival when it may promote: read from the table, not restated."""
    return next(r.to for r in REST if r.when is MAY_PROMOTE and r.to is not None)


def _order(state: State) -> int:
    return list(State).index(state)


def rows_table() -> list[str]:
    out = [
        "| state | event | when | to | sets | does |",
        "|---|---|---|---|---|---|",
    ]
    for state in State:
        for event in Event:
            rows = TABLE.get((state, event))
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
    lines = [HEADER, "## Diagram", "", *mermaid(), ""]
    lines += ["## Rows", ""]
    lines += [
        "Every (state, event) pair has rows or is illegal (below); none is left to a default.  "
        "Rows that change nothing (a state that ignores the event: it changes nothing but what "
        "the event observes, below) are written in the table, each with why, and not listed "
        "here.  Rows of one pair are tried in order; the first whose guard holds applies.",
        "",
        *rows_table(),
        "",
        "## What each event observes, in every state",
        "",
        "| event | sets |",
        "|---|---|",
    ]
    lines += [
        f"| {ev} | {', '.join(f'{k}={v}' for k, v in ch.items())} |" for ev, ch in OBSERVE.items()
    ]
    lines += [
        "",
        "## Entering a state",
        "",
        "On entering a state from another, each group of rows applies its first row whose guard "
        "holds, in order (`run_step` runs the state's step).",
        "",
        "| state | step | groups |",
        "|---|---|---|",
    ]
    for state in State:
        groups = " **then** ".join(
            " / ".join(str(r) for r in rows) for rows in ENTER.get(state, ())
        )
        lines.append(f"| {state} | {STEP_OF.get(state, '')} | {groups} |")
    lines += ["", "## Timers", "", "| timer | posts |", "|---|---|"]
    lines += [f"| {timer} | {event} |" for timer, event in TIMER_EVENT.items()]
    lines += ["", "## Illegal pairs (IllegalTransition: logged and ignored)", ""]
    for event in Event:
        by_why: dict[str, list[str]] = defaultdict(list)
        for s in State:
            if (s, event) in ILLEGAL:
                by_why[ILLEGAL[(s, event)]].append(str(s))
        for why, bad in by_why.items():
            lines.append(f"- {event} in {', '.join(bad)}: {why}")
    lines += ["", "## Operator commands refused", ""]
    lines += [f'- {ev} outside {need}: "{why}"' for ev, (need, why) in REQUIRES.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
