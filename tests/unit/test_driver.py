"""The driver: performs the machine's actions, runs steps as cancellable tasks, arms timers,
keeps the fault file in step with the node.

The steps here are ScriptedSteps, a stand-in for the adapters (the adapters are proven against
real services in tests/integration); what is under test is the driver itself, with real track
files on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from harbor_ha.daemon.build import policy_of
from harbor_ha.daemon.driver import Driver
from harbor_ha.daemon.failsafe import Failsafe
from harbor_ha.daemon.leasing import StepOutcome
from harbor_ha.keepalived.trackfile import TrackFiles, read_track_file
from harbor_ha.lease import LeaseInfo, LeaseTimeout
from harbor_ha.machine import Event, Facts, Kind, Node, State, Step, from_facts
from harbor_ha.metrics import Metrics
from harbor_ha.settings import Settings
from lab.waiting import Timeout, until
from tests.fakes import example_settings


class ScriptedSteps:
    """Stand-in for the adapters: each step succeeds, fails, is refused (the lease step: a
    live holder), or hangs until cancelled; renewals answer ``renewal``."""

    def __init__(self) -> None:
        self.plan: dict[Step, str] = {}
        self.ran: list[Step] = []
        self.cancelled: list[Step] = []
        self.renewal = Event.LEASE_RENEWED
        self.renewals = 0
        self.polls: list[Event] = []  # what each poll answers, in order (then: renews)
        self.polled = 0
        self.watches = 0
        self.renewed_in: list[State] = []  # the node's state at each renewal
        self.node: Callable[[], Node] | None = None
        self.unwound = asyncio.Event()  # a "stubborn" step's cancellation may end now
        self.started_after_unwind: list[Step] = []  # steps started once a stubborn one ended

    async def watch(self) -> None:
        self.watches += 1

    async def renew(self) -> tuple[Event, str]:
        self.renewals += 1
        if self.node is not None:
            self.renewed_in.append(self.node().state)
        return self.renewal, "scripted"

    async def poll(self) -> tuple[Event, str]:
        self.polled += 1
        return (self.polls.pop(0) if self.polls else Event.LEASE_PEER_RENEWS), "scripted"

    async def run(self, step: Step) -> None:
        self.ran.append(step)
        if self.unwound.is_set():
            self.started_after_unwind.append(step)
        how = self.plan.get(step, "ok")
        if how == "stubborn":  # resists cancellation until the test lets it unwind
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                while not self.unwound.is_set():  # its own timeout's cancellation too
                    with contextlib.suppress(asyncio.CancelledError):
                        await self.unwound.wait()
                self.cancelled.append(step)
                raise
        if how == "fail":
            raise RuntimeError(f"{step} broke")
        if how == "held":
            raise StepOutcome(Event.LEASE_HELD_BY_PEER, "held by harbor-ha:peer")
        if how == "taken":
            raise StepOutcome(Event.LEASE_TAKEN, "fenced harbor-ha:peer and took its lease")
        if how == "slow":
            await asyncio.sleep(0.5)
        if how == "hang":
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled.append(step)
                raise


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return example_settings(
        priority_file=tmp_path / "prio",
        fault_file=tmp_path / "fault",
        runtime_dir=tmp_path / "run",
        backoff_initial_s=0.2,
        backoff_max_s=0.4,
        switchover_hold_s=0.2,
        fenced_self_retry_s=0.2,
        master_stable_s=0.3,
        vip_mismatch_ticks=2,
        lease_duration_s=2,
        lease_renew_interval_s=0.1,
        lease_margin_s=0.5,
        lease_watch_interval_s=0.1,  # the lab's (0.1 s adverts): several firings per test
    )


class Harness:
    def __init__(self, settings: Settings) -> None:
        self.steps = ScriptedSteps()
        self.track = TrackFiles(settings.priority_file, settings.fault_file)
        self.track.ensure()
        self.metrics = Metrics()
        self.policy = policy_of(settings)
        self.driver = self.make_driver()
        self.steps.node = lambda: self.driver.node
        self.fault_path = settings.fault_file

    def make_driver(self, step_timeout_s: float = 0.5, **extra: Any) -> Driver:
        """A driver on this harness's steps, track files and metrics (``extra``: more of
        Driver's keyword arguments, e.g. ``stuck``; ``background`` adds to the lease's)."""
        return Driver(
            Node(policy=self.policy),
            run_step=self.steps.run,
            step_timeout=lambda s: step_timeout_s,
            track=self.track,
            metrics=self.metrics,
            background={
                Kind.RENEW_LEASE: self.steps.renew,
                Kind.POLL_LEASE: self.steps.poll,
                Kind.WATCH_LEASE: self.steps.watch,
                **extra.pop("background", {}),
            },
            interface="eth9",
            **extra,
        )
        self.task: asyncio.Task[None] | None = None

    def start(self, node: Node | None = None) -> None:
        """Run the driver from ``node`` (with the fixture's timing policy)."""
        first = replace(node or Node(), policy=self.policy)
        self.task = asyncio.create_task(self.driver.run((first, ()), "test start"))

    async def until(self, cond: Callable[[], Any], what: str, within_s: float = 5.0) -> None:
        """lab.waiting.until, its failure naming the driver's node."""
        try:
            await until(cond, what, within_s)
        except Timeout as exc:
            raise Timeout(f"{exc}; node={self.driver.node}") from None

    def fault(self) -> int | None:
        return read_track_file(self.fault_path)


@pytest.fixture
async def h(settings: Settings) -> AsyncIterator[Harness]:
    harness = Harness(settings)
    yield harness
    if harness.task is not None and not harness.task.done():
        harness.task.cancel()
        await asyncio.wait({harness.task})


async def test_promotion_runs_steps_in_order(h: Harness) -> None:
    """A MASTER line runs lease, fence, map, mount, start and lands in MASTER; the fault file, set
    until reconcile, is cleared; the transitions are counted and recorded."""
    h.start()
    await h.until(lambda: h.fault() == 0, "fault file cleared after reconcile")
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.driver.node.state is State.MASTER, "MASTER")
    assert h.steps.ran == [Step.LEASE, Step.FENCE, Step.MAP, Step.MOUNT, Step.START]
    assert [t["to"] for t in h.driver.transitions][-1] == "MASTER"
    samples = next(iter(h.metrics.failover_duration.collect())).samples
    count = next(x.value for x in samples if x.name.endswith("_count"))
    assert count == 1, "one failover observed"


