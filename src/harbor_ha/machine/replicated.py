"""The replicated mode's table: two Harbors, each on its own storage, replicating to each
other through Harbor's API; keepalived moves the VIP.

Each node runs its whole Harbor all the time.  There is no Ceph, lease, fence, map or mount,
so no step: the machine has two states.

- BACKUP: the VIP is elsewhere.  The monitor probes this node's Harbor; while it is not (yet)
  seen healthy (``harbor_down``, raised at start until the first verdict) the fault track file
  is up, so keepalived never gives this node the VIP.
- MASTER: the VIP is here and Harbor is healthy.  Harbor unhealthy (the critical components,
  debounced), keepalived's role lost, a switchover or maintenance: back to BACKUP, which only
  gives the VIP away (the fault file, or keepalived's own decision); Harbor keeps running.

The VIP tick, keepalived's lines, timers and operator commands mean what they mean in the
rbd mode (table.py); the rows below decide each (state, event) pair of this mode once.
"""

from __future__ import annotations

from dataclasses import replace

from .modes import ModeTable
from .rows import (
    BUMP,
    DEMOTE_ON_EXIT,
    EXITING,
    HAS_FAILURES,
    MAY_PROMOTE,
    STAY,
    Decisions,
    Do,
    Guard,
    Row,
    Rows,
    changes,
)
from .states import Event, Mode, State
from .table import ACTION_OF, REQUIRES
from .vip_rows import add_vip_rows

S = State
E = Event

STATES = frozenset({S.BACKUP, S.MASTER})
EVENTS = frozenset(
    {
        E.KA_MASTER, E.KA_BACKUP, E.KA_FAULT, E.KA_STOP, E.KA_GONE, E.KA_RETURNED,
        E.HARBOR_HEALTHY, E.HARBOR_UNHEALTHY,
        E.VIP_SEEN, E.VIP_ABSENT,
        E.BACKOFF_EXPIRED, E.MASTER_STABLE,
        E.SWITCHOVER, E.MAINTENANCE_ON, E.MAINTENANCE_OFF, E.SHUTDOWN,
    }
)  # fmt: skip
"""The events of this mode: no step results, no storage, lease, failsafe or standby
readiness events (the driver never posts them here: they would be illegal)."""

PROMOTABLE_WHEN_UP = Guard(
    "may_promote once harbor is up",
    lambda n: replace(n, harbor_down=False).may_promote,
)
"""Harbor is healthy again and nothing else stops the node (keepalived wants it MASTER)."""

REST: Rows = (Row(do=(Do.EXIT,), when=EXITING), Row(S.MASTER, when=MAY_PROMOTE), STAY)
"""BACKUP: exit if asked to; MASTER if keepalived wants us and nothing stops us (fault,
maintenance, Harbor down, exiting)."""

UNHEALTHY = changes(harbor_down=True, failures=BUMP)

_DECIDE = Decisions()
_rows = _DECIDE.rows

# keepalived: MASTER -> MASTER at once (Harbor runs and was seen healthy: may_promote).
_rows([S.BACKUP], E.KA_MASTER, *REST)
_rows([S.MASTER], E.KA_MASTER, STAY)
for _ev in (E.KA_BACKUP, E.KA_FAULT, E.KA_STOP, E.KA_GONE):
    _rows([S.MASTER], _ev, Row(S.BACKUP))
    _rows([S.BACKUP], _ev, STAY)
_rows(STATES, E.KA_RETURNED, STAY)

# Harbor's verdict, on either node: the fault file follows it (harbor_down).
_rows([S.MASTER], E.HARBOR_UNHEALTHY, Row(S.BACKUP, UNHEALTHY))
_rows([S.BACKUP], E.HARBOR_UNHEALTHY, Row(set=changes(harbor_down=True)))
_rows([S.MASTER], E.HARBOR_HEALTHY, STAY)
_rows(
    [S.BACKUP],
    E.HARBOR_HEALTHY,
    Row(S.MASTER, changes(harbor_down=False), when=PROMOTABLE_WHEN_UP),
    Row(set=changes(harbor_down=False)),
)

add_vip_rows(
    _DECIDE, standby=[S.BACKUP], holding=[S.MASTER], not_holding=[S.BACKUP], others=[S.MASTER]
)

# timers: the switchover hold is over; MASTER held long enough to forget past failures.
_rows([S.BACKUP], E.BACKOFF_EXPIRED, Row(set=changes(fault=False)))
_rows([S.MASTER], E.BACKOFF_EXPIRED, STAY)
_rows([S.MASTER], E.MASTER_STABLE, Row(set=changes(failures=0)))
_rows([S.BACKUP], E.MASTER_STABLE, STAY)

# operator.  Switchover: raise the fault for switchover_hold_s (keepalived gives the VIP to
# the peer; nothing to flush first: the peer's Harbor has its own data).
_rows([S.MASTER], E.SWITCHOVER, Row(S.BACKUP, changes(fault=True), (Do.HOLD,)))
_rows([S.BACKUP], E.SWITCHOVER, STAY)  # refused outside MASTER (REQUIRES); a late one
_rows([S.MASTER], E.MAINTENANCE_ON, Row(S.BACKUP))  # observed: the fault file rises
_rows([S.BACKUP], E.MAINTENANCE_ON, STAY)
_rows(STATES, E.MAINTENANCE_OFF, STAY)  # observed; keepalived elects again
# Shutdown: Harbor keeps running; with demote_on_exit the fault stays up after the exit, so
# the VIP moves to the peer.
_rows([S.BACKUP], E.SHUTDOWN, Row(do=(Do.EXIT,)))
_rows([S.MASTER], E.SHUTDOWN, Row(S.BACKUP, changes(fault=True), when=DEMOTE_ON_EXIT),
      Row(do=(Do.EXIT,)))  # fmt: skip

ENTER: dict[State, tuple[Rows, ...]] = {
    S.BACKUP: (REST,),
    S.MASTER: ((Row(do=(Do.ARM_STABLE,), when=HAS_FAILURES), STAY),),
}
"""Entering a state: BACKUP rests (exit, or MASTER again if keepalived wants it and Harbor is
up); MASTER arms the stable timer after failures (a flapping Harbor is remembered)."""

REPLICATED = ModeTable(
    mode=Mode.REPLICATED,
    states=STATES,
    events=EVENTS,
    table=_DECIDE.table,
    illegal=_DECIDE.illegal_pairs,
    enter=ENTER,
    action_of={d: ACTION_OF[d] for d in (Do.HOLD, Do.ARM_STABLE, Do.POST_VERDICT, Do.EXIT)},
    requires={E.SWITCHOVER: REQUIRES[E.SWITCHOVER]},
)
"""The replicated mode: two states, no steps."""
