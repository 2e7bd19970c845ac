"""Priority 2: keepalived faults, on the real keepalived of the lab.

- restarted (SIGTERM + start): harbor-ha's FIFO reader sees EOF, reopens, and must act on the
  NEW keepalived's lines (proved by a takeover that needs its MASTER line);
- SIGHUP reload: the same after a reload;
- kill -9 on the master: the other node takes over (the dead keepalived leaves its VIP);
- lines lost: harbor-ha down while the VIP moves, started again: converges from facts;
- VIP moved without a FIFO line (`ip addr del`): the VIP tick notices and demotes.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

import lab
from lab import LabState
from tests.faults import faultlab as fl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def stop_keepalived(st: LabState, name: str, sig: int = signal.SIGTERM) -> None:
    node = st.nodes[name]
    lab.kill_pid(node.pids["keepalived"], sig, wait_s=15)
    lab.reap()


def takeover_by(st: LabState, new: str, client: Any, within_s: float = 90) -> float:
    """`harbor-ha switchover` on the current master; seconds until ``new`` serves the client."""
    old = fl.other(st, new)
    t0 = time.monotonic()
    lab.harbor_ha(st.nodes[old], "switchover")
    fl.poll(
        lambda: (a := client.check()).ok and a.served_by == new,
        within_s,
        f"client served by {new}",
        every_s=0.2,
    )
    return time.monotonic() - t0


def fifo_reopens(tail: fl.LogTail) -> int:
    tail.read()
    return sum(1 for r in tail.seen if r.get("msg") == "fifo_reopen")


def test_keepalived_restart_on_standby_fifo_reopened(fault_lab: LabState, record: Any) -> None:
    """keepalived of the standby restarted (SIGTERM, start): the daemon reopens the FIFO and
    promotes on the new keepalived's MASTER line at the next switchover."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    tail = fl.LogTail(st.nodes[standby].log)
    stop_keepalived(st, standby)
    lab.start_keepalived(st.nodes[standby])
    st.save()
    # the new keepalived announces BACKUP through the FIFO: the daemon must read it
    tail.wait(lambda r: r.get("msg") == "fifo_line" and "BACKUP" in r.get("line", ""), 30)
    with fl.client_for(st) as client:
        took = takeover_by(st, standby, client)
    got_master_line = any(
        r.get("msg") == "fifo_line" and "MASTER" in r.get("line", "") for r in tail.read()
    ) or any(r.get("msg") == "fifo_line" and "MASTER" in r.get("line", "") for r in tail.seen)
    ok = fl.wait_converged(st, 120) >= 0
    record(
        injected="keepalived restarted (SIGTERM+start) on the standby",
        expected="FIFO reopened; next switchover promotes it on the new keepalived's MASTER line",
        observed=f"MASTER line read: {got_master_line}; {standby} serves; converged: {ok}",
        figures=f"switchover -> served by {standby}: {took:.1f} s",
    )
    assert got_master_line


@pytest.mark.full
def test_keepalived_sighup_reload_on_standby(fault_lab: LabState, record: Any) -> None:
    """SIGHUP (reload) of the standby's keepalived: its lines still reach the daemon (the
    next switchover promotes it)."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    tail = fl.LogTail(st.nodes[standby].log)
    os.kill(st.nodes[standby].pids["keepalived"], signal.SIGHUP)
    time.sleep(0)  # nothing to wait for: the reload is asynchronous; the takeover proves it
    with fl.client_for(st) as client:
        took = takeover_by(st, standby, client)
    tail.read()
    got = any(r.get("msg") == "fifo_line" and "MASTER" in r.get("line", "") for r in tail.seen)
    fl.wait_converged(st, 120)
    record(
        injected="SIGHUP reload of the standby's keepalived",
        expected="lines still flow: next switchover promotes it on a FIFO MASTER line",
        observed=f"MASTER line read after reload: {got}; {standby} serves",
        figures=f"switchover -> served by {standby}: {took:.1f} s",
    )
    assert got


@pytest.mark.full
def test_keepalived_sighup_reload_on_master(fault_lab: LabState, record: Any) -> None:
    """SIGHUP of the master's keepalived: Harbor stays served (or the lab converges again)."""
    st = fault_lab
    master = fl.serving(st)
    with fl.Watch(st) as watch:
        os.kill(st.nodes[master].pids["keepalived"], signal.SIGHUP)
        t = fl.wait_converged(st, 120)
    record(
        injected="SIGHUP reload of the master's keepalived",
        expected="converged (one node serving), no Harbor on a bare mount",
        observed=f"converged; now serving: {fl.serving(st)}; violations: {len(watch.violations)}",
        figures=f"converged after {t:.1f} s",
    )
    assert not watch.violations


