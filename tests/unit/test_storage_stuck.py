"""A master whose storage probe gets no answer (STORAGE_STUCK) keeps serving only while its
peer's failsafe promise holds (issue 10, test 3: a whole-Ceph freeze must not drop Harbor);
otherwise, and on any error (STORAGE_LOST), it demotes as before.  The read probe tells the
two apart: an answer that is an error, or no answer within its timeout."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from harbor_ha.daemon.driver import Driver
from harbor_ha.daemon.monitor import Monitor
from harbor_ha.daemon.pulse import Pulse
from harbor_ha.filesystem.direct_read import DirectReader
from harbor_ha.filesystem.probe import read_probe
from harbor_ha.keepalived.trackfile import TrackFiles
from harbor_ha.machine import Event, Kind, Node, Policy, State, Step, transition
from harbor_ha.metrics import Metrics
from lab.waiting import until
from tests.fakes import example_settings

E = Event
S = State


def master() -> Node:
    return Node(state=S.MASTER, want_master=True, policy=Policy(failsafe=True))


def test_confirmed_failsafe_keeps_a_master_whose_storage_does_not_answer() -> None:
    """FAILSAFE_CONFIRMED marks the master held; STORAGE_STUCK then changes nothing (no stop,
    no fault, no action): nobody could take the image over, stopping only drops Harbor."""
    node, _ = transition(master(), E.FAILSAFE_CONFIRMED)
    assert node.failsafe_held
    after, actions = transition(node, E.STORAGE_STUCK)
    assert after == node and actions == ()


def test_without_the_failsafe_a_stuck_storage_demotes() -> None:
    """No promise from the peer: a storage that does not answer demotes like a lost one."""
    node, _ = transition(master(), E.STORAGE_STUCK)
    assert node.state is S.STOPPING and node.fault


def test_a_renewal_ends_the_hold() -> None:
    """Ceph answers the lease again (LEASE_RENEWED): the hold is over, so a storage that
    still does not answer demotes (this node reaches Ceph; its storage does not)."""
    node, _ = transition(master(), E.FAILSAFE_CONFIRMED)
    node, _ = transition(node, E.LEASE_RENEWED)
    assert not node.failsafe_held
    node, _ = transition(node, E.STORAGE_STUCK)
    assert node.state is S.STOPPING


def test_an_error_demotes_even_while_held() -> None:
    """STORAGE_LOST (an error: blocklisted, I/O error, read-only) demotes whatever the
    failsafe says: the hold only covers a storage that does not answer."""
    node, _ = transition(master(), E.FAILSAFE_CONFIRMED)
    node, _ = transition(node, E.STORAGE_LOST)
    assert node.state is S.STOPPING


def test_a_new_lease_starts_without_a_hold() -> None:
    """A hold left from an earlier MASTER period ends when the lease step takes the lease."""
    node = Node(state=S.LEASING, want_master=True, failsafe_held=True)
    node, _ = transition(node, E.STEP_DONE)
    assert node.state is S.FENCING and not node.failsafe_held


async def test_read_probe_tells_no_answer_from_an_error(tmp_path: Path) -> None:
    """The probe is True on a read, False on an error (a missing device), None when the read
    does not return within its timeout (a FIFO's open blocks like a read waiting on Ceph):
    real O_DIRECT reads in the probe's worker thread each time."""
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"x" * 8192)
    fifo = tmp_path / "stuck"
    os.mkfifo(fifo)
    assert await read_probe(DirectReader(), str(disk), 5) is True
    assert await read_probe(DirectReader(), str(tmp_path / "gone"), 5) is False
    stuck = DirectReader()
    assert await read_probe(stuck, str(fifo), 0.3) is None
    assert await read_probe(stuck, str(disk), 5) is None  # the earlier read is still blocked
    os.close(os.open(fifo, os.O_WRONLY))  # let the blocked open return


# ----------------------------------------------------------------- the monitor
class Report:
    healthy = True
    reason = "ok"
    degraded: tuple[str, ...] = ()


class Harbor:
    """FAKE Harbor probe: healthy."""

    async def check(self, *, judge_health: bool = True) -> Report:
        return Report()

    async def serving(self) -> Report:
        return Report()


class Storage:
    """FAKE filesystem: mounted read-write from the device; the read probe answers ``read``."""

    def __init__(self) -> None:
        self.read: bool | None = True

    def is_mounted_from(self, device: str) -> bool:
        return True

    def is_read_only(self) -> bool:
        return False

    async def read_probe(self, device: str, timeout_s: float) -> bool | None:
        return self.read


async def _step(step: Step) -> None:
    return None


async def _renewed() -> tuple[Event, str]:
    return Event.LEASE_RENEWED, "renewed"


async def test_monitor_judges_the_storage_afresh_when_the_hold_ends(tmp_path: Path) -> None:
    """The real monitor and driver of a MASTER held by the failsafe: reads without an answer
    keep it MASTER; when a renewal ends the hold, a read begun in the outage that still gets
    no answer does not demote alone (the storage is judged afresh: two probes), a second one
    does (STORAGE_STUCK, Ceph answers but the storage does not)."""
    s = example_settings(priority_file=tmp_path / "prio", fault_file=tmp_path / "fault",
                         runtime_dir=tmp_path / "run", probe_timeout_s=0.1)  # fmt: skip
    track = TrackFiles(s.priority_file, s.fault_file)
    track.ensure()
    metrics = Metrics()
    node = Node(state=S.MASTER, want_master=True, policy=Policy(failsafe=True), failsafe_held=True)
    driver = Driver(node, run_step=_step, step_timeout=lambda st: 60, track=track,
                    metrics=metrics, background={Kind.RENEW_LEASE: _renewed})  # fmt: skip
    fs = Storage()
    monitor = Monitor(
        s, driver=driver, metrics=metrics, harbor=Harbor(), containers=None,  # type: ignore[arg-type]
        ceph=None, fs=fs, compose=None, device=lambda: "/dev/rbd0", track=track,  # type: ignore[arg-type]
        wake=Pulse(),
    )  # fmt: skip
    task = asyncio.create_task(driver.run((node, ()), "test"))
    try:
        fs.read = None
        for _ in range(4):
            await monitor.check_once()
            await asyncio.sleep(0.02)
        assert driver.node.state is S.MASTER and driver.node.failsafe_held
        driver.post(Event.LEASE_RENEWED, "Ceph answers again")
        await until(lambda: not driver.node.failsafe_held)
        await monitor.check_once()  # the read begun in the outage: no answer
        await asyncio.sleep(0.05)
        assert driver.node.state is S.MASTER
        await monitor.check_once()  # still no answer, Ceph reachable: demote
        await until(lambda: driver.node.state is not S.MASTER)
    finally:
        task.cancel()
        await asyncio.wait({task})
