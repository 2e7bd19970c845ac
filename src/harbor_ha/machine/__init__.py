"""The node's state machine: pure data and one pure function.  No I/O here.

``transition(node, event) -> (node', actions)``.  ``node`` is the whole decision state (an
immutable :class:`Node`): the state proper plus the few facts a transition needs (does
keepalived want us MASTER, is the fault flag up, are we rolling back, ...) and the timing
policy.  The driver (harbor_ha.daemon) performs the actions (run or cancel a step, arm or
cancel a timer, post an event, exit) and feeds the results back as events.

- ``states``: the vocabulary (State, Event, Step and its OUTCOMES, Timer, Action, Node, Policy).
- ``rows``: the language of the table (Row, Guard, Do, Decisions).
- ``table``: every decision, as tables (NEXT_ON_DONE, NEXT_ON_FAIL, ROLLBACK, OBSERVE, TABLE,
  ILLEGAL, ENTER, ACTION_OF).
- ``replicated``: the replicated mode's table (two Harbors, the VIP moves; no steps).
- ``modes``: what a mode's table is; ``evaluate``: the one evaluator of every mode.
- ``verdicts``: which event an observation is (storage findings, the lease's judgments).
- ``readiness``: the node's readiness verdict (the priority track file, /readiness, the ready
  metric, the event it tells) and whether a ready standby pre-creates Harbor's containers.
- ``reconcile``: the first state, from facts.
- ``diagram``: the state diagram of docs/state-diagram.md, generated from the table.
"""

from .evaluate import MODES, enter, refusal, table_of, transition
from .lease_rows import ROUTINE_EVENTS, ROUTINE_KINDS, promise_refusal
from .modes import ModeTable
from .reconcile import Facts, from_facts
from .rows import Decisions, Do, Guard, Row
from .states import (
    CANCEL,
    DEMOTING,
    EXIT,
    OUTCOMES,
    PROBE_OF,
    PROMOTING,
    STEP_OF,
    STEP_RESULTS,
    TIMER_EVENT,
    Action,
    Event,
    IllegalTransition,
    Kind,
    Mode,
    Node,
    Policy,
    Probes,
    Result,
    State,
    Step,
    Timer,
    run,
)
from .table import (
    ACTION_OF,
    ENTER,
    ILLEGAL,
    NEXT_ON_DONE,
    NEXT_ON_FAIL,
    OBSERVE,
    RBD,
    REQUIRES,
    ROLLBACK,
    TABLE,
    Clock,
    failover_clock,
)

__all__ = [
    "ACTION_OF",
    "CANCEL",
    "DEMOTING",
    "ENTER",
    "EXIT",
    "ILLEGAL",
    "MODES",
    "NEXT_ON_DONE",
    "NEXT_ON_FAIL",
    "OBSERVE",
    "OUTCOMES",
    "PROBE_OF",
    "PROMOTING",
    "RBD",
    "REQUIRES",
    "ROLLBACK",
    "ROUTINE_EVENTS",
    "ROUTINE_KINDS",
    "STEP_OF",
    "STEP_RESULTS",
    "TABLE",
    "TIMER_EVENT",
    "Action",
    "Clock",
    "Decisions",
    "Do",
    "Event",
    "Facts",
    "Guard",
    "IllegalTransition",
    "Kind",
    "Mode",
    "ModeTable",
    "Node",
    "Policy",
    "Probes",
    "Result",
    "Row",
    "State",
    "Step",
    "Timer",
    "enter",
    "failover_clock",
    "from_facts",
    "promise_refusal",
    "refusal",
    "run",
    "table_of",
    "transition",
]
