"""Priority 5: network partitions (iptables DROP rules in the lab's netns).

- between the two nodes (each keeps Ceph and the client): both keepalived become MASTER;
  at every sampled moment at most one node can write+fsync to the image (Ceph's blocklist
  is the arbiter), the other ends fenced by Ceph or demoted by itself;
- between the master and Ceph: the master must stop serving within a bounded time
  (measured and reported), and the peer takes over.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import lab
from lab import LabState
from tests.faults import faultlab as fl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def sample_writers(st: LabState, seconds: float, tag: str) -> tuple[int, list[str], list[str]]:
    """Try a write+fsync on each node's mountpoint, round after round, for ``seconds``:
    (rounds, rounds with two writers, per-round writer lists)."""
    rounds, double, history = 0, [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ok = [n for n in st.nodes if fl.try_write(st.nodes[n], f"{tag} {rounds}", 2.0)]
        history.append(",".join(ok) or "-")
        if len(ok) > 1:
            double.append(f"round {rounds}: {ok}")
        rounds += 1
        time.sleep(0.2)
    return rounds, double, history


def role_changes(tails: dict[str, fl.LogTail]) -> dict[str, list[str]]:
    return {n: [f"{r['from']}>{r['to']}" for r in t.transitions()] for n, t in tails.items()}


@pytest.mark.full
def test_partition_between_nodes_one_writer(fault_lab: LabState, record: Any) -> None:
    """Nodes cut from each other for 60 s: never two writers at a sampled moment, and, with
    the lease (issue 10), no takeover at all (the standby finds the master renewing the
    lease and waits); after the heal the lab converges."""
    st = fault_lab
    master = fl.serving(st)
    tails = {n: fl.LogTail(st.nodes[n].log) for n in st.nodes}
    with fl.Watch(st) as watch:
        with fl.real_partition(st):
            rounds, double, history = sample_writers(st, 60, "partition")
        released = fl.release_stuck_writers()
        conv = fl.wait_converged(st, 180)
    changes = role_changes(tails)
    flips = sum(1 for v in changes.values() for c in v if c.endswith(">MASTER"))
    writers = sorted(set(history))
    record(
        injected="partition between the nodes (iptables DROP both ways, VRRP included) for 60 s",
        expected="at most one writer at every sample; no takeover (the lease is renewed)",
        observed=f"{len(double)}/{rounds} samples with two writers; writer sets seen "
        f"{writers}; promotions to MASTER during it: {flips}; was {master}"
        + (f"; test probes stuck in D on the fenced node: {released}" if released else ""),
        figures=f"heal -> converged {conv:.1f} s",
    )
    assert flips == 0, "the lease held: the standby must not take over from a renewing master"
    assert not double, double
    assert not watch.violations


@pytest.mark.full
def test_master_isolated_from_ceph_stops_serving(fault_lab: LabState, record: Any) -> None:
    """The master cut from Ceph: it stops serving (no Harbor container running there) within
    a bounded time, and the peer serves; measured: isolation -> Harbor stopped on the old
    master, isolation -> first healthy answer from the peer."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    mnode = st.nodes[master]
    tail = fl.LogTail(mnode.log)
    with fl.Watch(st) as watch, fl.client_for(st) as client:
        t0 = time.monotonic()
        lab.isolate_from_ceph(st, master)
        try:
            fl.poll(lambda: not lab.running_containers(mnode), 180, "Harbor stopped on master")
            stopped = time.monotonic() - t0
            fl.poll(
                lambda: (a := client.check()).ok and a.served_by == standby,
                180,
                f"served by {standby}",
            )
            served = time.monotonic() - t0
            states = [f"{r['from']}>{r['to']}" for r in tail.transitions()]
            double_rounds, double, _ = sample_writers(st, 5, "ceph-iso")
        finally:
            lab.heal(st)
        released = fl.release_stuck_writers()
        conv = fl.wait_converged(st, 240)
    record(
        injected="master cut from Ceph (iptables DROP to the mon/OSD)",
        expected="master stops serving within a bounded time; peer serves; one writer",
        observed=f"old master's transitions {states}; two writers in "
        f"{len(double)}/{double_rounds} samples"
        + (f"; test probes stuck in D on the fenced node: {released}" if released else ""),
        figures=f"isolation -> Harbor stopped on old master {stopped:.1f} s; -> peer serves "
        f"{served:.1f} s; heal -> converged {conv:.1f} s",
    )
    assert not double
    assert not watch.violations