async def test_backup_during_promotion_cancels_and_rolls_back(h: Harness) -> None:
    """BACKUP while the map step hangs: the step task is cancelled, then unmap runs, BACKUP."""
    h.steps.plan[Step.MAP] = "hang"
    h.start()
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: Step.MAP in h.steps.ran, "map started")
    h.driver.post(Event.KA_BACKUP, "test")
    await h.until(lambda: h.driver.node.state is State.BACKUP, "BACKUP")
    assert h.steps.cancelled == [Step.MAP]
    assert h.steps.ran == [Step.LEASE, Step.FENCE, Step.MAP, Step.UNMAP]
    assert h.fault() == 0, "a cancel is not a failure: no fault"


async def test_renewals_go_on_while_a_cancelled_step_unwinds(h: Harness) -> None:
    """A step that resists its cancellation (its process group dying slowly) does not stop the
    driver: while the cancelled map step unwinds, RENEW_DUE keeps being handled and the lease
    renewed (a node rolling back is never fenced for silence); the rollback's unmap step
    starts only once the cancelled step has ended (two steps never overlap)."""
    h.steps.plan[Step.MAP] = "stubborn"
    h.start()
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: Step.MAP in h.steps.ran, "map started")
    h.driver.post(Event.KA_BACKUP, "test")
    try:
        await h.until(lambda: h.driver.node.state is State.UNMAPPING, "rolling back")
        before = h.steps.renewals
        await h.until(lambda: h.steps.renewals >= before + 3, "renewals while the step unwinds")
        assert h.steps.cancelled == [] and Step.UNMAP not in h.steps.ran
    finally:
        h.steps.unwound.set()
    await h.until(lambda: h.driver.node.state is State.BACKUP, "BACKUP")
    assert h.steps.cancelled == [Step.MAP] and h.steps.started_after_unwind == [Step.UNMAP]


