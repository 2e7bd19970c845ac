"""The leadership lease in the two-node lab (issue 10, docs/design.md "The lease").

- a partition between the nodes, both reaching Ceph: the standby finds the master renewing
  the lease, is refused, keeps its fault (VIP given up) and waits: no promotion, no fence,
  the client answered throughout, nothing moves after the heal (20 s in CI, 120 s full);
- the whole Ceph cluster frozen (mon and OSD SIGSTOPped) for 60 s: no failover, no fence;
- the master cut from Ceph: it stops Harbor (its lease deadline) before the peer starts it,
  from both nodes' log timestamps, and the peer serves within 24 s of the cut.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import lab
from lab import LabState, NodeState, timeline
from lab.client import Client
from tests.faults import faultlab as fl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SAMPLE_S = 0.5


def promotions(tails: dict[str, fl.LogTail]) -> int:
    return sum(1 for t in tails.values() for r in t.transitions() if r.get("to") == "MASTER")


def fences(tails: dict[str, fl.LogTail]) -> int:
    return sum(t.count("fenced") for t in tails.values())


def sample_client(
    st: LabState, client: Client, seconds: float, standby: str
) -> tuple[int, int, int]:
    """(samples, answered, samples where the standby held the VIP) over ``seconds``."""
    n = ok = standby_vip = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        ok += client.check().ok
        standby_vip += standby in lab.vip_holders(st)
        n += 1
        time.sleep(max(0.0, SAMPLE_S - (time.monotonic() - started)))
    return n, ok, standby_vip


def quiet_after(tails: dict[str, fl.LogTail], seconds: float) -> list[str]:
    """The transitions in the ``seconds`` after now (nothing should move)."""
    for t in tails.values():
        t.read()
    marks = {n: len(t.transitions()) for n, t in tails.items()}
    time.sleep(seconds)
    return [
        f"{n}: {r['from']}>{r['to']}" for n, t in tails.items() for r in t.transitions()[marks[n] :]
    ]


def partition_case(st: LabState, record: Any, seconds: float, answered: float) -> None:
    master = fl.serving(st)
    standby = fl.other(st, master)
    tails = {n: fl.LogTail(st.nodes[n].log) for n in st.nodes}
    with fl.Watch(st) as watch, fl.client_for(st) as client:
        with fl.real_partition(st):
            n, ok, standby_vip = sample_client(st, client, seconds, standby)
            refused = tails[standby].count("lease_held_by_peer")
            vip_at_end = lab.vip_holders(st)
        moved = quiet_after(tails, 20)
        conv = fl.wait_converged(st, 60, client)
    promoted, fenced = promotions(tails), fences(tails)
    record(
        injected=f"partition between the nodes ({seconds:g} s, iptables DROP both ways), both "
        "reaching Ceph",
        expected=f"0 promotions, 0 fences; client answered >= {answered:.0%}; the standby's "
        "VIP down; nothing moves after the heal",
        observed=f"promotions {promoted}, fences {fenced}; client answered {ok}/{n}; "
        f"standby held the VIP in {standby_vip}/{n} samples, VIP on {vip_at_end} at the end; "
        f"lease refusals on {standby}: {refused}; after the heal: {moved or 'nothing moved'}",
        figures=f"answered {100 * ok / max(n, 1):.1f} %; heal -> converged {conv:.1f} s",
    )
    assert promoted == 0 and fenced == 0
    assert refused >= 1, "the partition never made the standby try (the premise is not met)"
    assert ok >= answered * n, f"{ok}/{n}"
    assert vip_at_end == [master]
    assert moved == []
    assert not watch.violations


def test_partition_short_no_promotion_no_fence(fault_lab: LabState, record: Any) -> None:
    """The CI case: a 20 s partition, both nodes reaching Ceph: the standby is refused the
    lease (the master renews it), gives up the VIP and waits: no promotion, no fence, the
    client answered in >= 95 % of the 40 samples (the refused standby's keepalived holds the
    VIP for a moment: one sample may miss), and nothing moves after the heal."""
    partition_case(fault_lab, record, 20, 0.95)


@pytest.mark.full
def test_partition_120s_no_promotion_no_fence(fault_lab: LabState, record: Any) -> None:
    """Issue 10 test 1: the same for 120 s, the client answered in >= 99 % of samples
    (finding 2: a partition used to flap)."""
    partition_case(fault_lab, record, 120, 0.99)


@contextmanager
def frozen_ceph(st: LabState) -> Iterator[None]:
    pids = list(st.ceph_pids.values())
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


@pytest.mark.full
def test_whole_ceph_frozen_60s_no_failover(fault_lab: LabState, record: Any) -> None:
    """Issue 10 test 3: mon and OSD SIGSTOPped for 60 s: nobody can take over, so no
    failover and no fence; the client keeps its answers through the VIP in >= 95 % of
    samples; after the thaw nothing moves."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    tails = {n: fl.LogTail(st.nodes[n].log) for n in st.nodes}
    with fl.Watch(st) as watch, fl.client_for(st) as client:
        with frozen_ceph(st):
            n, ok, _ = sample_client(st, client, 60, standby)
        moved = quiet_after(tails, 30)
        conv = fl.wait_converged(st, 120, client)
    promoted, fenced = promotions(tails), fences(tails)
    demoted = [
        f"{n_}: {r['from']}>{r['to']}"
        for n_, t in tails.items()
        for r in t.transitions()
        if r.get("from") == "MASTER"
    ]
    confirmed = sum(t.count("failsafe_request") for t in tails.values())
    record(
        injected="whole Ceph frozen (mon and OSD SIGSTOPped) for 60 s",
        expected="no failover, no fence; client >= 95 %; nothing moves after the thaw",
        observed=f"promotions {promoted}, fences {fenced}, demotions {demoted or 'none'}; "
        f"client answered {ok}/{n}; failsafe answers {confirmed}; after the thaw: "
        f"{moved or 'nothing moved'}",
        figures=f"answered {100 * ok / max(n, 1):.1f} %; thaw -> converged {conv:.1f} s",
    )
    assert promoted == 0 and fenced == 0 and not demoted
    assert ok >= 0.95 * n, f"{ok}/{n}"
    assert moved == []
    assert not watch.violations


