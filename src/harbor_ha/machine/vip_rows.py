"""The VIP tick's rows, the same in every mode: count consecutive ticks where the VIP
disagrees with the state; act on the ``vip_mismatch_ticks``-th as if keepalived had written
the line (a missed FIFO line must not matter)."""

from __future__ import annotations

from collections.abc import Iterable

from .rows import BUMP, KEEPALIVED_HERE, MISMATCH_DUE, UNWANTED, WANTED, Decisions, Do, Row, changes
from .states import Event, State

E = Event


def add_vip_rows(
    table: Decisions,
    *,
    standby: Iterable[State],
    holding: Iterable[State],
    not_holding: Iterable[State],
    others: Iterable[State],
) -> None:
    """``standby``: the states where a VIP seen is a mismatch (keepalived did not say MASTER);
    ``holding``: where a VIP absent is one (keepalived said MASTER); ``not_holding``: where
    an absent VIP is expected; ``others``: every state but ``standby`` (a VIP seen there is
    no mismatch)."""
    table.rows(
        standby,
        E.VIP_SEEN,
        Row(
            set=changes(vip_mismatch=0),
            do=(Do.POST_VERDICT,),
            when=UNWANTED & MISMATCH_DUE & KEEPALIVED_HERE,
        ),
        Row(set=changes(vip_mismatch=BUMP), when=UNWANTED & KEEPALIVED_HERE),
        Row(set=changes(vip_mismatch=0)),
    )
    table.rows(
        holding,
        E.VIP_ABSENT,
        Row(set=changes(vip_mismatch=0), do=(Do.POST_VERDICT,), when=WANTED & MISMATCH_DUE),
        Row(set=changes(vip_mismatch=BUMP), when=WANTED),
        Row(set=changes(vip_mismatch=0)),
    )
    # No mismatch to count: a VIP seen outside the standby (a node holding or releasing it),
    # a VIP absent where the node holds nothing.
    table.rows(others, E.VIP_SEEN, Row(set=changes(vip_mismatch=0)))
    table.rows(not_holding, E.VIP_ABSENT, Row(set=changes(vip_mismatch=0)))