async def test_step_timeout_rolls_back_with_fault_then_backoff_clears(h: Harness) -> None:
    """A step past its timeout is cancelled as STEP_TIMEOUT: roll back, fault file set, and the
    backoff timer clears it later."""
    h.steps.plan[Step.MOUNT] = "hang"
    h.start()
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(
        lambda: h.driver.node.state is State.BACKUP and h.driver.node.fault,
        "rolled back with fault",
    )
    assert h.steps.ran == [Step.LEASE, Step.FENCE, Step.MAP, Step.MOUNT, Step.UNMOUNT, Step.UNMAP]
    assert h.fault() == 1
    await h.until(lambda: h.fault() == 0, "backoff expired")


async def test_failed_demotion_fences_self_and_retries(h: Harness) -> None:
    """Unmount failing ends in FENCED_SELF (fault file set); the periodic retry re-runs the
    demotion and a clean end clears the fault."""
    h.steps.plan[Step.UNMOUNT] = "fail"
    h.start(Node(state=State.MASTER, want_master=True))
    h.driver.post(Event.KA_BACKUP, "test")
    await h.until(lambda: h.driver.node.state is State.FENCED_SELF, "FENCED_SELF")
    assert h.fault() == 1
    h.steps.plan[Step.UNMOUNT] = "ok"
    await h.until(lambda: h.driver.node.state is State.BACKUP, "retry succeeded")
    assert h.fault() == 0


async def test_demotion_step_stuck_in_d_state_fences_self_with_that_reason(
    settings: Settings,
) -> None:
    """An unmount past its bound whose command did not end after the kill (the runner's
    unfinished_here() names it, in D state) ends FENCED_SELF with a reason that says so: the
    step, its bound, the command that did not return and its D state."""
    h = Harness(settings)
    stuck = ["umount /data/harbor [pid 4242, D state: uninterruptible I/O, SIGKILL cannot end it]"]
    h.driver = h.make_driver(step_timeout_s=0.3, stuck=lambda: stuck)
    h.steps.plan[Step.UNMOUNT] = "hang"
    h.start(Node(state=State.MASTER, want_master=True))
    try:
        h.driver.post(Event.KA_BACKUP, "test")
        await h.until(lambda: h.driver.node.state is State.FENCED_SELF, "FENCED_SELF")
        reason = [t for t in h.driver.transitions if t["to"] == "FENCED_SELF"][-1]["reason"]
        assert reason.startswith("unmount timed out after 0.3 s; did not return: umount"), reason
        assert "[pid 4242, D state" in reason, reason
    finally:
        assert h.task is not None
        h.task.cancel()
        await asyncio.wait({h.task})


async def test_shutdown_exits(h: Harness) -> None:
    """SHUTDOWN on MASTER (no demote-on-exit) ends the driver without running a step."""
    h.start(Node(state=State.MASTER, want_master=True))
    h.driver.post(Event.SHUTDOWN, "test")
    assert h.task is not None
    await asyncio.wait_for(h.task, 5)
    assert h.driver.exited.is_set() and h.steps.ran == []


async def test_illegal_and_stale_events_are_ignored(h: Harness) -> None:
    """An illegal event (STEP_DONE with no step) and a stale step result change nothing."""
    h.start()
    h.driver.post(Event.STEP_DONE, "bogus")
    h.driver.post(Event.STEP_DONE, "stale", token=-1)
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.driver.node.state is State.MASTER, "MASTER")
    assert h.steps.ran == [Step.LEASE, Step.FENCE, Step.MAP, Step.MOUNT, Step.START]


async def test_fault_file_rewritten_if_changed_behind_our_back(h: Harness) -> None:
    """The tick's rewrite puts the fault file back when someone else changed it."""
    h.start(Node(state=State.BACKUP, maintenance=True))
    await h.until(lambda: h.driver.node.maintenance, "maintenance adopted")
    h.fault_path.write_text("0\n")
    h.driver.rewrite_fault()
    assert h.fault() == 1