@pytest.mark.full
def test_keepalived_kill9_on_master_other_takes_over(fault_lab: LabState, record: Any) -> None:
    """kill -9 of the master's keepalived (both processes): the other node serves; the old
    master stops writing (fenced by Ceph or demoted) and stays so until keepalived is back;
    after keepalived restarts the lab converges."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    with fl.client_for(st) as client, fl.Watch(st) as watch:
        t0 = time.monotonic()
        stop_keepalived(st, master, signal.SIGKILL)
        fl.poll(
            lambda: (a := client.check()).ok and a.served_by == standby,
            90,
            f"client served by {standby}",
        )
        took = time.monotonic() - t0
        # 20 s with keepalived dead on the old master: only the new master may write
        writers_seen: list[str] = []
        end = time.monotonic() + 20
        n = 0
        while time.monotonic() < end:
            ok = [name for name in st.nodes if fl.try_write(st.nodes[name], f"kill9-ka {n}")]
            if len(ok) > 1:
                writers_seen.append(f"sample {n}: {ok}")
            n += 1
        states = {name: lab.status(st, name).get("state") for name in st.nodes}
        released = fl.release_stuck_writers()
        lab.start_keepalived(st.nodes[master])
        st.save()
        conv = fl.wait_converged(st, 150)
    record(
        injected="kill -9 keepalived on the master (stale VIP left on it)",
        expected="other node serves; at most one writer; converges after keepalived restart",
        observed=(
            f"{standby} served; two writers in {len(writers_seen)}/{n} samples; states while "
            f"keepalived dead: {states}; bare-mount violations: {len(watch.violations)}"
            + (f"; test probes stuck in D on the fenced node: {released}" if released else "")
        ),
        figures=f"kill -> served by {standby} {took:.1f} s; restart -> converged {conv:.1f} s",
    )
    assert not writers_seen
    assert not watch.violations
    assert states[standby] == "MASTER"


@pytest.mark.full
def test_lines_lost_standby_converges_from_facts(fault_lab: LabState, record: Any) -> None:
    """harbor-ha of the standby down (SIGTERM) while the VIP moves to it (switchover on the
    master): it missed the MASTER line; started again, it promotes from the fact (VIP on eth0)."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    node = st.nodes[standby]
    lab.kill_pid(node.pids["harbor-ha"], signal.SIGTERM, group=False, wait_s=30)
    lab.reap()
    lab.harbor_ha(st.nodes[master], "switchover")
    fl.poll(lambda: lab.vip_holders(st) == [standby], 60, f"VIP on {standby} only")
    with fl.client_for(st) as client:
        t0 = time.monotonic()
        fl.restart_daemon(st, standby)
        fl.poll(
            lambda: (a := client.check()).ok and a.served_by == standby,
            90,
            f"client served by {standby}",
        )
        took = time.monotonic() - t0
    fl.wait_converged(st, 120)
    record(
        injected="FIFO lines lost: standby's harbor-ha down while the VIP moved to it",
        expected="restarted, it promotes from facts (VIP present) and serves",
        observed=f"{standby} serves",
        figures=f"restart -> served {took:.1f} s",
    )


