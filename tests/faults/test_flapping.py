"""Priority 3: flapping.  Bursts of alternating MASTER/BACKUP lines INJECTED into a node's
keepalived FIFO (keepalived's real interface; the lines are written by the test, in
keepalived's format, and named so in the table), rapid changes of the priority track file,
and repeated failed promotions (the daemon must back off, longer each time).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import lab
from lab import LabState
from tests.faults import faultlab as fl

pytestmark = [pytest.mark.e2e, pytest.mark.full, pytest.mark.timeout(900)]


def inject_lines(node: lab.NodeState, lines: list[str], gap_s: float = 0.0) -> None:
    """Write keepalived-format lines into the node's notify FIFO (the daemon reads it)."""
    fifo = node.run_dir / "keepalived.fifo"
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        for line in lines:
            os.write(fd, (line + "\n").encode())
            if gap_s:
                time.sleep(gap_s)
    finally:
        os.close(fd)


def burst(n: int, last: str) -> list[str]:
    first = "BACKUP" if last == "MASTER" else "MASTER"
    words = [first if i % 2 == 0 else last for i in range(n)]
    if words[-1] != last:
        words.append(last)
    return [f'INSTANCE "VI_1" {w} 100' for w in words]


def mounts_in(tail: fl.LogTail) -> int:
    tail.read()
    return sum(1 for r in tail.seen if r.get("msg") == "mounted")


@pytest.mark.parametrize("gap_ms", [0, 150])
def test_injected_burst_into_master_fifo_ends_master(
    fault_lab: LabState, gap_ms: int, record: Any
) -> None:
    """20 alternating BACKUP/MASTER lines (last MASTER) injected into the master's FIFO: it
    never mounts twice at once, and ends MASTER serving (the last line and the VIP agree)."""
    st = fault_lab
    master = fl.serving(st)
    node = st.nodes[master]
    tail = fl.LogTail(node.log)
    with fl.Watch(st) as watch, fl.client_for(st) as client:
        inject_lines(node, burst(20, "MASTER"), gap_ms / 1000)
        conv = fl.wait_converged(st, 150, client)
    now = fl.serving(st)
    trans = [f"{r['from']}>{r['to']}" for r in tail.transitions()]
    record(
        injected=f"INJECTED lines: 20 alternating BACKUP/MASTER (gap {gap_ms} ms, last MASTER) "
        "into the master's FIFO",
        expected="never mounted twice; ends MASTER serving (last line = VIP)",
        observed=f"{now} serves; {len(trans)} transitions on {master}; mounts "
        f"{mounts_in(tail)}; violations {len(watch.violations)}",
        figures=f"converged after {conv:.1f} s",
    )
    assert not watch.violations, watch.violations
    assert now == master, f"expected {master} to end MASTER (the last line), got {now}"


@pytest.mark.parametrize("gap_ms", [0, 150])
def test_injected_burst_into_standby_fifo_ends_backup(
    fault_lab: LabState, gap_ms: int, record: Any
) -> None:
    """20 alternating MASTER/BACKUP lines (last BACKUP) injected into the standby's FIFO (the
    VIP stays on the master): the standby ends BACKUP, the master keeps serving, never two
    mounts and never Harbor on a bare mountpoint."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    node = st.nodes[standby]
    tail = fl.LogTail(node.log)
    mtail = fl.LogTail(st.nodes[master].log)
    with fl.Watch(st) as watch, fl.client_for(st) as client:
        inject_lines(node, burst(20, "BACKUP"), gap_ms / 1000)
        conv = fl.wait_converged(st, 150, client)
    now = fl.serving(st)
    fenced = tail.count("fenced")
    master_moves = [f"{r['from']}>{r['to']}" for r in mtail.transitions()]
    record(
        injected=f"INJECTED lines: 20 alternating MASTER/BACKUP (gap {gap_ms} ms, last BACKUP) "
        "into the standby's FIFO (VIP on the master)",
        expected="standby ends BACKUP; master keeps serving; never mounted twice",
        observed=f"{now} serves; standby fenced the master {fenced}x; master transitions "
        f"{master_moves or 'none'}; violations {len(watch.violations)}",
        figures=f"converged after {conv:.1f} s",
    )
    assert not watch.violations, watch.violations
    assert now == master, (
        f"the master lost its role to injected lines on the standby ({master_moves})"
    )


def test_priority_file_flapping(fault_lab: LabState, record: Any) -> None:
    """The priority track file of both nodes rewritten 0/1 100 times in 5 s (atomic
    renames, as the daemon does): keepalived (nopreempt) moves nothing; the lab stays
    converged and the daemons put their own value back."""
    st = fault_lab
    master = fl.serving(st)
    with fl.Watch(st) as watch:
        for i in range(100):
            for node in st.nodes.values():
                p: Path = node.run_dir / "priority"
                tmp = p.with_name(".flap-tmp")
                tmp.write_text(f"{i % 2}\n")
                tmp.replace(p)
            time.sleep(0.05)
        conv = fl.wait_converged(st, 120)
    values = {n: (st.nodes[n].run_dir / "priority").read_text().strip() for n in st.nodes}
    fl.poll(
        lambda: all(
            (st.nodes[n].run_dir / "priority").read_text().strip() == "1" for n in st.nodes
        ),
        30,
        "both priority files back to 1 (both ready)",
    )
    record(
        injected="priority track file flipped 0/1 x100 in 5 s on both nodes",
        expected="no VIP move (nopreempt), still converged, daemons restore their value",
        observed=f"{fl.serving(st)} serves (was {master}); values after: {values}; "
        f"violations {len(watch.violations)}",
        figures=f"converged {conv:.1f} s after the burst",
    )
    assert not watch.violations
    assert fl.serving(st) == master


def test_injected_single_master_line_into_standby(fault_lab: LabState, record: Any) -> None:
    """ONE injected `MASTER` line in the standby's FIFO (a replayed or stray line: the VIP is
    on the master): the standby must not take the image from the serving master; the master
    keeps serving without interruption and the standby ends BACKUP (the VIP says so)."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    tail = fl.LogTail(st.nodes[standby].log)
    mtail = fl.LogTail(st.nodes[master].log)
    with fl.Watch(st) as watch, fl.client_for(st) as client:
        inject_lines(st.nodes[standby], ['INSTANCE "VI_1" MASTER 100'])
        # watch the client for 15 s: the master must keep answering
        end = time.monotonic() + 15
        bad = 0
        n = 0
        while time.monotonic() < end:
            a = client.check()
            n += 1
            bad += int(not (a.ok and a.served_by == master))
            time.sleep(0.2)
        conv = fl.wait_converged(st, 150, client)
    fenced = tail.count("fenced")
    master_moves = [f"{r['from']}>{r['to']}" for r in mtail.transitions()]
    record(
        injected="INJECTED line: one MASTER line into the standby's FIFO (VIP on the master)",
        expected="standby does not fence the serving master; master serves throughout",
        observed=f"standby fenced the master {fenced}x; master transitions "
        f"{master_moves or 'none'}; client failures {bad}/{n}; {fl.serving(st)} serves",
        figures=f"converged {conv:.1f} s",
    )
    assert not watch.violations
    assert fenced == 0 and not master_moves, (fenced, master_moves)
