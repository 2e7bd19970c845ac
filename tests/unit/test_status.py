"""The daemon's wiring (daemon.build) and the /status projection built from the owners' views.

Everything is the real object graph `harbor-ha run` builds; nothing is started (no root task,
and the one driver that runs here runs no real step), so no adapter talks to the outside
world.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from harbor_ha.cli import format_status
from harbor_ha.daemon.build import Parts, build
from harbor_ha.daemon.driver import Driver
from harbor_ha.daemon.monitor import Monitor
from harbor_ha.daemon.pulse import Pulse
from harbor_ha.daemon.status import StatusView
from harbor_ha.daemon.watchers import VipTicker
from harbor_ha.http import ControlError
from harbor_ha.machine import Event, Kind, Node, State, Step
from lab.waiting import until
from tests.fakes import FakeFs, example_settings
from tests.harbor_config import HarborValues, secret_values, write_install
from tests.unit.test_cli_ops import closed_port

KEYS = {
    "node", "mode", "state", "since", "seconds_in_state", "want_master", "fault", "maintenance",
    "failures", "step", "vip_present", "harbor_healthy", "harbor_degraded", "standby_ready",
    "standby_problems",
    "device", "reconciled", "probes", "last_event", "last_transitions", "last_errors", "lease",
    "last_failover", "replication", "cluster_fingerprint",
}  # fmt: skip


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    """The daemon's real parts; what they opened (the probes' HTTP sessions, the lease agent,
    the journal) closed after the test, as the daemon's shutdown does."""
    p = build(
        example_settings(
            node_name="n1",
            priority_file=tmp_path / "prio",
            fault_file=tmp_path / "fault",
            runtime_dir=tmp_path / "run",
            state_dir=tmp_path / "state",
        )
    )
    try:
        yield p
    finally:
        await p.harbor.close()
        await p.containers.close()
        await p.lease.close()
        p.history.close()


async def test_status_keys_and_owners(parts: Parts) -> None:
    """/status keeps every key the CLI, the lab and the tests read, and each value comes from
    its owner: the device from the steps, the errors merged from the driver, the ticker and the
    monitor in time order, the reconciled flag from the daemon."""
    status = (await parts.control.handle("status", {}))["status"]
    assert set(status) == KEYS
    assert (
        status["node"] == "n1"
        and status["mode"] == "rbd"
        and status["state"] == "BACKUP"
        and status["device"] is None
    )
    assert status["reconciled"] is False and status["harbor_healthy"] is None
    assert status["harbor_degraded"] == [] and status["replication"] is None
    assert status["cluster_fingerprint"] is None and parts.cluster is None  # no node list
    parts.steps.adopt("/dev/rbd0")
    parts.reconciled = True
    parts.ticker.errors.record("vip_check", "first")
    parts.driver.errors.record("fault_file", "second")
    status = (await parts.control.handle("status", {}))["status"]
    assert status["device"] == "/dev/rbd0" and status["reconciled"] is True
    assert [e["error"] for e in status["last_errors"]] == ["first", "second"]


async def test_the_replicated_mode_watches_replication(tmp_path: Path) -> None:
    """Replicated mode: the daemon has a replication watch (the rbd mode has none: its
    /status "replication" is None) reading HARBOR_HA_REPLICATION_CREDENTIALS_FILE; with that
    file missing, a look shows "not configured" in /status and in `harbor-ha status`, and
    counts no error."""
    p = build(
        example_settings(
            node_name="a", mode="replicated", priority_file=tmp_path / "prio",
            fault_file=tmp_path / "fault", runtime_dir=tmp_path / "run",
            state_dir=tmp_path / "state",
            replication_credentials_file=tmp_path / "replication.ini",
        )
    )  # fmt: skip
    try:
        assert p.replication is not None
        status = (await p.control.handle("status", {}))["status"]
        assert status["replication"]["configured"] is None
        await p.replication.round()
        status = (await p.control.handle("status", {}))["status"]
        assert status["replication"]["configured"] is False
        assert status["replication"]["errors"] == 0 and status["last_errors"] == []
        assert "replication        not configured (" in format_status(status)
    finally:
        await p.harbor.close()
        await p.containers.close()
        await p.lease.close()
        p.history.close()