async def test_failures_forgotten_only_after_master_held(h: Harness) -> None:
    """After a failed promotion, a later successful one keeps the failure count until the node
    has held MASTER for master_stable_s (then the MASTER_STABLE timer resets it)."""
    h.steps.plan[Step.MOUNT] = "fail"
    h.start()
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(
        lambda: h.driver.node.failures == 1 and h.driver.node.state is State.BACKUP, "failed once"
    )
    h.steps.plan[Step.MOUNT] = "ok"
    await h.until(lambda: not h.driver.node.fault, "backoff over")
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.driver.node.state is State.MASTER, "MASTER")
    assert h.driver.node.failures == 1
    await h.until(lambda: h.driver.node.failures == 0, "MASTER_STABLE")


async def test_vip_absent_for_enough_ticks_demotes_as_keepalived_would(h: Harness) -> None:
    """The VIP tick only reports VIP_ABSENT; the machine counts: one tick changes nothing, the
    second (vip_mismatch_ticks=2) posts KA_BACKUP with the reason the fault suite reads."""
    h.start(Node(state=State.MASTER, want_master=True))
    h.driver.post(Event.VIP_ABSENT, "tick")
    await h.until(lambda: h.driver.node.vip_mismatch == 1, "first mismatch counted")
    assert h.driver.node.state is State.MASTER
    h.driver.post(Event.VIP_ABSENT, "tick")
    await h.until(lambda: h.driver.node.state is not State.MASTER, "left MASTER")
    left = next(t for t in h.driver.transitions if t["from"] == "MASTER")
    assert left["event"] == "KA_BACKUP" and "VIP absent on eth9 for 2 ticks" in left["reason"]


async def test_vip_seen_resets_the_count(h: Harness) -> None:
    """A tick that agrees with the state resets the count: absent, seen, absent never acts."""
    h.start(Node(state=State.MASTER, want_master=True))
    for event in (Event.VIP_ABSENT, Event.VIP_SEEN, Event.VIP_ABSENT):
        h.driver.post(event, "tick")
    await h.until(lambda: h.driver.pending == 0 and h.driver.processed >= 3, "ticks handled")
    assert h.driver.node.state is State.MASTER and h.driver.node.vip_mismatch == 1


async def test_cancelled_timer_firing_is_dropped(h: Harness) -> None:
    """An operator RETRY cancels FENCED_SELF's retry timer: the demotion is retried once, and
    the timer (due 0.2 s later) never posts anything."""
    h.steps.plan[Step.UNMOUNT] = "fail"
    h.start(Node(state=State.MASTER, want_master=True))
    h.driver.post(Event.KA_BACKUP, "test")
    await h.until(lambda: h.driver.node.state is State.FENCED_SELF, "FENCED_SELF")
    h.steps.plan[Step.UNMOUNT] = "ok"
    h.driver.post(Event.RETRY, "operator")
    await h.until(lambda: h.driver.node.state is State.BACKUP, "retry succeeded")
    handled, watched = h.driver.processed, h.steps.watches
    await asyncio.sleep(0.5)
    # In BACKUP only the standby's lease watch fires (each firing is one watch).
    assert h.driver.processed - handled == h.steps.watches - watched, "the cancelled timer fired"
    assert [t["event"] for t in h.driver.transitions].count("RETRY") == 1


async def test_master_renews_the_lease_every_interval(h: Harness) -> None:
    """Once the lease step is done the driver renews it on the machine's timer (every 0.1 s
    here) for as long as the node holds it, and stays MASTER while renewals succeed."""
    h.start()
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.driver.node.state is State.MASTER, "MASTER")
    await h.until(lambda: h.steps.renewals >= 5, "five renewals")
    await asyncio.sleep(2.0)  # longer than the deadline (1.4 s): renewals keep re-arming it
    assert h.driver.node.state is State.MASTER