def first_at(node: NodeState, since: float, match: Any) -> float | None:
    for at, rec in timeline.records(node.log, since):
        if match(rec):
            return at
    return None


DEADLINE_S = 5 - 1.5 + 0.5
"""The cut master's lease deadline at the defaults: lease_duration_s - lease_margin_s after
its last renewal, which was at most one renewal interval before the cut."""
TAKEOVER_S = 20.0
"""The peer's takeover once the old master's fault let keepalived move the VIP: the lease
step's two looks (0.75 s), the fence, map, fsck, mount and Harbor's start: 4.5 s median in
bench/failover.py (crash, the lease included); 20 s leaves room for the shared 2 cores."""
CUT_BOUND_S = DEADLINE_S + TAKEOVER_S
"""Issue 10 test 2's bound: the peer serves within this of the cut (24 s)."""


@pytest.mark.full
def test_master_cut_from_ceph_stops_before_the_peer_starts(
    fault_lab: LabState, record: Any
) -> None:
    """Issue 10 test 2: the master cut from Ceph stops Harbor (its lease deadline) before the
    peer starts it (the step_end of its stop step precedes the peer's entry into STARTING,
    both from the nodes' log timestamps), and the peer serves within CUT_BOUND_S (24 s) of
    the cut."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    with fl.Watch(st) as watch, fl.client_for(st) as client:
        t0 = time.time()
        lab.isolate_from_ceph(st, master)
        try:
            fl.poll(
                lambda: (a := client.check()).ok and a.served_by == standby,
                CUT_BOUND_S + 150,
                f"served by {standby}",
            )
            served = time.time() - t0
        finally:
            lab.heal(st)
        fl.release_stuck_writers()
        conv = fl.wait_converged(st, 240)
    stopped = first_at(
        st.nodes[master], t0, lambda r: r.get("msg") == "step_end" and r.get("step") == "stop"
    )
    started = first_at(
        st.nodes[standby], t0, lambda r: r.get("msg") == "transition" and r.get("to") == "STARTING"
    )
    record(
        injected="master cut from Ceph (iptables DROP to the mon/OSD)",
        expected="old master stops Harbor (lease deadline) before the peer starts it; the "
        f"peer serves within {CUT_BOUND_S:g} s (deadline {DEADLINE_S:g} s + takeover "
        f"{TAKEOVER_S:g} s)",
        observed=f"old master's stop step ended at +{(stopped or t0) - t0:.2f} s, the peer "
        f"entered STARTING at +{(started or t0) - t0:.2f} s (from the nodes' logs); the peer "
        f"served at +{served:.1f} s",
        figures=f"isolation -> peer serves {served:.1f} s; heal -> converged {conv:.1f} s",
    )
    assert stopped is not None and started is not None and stopped < started
    assert served <= CUT_BOUND_S, f"peer served after {served:.1f} s"
    assert not watch.violations