async def test_with_a_node_list_status_shows_the_cluster_fingerprint(tmp_path: Path) -> None:
    """With HARBOR_HA_NODES a shared-mode daemon has a cluster watch: /status's
    cluster_fingerprint is None until its first look, then this node's hashes read from
    Harbor's files (written here for the test), with no secret; an unreachable other node is
    no error of the daemon."""
    values = HarborValues()
    install = write_install(tmp_path / "harbor", values)
    p = build(
        example_settings(
            node_name="a", priority_file=tmp_path / "prio", fault_file=tmp_path / "fault",
            runtime_dir=tmp_path / "run", state_dir=tmp_path / "state",
            nodes=f"a=127.0.0.1:1,b=127.0.0.1:{closed_port()}", peer_timeout_s=1,
            harbor_config_dir=install.config_dir, harbor_secret_dir=install.secret_dir,
            compose_file=install.compose_file, mode="shared", shared_fs_type="none",
        )
    )  # fmt: skip
    try:
        assert p.cluster is not None
        assert (await p.control.handle("status", {}))["status"]["cluster_fingerprint"] is None
        await p.cluster.look()
        status = (await p.control.handle("status", {}))["status"]
        fingerprint = status["cluster_fingerprint"]
        assert fingerprint["harbor_version"] == "v2.6.2"
        assert all(v.startswith("sha256:") for v in fingerprint["items"].values())
        assert [s for s in secret_values(values) if s in json.dumps(status)] == []
        assert status["last_errors"] == []
        assert p.metrics.registry.get_sample_value("harbor_ha_cluster_nodes_compared") == 1
    finally:
        await p.harbor.close()
        await p.containers.close()
        await p.lease.close()
        p.history.close()


async def test_status_and_metrics_show_the_lease_of_its_owner(parts: Parts) -> None:
    """The lease in /status and the metrics come from the lease's owner: not held at start;
    after a renewal (the owner's record of it) held by this node with expiry = renewal +
    duration, the gauges say the same (the machine being MASTER: its own lease state is
    the other half of the truth); an expired renewal reads as not held."""
    from harbor_ha.lease import Held

    status = (await parts.control.handle("status", {}))["status"]
    assert status["lease"]["held"] is False and status["lease"]["expiry"] is None
    parts.driver._node = replace(parts.driver.node, state=State.MASTER)
    now_wall, now_mono = time.time(), time.monotonic()
    parts.lease.held = Held(now_mono, now_wall, 5, 1.5)
    parts.steps._leasing._export()
    lease = (await parts.control.handle("status", {}))["status"]["lease"]
    assert lease["held"] is True and lease["holder"] == "n1"
    assert lease["expiry"] == pytest.approx(now_wall + 5)
    assert 3.0 < lease["deadline_in_s"] <= 3.5
    reg = parts.metrics.registry
    assert reg.get_sample_value("harbor_ha_lease_held") == 1
    assert reg.get_sample_value("harbor_ha_lease_expiry_timestamp_seconds") == pytest.approx(
        now_wall + 5
    )
    parts.lease.held = Held(now_mono - 10, now_wall - 10, 5, 1.5)
    assert reg.get_sample_value("harbor_ha_lease_held") == 0


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("switchover", "switchover needs MASTER; this node is BACKUP"),
        ("retry", "retry is for FENCED_SELF; this node is BACKUP"),
    ],
)
async def test_control_refusals_come_from_the_machine(
    parts: Parts, command: str, message: str
) -> None:
    """The control socket refuses what the machine refuses, with the machine's reason, and
    posts nothing."""
    with pytest.raises(ControlError, match=message):
        await parts.control.handle(command, {})
    assert parts.driver.pending == 0


async def test_notify_posts_the_role_event(parts: Parts) -> None:
    """A notify-script call for our instance is posted as the keepalived event."""
    got = await parts.control.handle("notify", {"state": "master"})
    assert got == {"posted": "KA_MASTER"} and parts.driver.pending == 1


class FakeHarbor:
    """FAKE Harbor probe: healthy."""

    async def check(self, *, judge_health: bool = True) -> Report:
        return Report(True, "harbor healthy")

    async def serving(self) -> Report:
        return Report(True, "harbor serves")


@dataclass
class Report:
    healthy: bool
    reason: str
    degraded: tuple[str, ...] = ()


async def _no_step(step: Step) -> None:  # the steps' effects are not under test here
    return None


async def _no_renewal() -> tuple[Event, str]:  # the machine never asks for one here
    raise AssertionError("no renewal in BACKUP")


def driver_and_monitor(p: Parts) -> tuple[Driver, Monitor]:
    """A driver that runs no step and a monitor on the FAKE filesystem and Harbor above."""
    driver = Driver(
        Node(), run_step=_no_step, step_timeout=lambda s: 60, track=p.track, metrics=p.metrics,
        background={Kind.RENEW_LEASE: _no_renewal},
    )  # fmt: skip
    monitor = Monitor(
        p.settings, driver=driver, metrics=p.metrics, harbor=FakeHarbor(),
        containers=p.containers, ceph=p.ceph, fs=FakeFs(),  # type: ignore[arg-type]
        compose=p.compose, device=lambda: "/dev/rbd0", track=p.track, wake=Pulse(),
    )  # fmt: skip
    return driver, monitor