async def test_no_timely_renewal_demotes_at_the_deadline(h: Harness) -> None:
    """Renewals that get no answer (Ceph unreachable): the master stops serving at its
    deadline (duration 2 - margin 0.5 - interval 0.1 = 1.4 s after the last success)."""
    h.start()
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.driver.node.state is State.MASTER, "MASTER")
    h.steps.renewal = Event.LEASE_UNREACHABLE
    loop = asyncio.get_running_loop()
    started = loop.time()
    await h.until(lambda: Step.STOP in h.steps.ran, "demotion", within_s=5)
    assert 1.0 <= loop.time() - started <= 2.0
    assert h.fault() == 1


async def test_a_live_lease_holder_is_never_fenced(h: Harness) -> None:
    """The lease step finds a live holder: no fence step runs, the fault file goes up (the
    VIP goes to the holder) and stays up while the polls (every 0.1 s here) say the holder
    renews; when a poll says the holder stopped, the fault clears and a MASTER line
    promotes again, starting with the lease step."""
    h.steps.plan[Step.LEASE] = "held"
    h.start()
    await h.until(lambda: h.fault() == 0, "fault file cleared after reconcile")
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.fault() == 1, "fault file raised")
    refused = h.driver.node.state
    assert refused is State.BACKUP
    assert h.steps.ran == [Step.LEASE]
    await h.until(lambda: h.steps.polled >= 5, "five polls")
    assert h.fault() == 1 and h.steps.ran == [Step.LEASE]
    h.steps.plan[Step.LEASE] = "ok"
    h.steps.polls = [Event.LEASE_CLAIM_BACK]
    await h.until(lambda: h.fault() == 0, "fault cleared by the claim back")
    polled = h.steps.polled
    await asyncio.sleep(0.3)
    assert h.steps.polled == polled, "no poll once the fault is cleared"
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.driver.node.state is State.MASTER, "MASTER")
    assert h.steps.ran[:2] == [Step.LEASE, Step.LEASE]


async def test_an_undeclared_step_outcome_fails_the_step(h: Harness) -> None:
    """A step ending with an outcome it does not declare (machine.OUTCOMES: the map step with
    the fence step's LEASE_TAKEN) is a bug: the driver posts STEP_FAILED, so the promotion
    rolls back as a failed one (fault, one failure, BACKUP) and the error is recorded."""
    h.steps.plan[Step.MAP] = "taken"
    h.start()
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(
        lambda: h.driver.node.failures == 1 and h.driver.node.state is State.BACKUP, "failed once"
    )
    assert h.fault() == 1
    assert h.steps.ran == [Step.LEASE, Step.FENCE, Step.MAP, Step.UNMAP]
    errors = [e["error"] for e in h.driver.errors if e["where"] == "map"]
    assert errors == [
        "map ended with LEASE_TAKEN, not one of its outcomes: "
        "fenced harbor-ha:peer and took its lease"
    ]


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


async def test_failed_promotion_metrics_and_backoff_deadline(h: Harness) -> None:
    """A failed promotion counts promotions_total{outcome=failed}, sets failed_promotions to the
    node's failures, and the armed backoff shows as a future deadline that goes back to 0 when
    the timer fires; the next promotion counts outcome=succeeded."""
    h.steps.plan[Step.MOUNT] = "fail"
    h.start()
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.driver.node.failures == 1, "failed once")
    m = h.metrics
    assert _sample(m, "harbor_ha_promotions_total", outcome="failed") == 1
    assert _sample(m, "harbor_ha_failed_promotions") == 1
    await h.until(lambda: h.driver.node.state is State.BACKUP, "rolled back")
    until = _sample(m, "harbor_ha_backoff_until_timestamp_seconds")
    assert until is not None and time.time() < until <= time.time() + 0.4
    await h.until(lambda: not h.driver.node.fault, "backoff over")
    assert _sample(m, "harbor_ha_backoff_until_timestamp_seconds") == 0
    h.steps.plan[Step.MOUNT] = "ok"
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.driver.node.state is State.MASTER, "MASTER")
    assert _sample(m, "harbor_ha_promotions_total", outcome="succeeded") == 1
    assert _sample(m, "harbor_ha_promotions_total", outcome="failed") == 1
    await h.until(lambda: _sample(m, "harbor_ha_failed_promotions") == 0, "MASTER_STABLE")