@pytest.mark.full
def test_lines_lost_master_converges_from_facts(fault_lab: LabState, record: Any) -> None:
    """harbor-ha of the master down (SIGTERM: Harbor stays up) while its keepalived restarts
    (the VIP goes to the peer): started again, it finds Harbor held without the VIP, demotes."""
    st = fault_lab
    master = fl.serving(st)
    standby = fl.other(st, master)
    node = st.nodes[master]
    lab.kill_pid(node.pids["harbor-ha"], signal.SIGTERM, group=False, wait_s=30)
    lab.reap()
    stop_keepalived(st, master)
    fl.poll(lambda: lab.vip_holders(st) == [standby], 60, f"VIP on {standby} only")
    lab.start_keepalived(node)
    st.save()
    with fl.Watch(st) as watch:
        t0 = time.monotonic()
        fl.restart_daemon(st, master)
        conv = fl.wait_converged(st, 150)
    now = fl.serving(st)
    record(
        injected="FIFO lines lost: master's harbor-ha down while the VIP moved away",
        expected="restarted, it demotes from facts (held, no VIP); the peer serves",
        observed=f"converged, {now} serves; violations {len(watch.violations)}",
        figures=f"restart -> converged {conv:.1f} s (t0 {time.monotonic() - t0:.1f})",
    )
    assert now == standby
    assert not watch.violations


@pytest.mark.full
def test_vip_deleted_keepalived_reacts(fault_lab: LabState, record: Any) -> None:
    """`ip addr del VIP` on the master with keepalived running: keepalived itself notices
    (netlink) and says BACKUP then MASTER again; the daemon follows its lines or its VIP tick,
    and the lab converges (one node serving)."""
    st = fault_lab
    master = fl.serving(st)
    node = st.nodes[master]
    tail = fl.LogTail(node.log)
    t0 = time.monotonic()
    lab.sh("ip", "-n", node.netns, "addr", "del", st.vip, "dev", "eth0")
    left = tail.wait(lambda r: r.get("msg") == "transition" and r.get("from") == "MASTER", 30)
    noticed = time.monotonic() - t0
    conv = fl.wait_converged(st, 120)
    record(
        injected="VIP deleted from the master's eth0 (keepalived alive)",
        expected="the master leaves MASTER (keepalived line or VIP tick); lab converges",
        observed=f"left MASTER by {left.get('event')}: {left.get('reason')}; "
        f"{fl.serving(st)} serves",
        figures=f"del -> demotion {noticed:.2f} s; converged {conv:.1f} s later",
    )


def test_vip_deleted_without_fifo_line(fault_lab: LabState, record: Any) -> None:
    """The master's keepalived frozen (SIGSTOP: it writes no FIFO line and re-adds nothing),
    then `ip addr del VIP`: the daemon's VIP tick notices within a few ticks and demotes; the
    peer (no adverts) takes over; after SIGCONT the lab converges."""
    st = fault_lab
    master = fl.serving(st)
    node = st.nodes[master]
    tail = fl.LogTail(node.log)
    ka = node.pids["keepalived"]
    os.killpg(ka, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        lab.sh("ip", "-n", node.netns, "addr", "del", st.vip, "dev", "eth0")
        left = tail.wait(
            lambda r: r.get("msg") == "transition" and r.get("from") == "MASTER", 30, 0.02
        )
        noticed = time.monotonic() - t0
        mismatch = [r for r in tail.seen if r.get("msg") == "vip_mismatch"]
    finally:
        os.killpg(ka, signal.SIGCONT)
    conv = fl.wait_converged(st, 150)
    record(
        injected="master's keepalived SIGSTOPped, then VIP deleted from its eth0 (no FIFO line)",
        expected="VIP tick notices within a few ticks and demotes; peer serves; converges",
        observed=f"left MASTER by {left.get('event')} ({left.get('reason')}); vip_mismatch "
        f"after {mismatch[0].get('ticks') if mismatch else '-'} ticks; {fl.serving(st)} serves",
        figures=f"del -> demotion {noticed:.2f} s; SIGCONT -> converged {conv:.1f} s",
    )
    assert mismatch, "the VIP tick did not report the mismatch"
    assert left.get("event") == "KA_BACKUP" and "VIP absent" in str(left.get("reason"))