async def test_harbor_healthy_is_the_monitors_in_this_state_else_the_steps(
    parts: Parts,
) -> None:
    """harbor_healthy: the monitor's debounced verdict once it probed Harbor in the current
    state; before that (a new state) the start step's verdict; None when neither has one."""
    p = parts
    driver, monitor = driver_and_monitor(p)
    view = StatusView("n1", driver, p.steps, monitor, p.ticker, p.fifo, lambda: True)
    task = asyncio.create_task(driver.run((Node(state=State.MASTER, want_master=True), ()), "t"))
    try:
        await until(lambda: driver.node.state is State.MASTER)  # the driver adopted it
        assert view.harbor_healthy() is None, "adopted MASTER: nobody measured Harbor yet"
        await monitor.check_once()
        assert view.harbor_healthy() is True
        driver.post(Event.MAINTENANCE_ON, "test")  # leaves MASTER: a new state
        while driver.node.state is State.MASTER:
            await asyncio.sleep(0.01)
        assert view.harbor_healthy() is None, "the monitor's verdict was for the MASTER period"
    finally:
        task.cancel()
        await asyncio.wait({task})


async def test_monitor_zeroes_the_gauges_of_the_role_it_left(parts: Parts) -> None:
    """harbor_ha_harbor_healthy is only 1 while MASTER and harbor_ha_standby_ready only while
    standby: once the node leaves MASTER the monitor's next check sets both to 0."""
    p = parts
    driver, monitor = driver_and_monitor(p)
    sample = p.metrics.registry.get_sample_value
    p.metrics.ready.set(1)  # what a BACKUP that was ready left behind
    task = asyncio.create_task(driver.run((Node(state=State.MASTER, want_master=True), ()), "t"))
    try:
        await until(lambda: driver.node.state is State.MASTER)  # the driver adopted it
        await monitor.check_once()
        assert sample("harbor_ha_harbor_healthy") == 1
        assert sample("harbor_ha_standby_ready") == 0, "a MASTER is not a ready standby"
        driver.post(Event.MAINTENANCE_ON, "test")
        while driver.node.state is State.MASTER:
            await asyncio.sleep(0.01)
        await monitor.check_once()
        assert sample("harbor_ha_harbor_healthy") == 0
    finally:
        task.cancel()
        await asyncio.wait({task})


async def test_ticker_exports_the_vip_observation(parts: Parts) -> None:
    """harbor_ha_vip_present is the ticker's last VIP observation."""
    seen = [True]

    async def vip() -> bool:
        return seen[0]

    ticker = VipTicker(
        interval_s=1, driver=parts.driver, metrics=parts.metrics, vip_present=vip,
        notifier=parts.notifier,
    )  # fmt: skip
    await ticker.tick()
    assert parts.metrics.registry.get_sample_value("harbor_ha_vip_present") == 1
    seen[0] = False
    await ticker.tick()
    assert parts.metrics.registry.get_sample_value("harbor_ha_vip_present") == 0


async def test_the_driver_journals_each_transition(parts: Parts) -> None:
    """The daemon's driver hands every transition to the history journal under state_dir, with
    the node name, the event, the reason and the time held in the previous state."""
    from harbor_ha.history import read_history

    task = asyncio.create_task(parts.driver.run((Node(), ()), "reconciled from facts"))
    try:
        parts.driver.post(Event.MAINTENANCE_ON, "operator")
        await until(lambda: parts.driver.processed >= 1)  # the event went through the machine
    finally:
        task.cancel()
        await asyncio.wait({task})
    parts.history.flush()
    records = list(read_history(parts.settings.state_dir))
    assert records[0]["node"] == "n1" and records[0]["event"] == "RECONCILE"
    assert records[0]["reason"] == "reconciled from facts" and "in_previous_s" in records[0]


@pytest.mark.parametrize("mode", ["rbd", "replicated"])
async def test_a_two_node_mode_with_a_node_list_compares_no_fingerprint(
    tmp_path: Path, mode: str
) -> None:
    """Only the shared mode compares the nodes' Harbor files: the replicated pair's two Harbors
    hold their own secrets and an rbd standby cannot read the image's, so a node list there is
    only the peer (no cluster watch, no fingerprint in /status)."""
    p = build(
        example_settings(
            node_name="a", priority_file=tmp_path / "prio", fault_file=tmp_path / "fault",
            runtime_dir=tmp_path / "run", state_dir=tmp_path / "state", mode=mode,
            nodes=f"a=127.0.0.1:1,b=127.0.0.1:{closed_port()}", peer_timeout_s=1,
        )
    )  # fmt: skip
    try:
        assert p.cluster is None
        assert (await p.control.handle("status", {}))["status"].get("cluster_fingerprint") is None
    finally:
        await p.harbor.close()
        await p.containers.close()
        await p.lease.close()
        p.history.close()