async def test_maintenance_gauge_follows_the_node(h: Harness) -> None:
    """harbor_ha_maintenance is 1 exactly while the node's maintenance flag is on."""
    h.start()
    await h.until(lambda: _sample(h.metrics, "harbor_ha_maintenance") == 0, "initial 0")
    h.driver.post(Event.MAINTENANCE_ON, "test")
    await h.until(lambda: _sample(h.metrics, "harbor_ha_maintenance") == 1, "maintenance on")
    h.driver.post(Event.MAINTENANCE_OFF, "test")
    await h.until(lambda: _sample(h.metrics, "harbor_ha_maintenance") == 0, "maintenance off")


async def test_warm_action_runs_the_warm_callback_and_survives_its_failure(
    settings: Settings,
) -> None:
    """A ready standby's STANDBY_READY makes the driver run the warm callback in the background
    (the node stays BACKUP, no step runs); a failing warm is counted and recorded, and the driver
    goes on deciding (a later MASTER line still promotes)."""
    calls: list[str] = []

    async def warm() -> None:
        calls.append("warm")
        raise RuntimeError("compose broke")

    h = Harness(settings)
    h.driver = h.make_driver(background={Kind.WARM: warm})
    h.start()
    try:
        h.driver.post(Event.STANDBY_READY, "test")
        await h.until(lambda: calls == ["warm"], "warm called")
        await h.until(
            lambda: [e["where"] for e in h.driver.errors] == ["warm"], "warm failure recorded"
        )
        assert h.steps.ran == [] and [t["to"] for t in h.driver.transitions] == ["BACKUP"]
        h.driver.post(Event.KA_MASTER, "test")
        await h.until(lambda: h.driver.node.state is State.MASTER, "MASTER after a failed warm")
    finally:
        assert h.task is not None
        h.task.cancel()
        await asyncio.wait({h.task})


async def test_a_standby_watches_the_lease_every_interval(h: Harness) -> None:
    """Reconciled as BACKUP, the node looks at the lease on the machine's WATCH timer (every
    0.1 s here) and keeps doing so; promoting stops the watch (the timer is not re-armed
    outside BACKUP), and the next BACKUP starts it again."""
    first = from_facts(Facts(False, False, False, False), policy=h.policy)
    h.task = asyncio.create_task(h.driver.run(first, "test start"))
    await h.until(lambda: h.steps.watches >= 3, "three watches")
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.driver.node.state is State.MASTER, "MASTER")
    await asyncio.sleep(0.15)
    watched = h.steps.watches
    await asyncio.sleep(0.3)
    assert h.steps.watches == watched, "a MASTER does not watch"
    h.driver.post(Event.KA_BACKUP, "test")
    await h.until(lambda: h.steps.watches >= watched + 2, "watching again in BACKUP")


async def demote_slowly(h: Harness, event: Event) -> None:
    """Promote to MASTER, then post ``event`` with a stop step that takes 0.5 s."""
    h.steps.plan[Step.STOP] = "slow"
    h.start()
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.driver.node.state is State.MASTER, "MASTER")
    h.driver.post(event, "test")


async def test_a_clean_demotion_keeps_renewing_until_the_release(h: Harness) -> None:
    """keepalived takes the VIP away (a clean demotion): renewals go on through STOPPING (its
    step takes 0.5 s here, five intervals), so the peer never sees a held, unrenewed lease
    and fences a node whose unmount has not flushed; back in BACKUP they stop."""
    await demote_slowly(h, Event.KA_BACKUP)
    await h.until(lambda: h.driver.node.state is State.BACKUP, "BACKUP")
    assert h.steps.renewed_in.count(State.STOPPING) >= 3, h.steps.renewed_in
    renewals = h.steps.renewals
    await asyncio.sleep(0.3)
    assert h.steps.renewals == renewals, "renewing after the release"


