"""The keepalived adapter against real keepalived 2.2.7 processes in network namespaces."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from harbor_ha.keepalived import TrackFiles, check_config, vip_present
from lab.keepalived import KeepalivedProcess
from lab.netns import NetnsRunner, Topology
from tests.integration.fixtures.keepalived import FifoWatch, wait_until

pytestmark = pytest.mark.integration

Start = Callable[..., KeepalivedProcess]
Watch = Callable[..., FifoWatch]


async def start_master(
    keepalived_node: Start, fifo_watch: Watch, topology: Topology, name: str = "a"
) -> tuple[KeepalivedProcess, FifoWatch]:
    """Start keepalived on ``name`` alone and wait until its FIFO says MASTER."""
    ka = keepalived_node(topology, topology.node(name))
    watch = fifo_watch(ka.settings.keepalived_fifo)
    await ka.wait_fifo_open()
    await watch.wait_for("MASTER")
    return ka, watch


async def test_rendered_config_passes_keepalived_check_in_netns(
    keepalived_topology: Topology, keepalived_node: Start
) -> None:
    """check_config (real `keepalived -t` in the node's netns) finds no problem."""
    ka = keepalived_node(keepalived_topology, keepalived_topology.node("a"))
    runner = NetnsRunner(ka.node.netns)
    assert await check_config(runner, ka.settings, ka.conf) == []


async def test_lone_node_reports_master_then_stop_on_sigterm(
    keepalived_topology: Topology, keepalived_node: Start, fifo_watch: Watch
) -> None:
    """A lone node's FIFO says MASTER with its priority; SIGTERM makes it say STOP."""
    ka, watch = await start_master(keepalived_node, fifo_watch, keepalived_topology)
    _, _, master = await watch.wait_for("MASTER")
    assert master.name == ka.settings.vrrp_instance
    assert master.priority == ka.settings.base_priority + ka.settings.priority_weight
    assert await vip_present(NetnsRunner(ka.node.netns), ka.settings)
    sent = time.monotonic()
    await ka.stop(signal.SIGTERM)
    _, at, _ = await watch.wait_for("STOP")
    print(f"SIGTERM -> STOP line: {(at - sent) * 1000:.0f} ms; lines {watch.states}")
    assert watch.bad == []


async def test_two_nodes_one_master_vip_on_master_only(
    keepalived_topology: Topology, keepalived_node: Start, fifo_watch: Watch
) -> None:
    """Two nodes: the first is MASTER with the VIP, the second BACKUP without it."""
    a, wa = await start_master(keepalived_node, fifo_watch, keepalived_topology, "a")
    b = keepalived_node(keepalived_topology, keepalived_topology.node("b"))
    wb = fifo_watch(b.settings.keepalived_fifo)
    await b.wait_fifo_open()
    await wb.wait_for("BACKUP")
    assert await vip_present(NetnsRunner(a.node.netns), a.settings)
    assert not await vip_present(NetnsRunner(b.node.netns), b.settings)
    assert "MASTER" not in wb.states
    assert wa.states[-1] == "MASTER"


async def test_fault_file_hands_the_vip_to_the_peer(
    keepalived_topology: Topology, keepalived_node: Start, fifo_watch: Watch
) -> None:
    """TrackFiles.set_fault(True) on the master: its FIFO says FAULT, the peer becomes MASTER."""
    a, wa = await start_master(keepalived_node, fifo_watch, keepalived_topology, "a")
    b = keepalived_node(keepalived_topology, keepalived_topology.node("b"))
    wb = fifo_watch(b.settings.keepalived_fifo)
    await b.wait_fifo_open()
    await wb.wait_for("BACKUP")
    runner_b = NetnsRunner(b.node.netns)
    files_a = TrackFiles(a.settings.priority_file, a.settings.fault_file)

    t0 = time.monotonic()
    assert files_a.set_fault(True) is True
    _, t_fault, fault = await wa.wait_for("FAULT", start=len(wa.seen))
    _, t_master, _ = await wb.wait_for("MASTER")
    t_vip = await wait_until(lambda: vip_present(runner_b, b.settings), "VIP on b")
    print(
        f"fault file -> a FAULT line {(t_fault - t0) * 1000:.0f} ms, "
        f"-> b MASTER line {(t_master - t0) * 1000:.0f} ms, "
        f"-> VIP on b {(t_vip - t0) * 1000:.0f} ms"
    )
    assert fault.name == a.settings.vrrp_instance  # (FAULT carries the effective priority)
    assert not await vip_present(NetnsRunner(a.node.netns), a.settings)

    # clearing the fault: a comes back as BACKUP (nopreempt), b keeps the VIP
    assert files_a.set_fault(False) is True
    await wa.wait_for("BACKUP", start=len(wa.seen) - 1)
    assert await vip_present(runner_b, b.settings)


async def test_reader_survives_keepalived_restart(
    keepalived_topology: Topology, keepalived_node: Start, fifo_watch: Watch
) -> None:
    """keepalived restarts: the reader sees EOF, reopens and reads the new process's lines."""
    ka, watch = await start_master(keepalived_node, fifo_watch, keepalived_topology)
    await ka.stop()
    await watch.wait_for("STOP")
    await wait_until(lambda: watch.reopens >= 1, "the reader to reopen after EOF")
    mark = len(watch.seen)
    t0 = time.monotonic()
    ka.start()
    await ka.wait_fifo_open()
    _, at, _ = await watch.wait_for("MASTER", start=mark)
    print(f"restart -> MASTER line read: {(at - t0) * 1000:.0f} ms; reopens {watch.reopens}")
    assert watch.reopens == 1
    assert watch.bad == []


async def test_sighup_reload_keeps_the_fifo_working(
    keepalived_topology: Topology, keepalived_node: Start, fifo_watch: Watch
) -> None:
    """After a SIGHUP reload the FIFO still carries events and the fault file is kept.

    keepalived 2.2.7 closes and reopens the FIFO on reload (the reader sees an
    EOF and reopens) and writes a BACKUP_PRIORITY line although it stays MASTER:
    *_PRIORITY lines are priority news, not states.
    """
    ka, watch = await start_master(keepalived_node, fifo_watch, keepalived_topology)
    files = TrackFiles(ka.settings.priority_file, ka.settings.fault_file)
    mark = len(watch.seen)
    t0 = time.monotonic()
    ka.send_signal(signal.SIGHUP)
    t_done = await wait_until(lambda: "Reload complete" in ka.log_tail(5), "reload to complete")
    print(
        f"SIGHUP -> reload complete {(t_done - t0) * 1000:.0f} ms; "
        f"lines after: {[line.raw for _, line in watch.seen[mark:]]}; reopens {watch.reopens}"
    )
    assert files.fault_value == 0, "the reload must not overwrite the daemon's fault file"
    assert await vip_present(NetnsRunner(ka.node.netns), ka.settings)
    mark = len(watch.seen)
    t1 = time.monotonic()
    files.set_fault(True)
    _, at, _ = await watch.wait_for("FAULT", start=mark)
    print(f"after reload: fault file -> FAULT line {(at - t1) * 1000:.0f} ms")
    assert ka.running
    assert watch.bad == []


async def test_missing_fault_file_starts_in_fault(
    keepalived_topology: Topology, keepalived_node: Start, fifo_watch: Watch
) -> None:
    """No fault file at keepalived start: init_file creates it as 1, the node is FAULT (no VIP)."""
    ka = keepalived_node(keepalived_topology, keepalived_topology.node("a"), fault=None)
    watch = fifo_watch(ka.settings.keepalived_fifo)
    await ka.wait_fifo_open()
    await watch.wait_for("FAULT")
    files = TrackFiles(ka.settings.priority_file, ka.settings.fault_file)
    assert files.fault_value == 1
    assert not await vip_present(NetnsRunner(ka.node.netns), ka.settings)
    t0 = time.monotonic()
    files.set_fault(False)
    _, at, _ = await watch.wait_for("MASTER")
    print(f"fault cleared on a lone node -> MASTER line {(at - t0) * 1000:.0f} ms")


async def test_priority_file_changes_priority_but_not_the_master(
    keepalived_topology: Topology, keepalived_node: Start, fifo_watch: Watch
) -> None:
    """set_ready(False) on the master: MASTER_PRIORITY line with base priority; VIP stays."""
    a, wa = await start_master(keepalived_node, fifo_watch, keepalived_topology, "a")
    b = keepalived_node(keepalived_topology, keepalived_topology.node("b"))
    wb = fifo_watch(b.settings.keepalived_fifo)
    await b.wait_fifo_open()
    await wb.wait_for("BACKUP")
    files_a = TrackFiles(a.settings.priority_file, a.settings.fault_file)
    mark = len(wa.seen)
    assert files_a.set_ready(False) is True
    _, _, line = await wa.wait_for("MASTER_PRIORITY", start=mark)
    assert line.priority == a.settings.base_priority
    assert await vip_present(NetnsRunner(a.node.netns), a.settings), "nopreempt: VIP stays"
    assert "MASTER" not in wb.states


async def test_kill9_of_master_gives_eof_and_peer_takes_over(
    keepalived_topology: Topology, keepalived_node: Start, fifo_watch: Watch
) -> None:
    """kill -9 of the master's keepalived: its reader sees EOF (no STOP), the peer turns MASTER."""
    a, wa = await start_master(keepalived_node, fifo_watch, keepalived_topology, "a")
    b = keepalived_node(keepalived_topology, keepalived_topology.node("b"))
    wb = fifo_watch(b.settings.keepalived_fifo)
    await b.wait_fifo_open()
    await wb.wait_for("BACKUP")
    mark = len(wa.seen)
    t0 = time.monotonic()
    a.kill()
    t_eof = await wait_until(lambda: wa.reopens >= 1, "a's reader to see EOF")
    _, t_master, _ = await wb.wait_for("MASTER")
    print(
        f"kill -9 master -> peer MASTER line {(t_master - t0) * 1000:.0f} ms, "
        f"-> EOF on a's reader {(t_eof - t0) * 1000:.0f} ms; a's lines after: "
        f"{[line.raw for _, line in wa.seen[mark:]]}"
    )
    assert "STOP" not in wa.states[mark:]