async def test_a_demotion_for_a_lost_lease_stops_renewing(h: Harness) -> None:
    """The renewal found the peer holding the lease (LEASE_LOST): the demotion does not renew
    (it lost the lease; renewing would only try to take it back)."""
    await demote_slowly(h, Event.LEASE_LOST)
    await h.until(lambda: h.driver.node.state is State.STOPPING, "STOPPING")
    await h.until(lambda: any(t["to"] == "BACKUP" for t in h.driver.transitions), "BACKUP")
    # One renewal may have been due in the same instant as the event; none after it.
    assert h.steps.renewed_in.count(State.STOPPING) <= 1, h.steps.renewed_in


async def test_a_hung_watch_is_not_started_twice_nor_logged_as_a_warning(h: Harness) -> None:
    """A standby's look that hangs (a frozen Ceph, until its request timeout) is not joined
    by a second one at the next WATCH firings (one background I/O of a kind at a time), and
    those skipped firings are not warnings (they would be ten a second)."""
    hung = asyncio.Event()
    started = 0

    async def stuck_watch() -> None:
        nonlocal started
        started += 1
        await hung.wait()

    h.driver = h.make_driver(background={Kind.WATCH_LEASE: stuck_watch})
    first = from_facts(Facts(False, False, False, False), policy=h.policy)
    with capture_logs() as logs:
        h.task = asyncio.create_task(h.driver.run(first, "test start"))
        await asyncio.sleep(0.45)
    hung.set()
    skipped = [e for e in logs if e["event"] == "background_io_still_running"]
    assert started == 1 and len(skipped) >= 2
    assert {e["log_level"] for e in skipped} == {"debug"}


class SlowUnreachableCeph:
    """The failsafe's Ceph probe: a read that waits until the test lets it time out."""

    def __init__(self) -> None:
        self.probing = asyncio.Event()
        self.answer = asyncio.Event()

    async def inspect(self, timeout_s: float | None = None) -> LeaseInfo:
        self.probing.set()
        await self.answer.wait()
        raise LeaseTimeout("get_info", timeout_s or 0)


async def test_no_promise_while_a_promotion_starts_during_the_probe(
    h: Harness, settings: Settings
) -> None:
    """The failsafe's decision and keepalived's MASTER race: the node is BACKUP when the
    request comes, and a MASTER line moves it to LEASING while its Ceph probe waits.  The
    promise is the machine's decision, taken after the probe: refused (no promise to the
    peer, nothing promised here), and the promotion goes on."""
    ceph = SlowUnreachableCeph()
    fs_settings = settings.model_copy(
        update={"failsafe_secret": SecretStr("k"), "failsafe_listen": "127.0.0.1:0"}
    )
    fs = Failsafe(fs_settings, ceph, lambda: h.driver.node, h.driver.decide)  # type: ignore[arg-type]
    h.steps.plan[Step.LEASE] = "hang"
    h.start()
    deciding = asyncio.create_task(fs.decide())
    await ceph.probing.wait()
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.driver.node.state is State.LEASING, "LEASING")
    ceph.answer.set()
    decision = await deciding
    assert not decision.promise and "LEASING" in decision.reason
    assert h.driver.node.state is State.LEASING and not h.driver.node.promised


async def test_a_deadline_demotion_keeps_renewing_through_a_slow_stop(h: Harness) -> None:
    """The master's renewals get no answer until its deadline demotes it; `compose stop`
    then takes long (the stop step held here: up to stop_timeout_s, 60 s, in the field).
    The demotion goes on renewing, so once Ceph answers again the peer sees a live holder
    that demotes (it waits for the release) and never fences it in the middle of its stop;
    the unmap's release ends the renewals."""
    h.steps.plan[Step.STOP] = "stubborn"
    h.start()
    h.driver.post(Event.KA_MASTER, "test")
    await h.until(lambda: h.driver.node.state is State.MASTER, "MASTER")
    h.steps.renewal = Event.LEASE_UNREACHABLE
    try:
        await h.until(lambda: h.driver.node.state is State.STOPPING, "the deadline demotes")
        h.steps.renewal = Event.LEASE_RENEWED  # Ceph answers again during the slow stop
        await h.until(
            lambda: h.steps.renewed_in.count(State.STOPPING) >= 3, "renewals during the stop"
        )
        assert Step.UNMOUNT not in h.steps.ran, "the stop is still running"
    finally:
        h.steps.unwound.set()
