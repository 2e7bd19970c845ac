"""The daemon's use of the lease (daemon/leasing.py): the lease step's patience with a holder,
the renewal's verdicts.  The lease itself is a scripted stand-in here (the real one is proven
against Ceph in tests/integration/ceph/test_lease_real.py); under test is the decision logic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from harbor_ha.commands.preflight import peer_name_clash
from harbor_ha.daemon.leasing import Leasing, StepOutcome
from harbor_ha.lease import Held, LeaseError, LeaseHeldByPeer, LeaseInfo, LeaseTimeout, Locker
from harbor_ha.machine import Event, Node, State
from harbor_ha.metrics import Metrics
from tests.fakes import example_settings

HOLDER_ADDR = "10.0.0.2:0/4242"


class ScriptedLease:
    """Answers acquire() from a script: 'ok', 'busy', 'timeout' or 'slow' (ok after a delay)."""

    def __init__(
        self, script: list[str], *, renewing: bool = False, backwards: bool = False
    ) -> None:
        self.script = script
        self.renewing = renewing  # the holder's expiry moves forward at each look
        self.backwards = backwards  # the holder renews, each expiry earlier than the last
        self.expiry = time.time() + 0.3
        self.held: Held | None = None
        self.last_error: str | None = None
        self.calls = 0
        self.released = 0
        self.gone = False  # released since the last acquire (as the real Lease tracks it)
        self.blocklist: list[str] = []  # what Ceph's blocklist would list
        self.looks = 0
        self.free = False
        self.broken: list[Locker] = []

    async def acquire(self) -> Held:
        self.gone = False
        how = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if how == "busy":
            raise LeaseHeldByPeer("lease lock: busy: held by harbor-ha:b")
        if how == "timeout":
            raise LeaseTimeout("lock", 3.0)
        sent = time.monotonic()
        if how == "slow":
            await asyncio.sleep(0.3)
        self.held = Held(sent, time.time(), 2, 0.5)
        return self.held

    async def renew(self) -> Held:
        if self.gone:
            raise LeaseError("released", "lease renew: released")
        return await self.acquire()

    async def inspect(self, timeout_s: float | None = None) -> LeaseInfo:
        self.looks += 1
        if self.free:
            return LeaseInfo(())
        if self.renewing:
            self.expiry = time.time() + 2
        if self.backwards:
            self.expiry -= 0.25
        return LeaseInfo((Locker("client.9", "harbor-ha:b", "b", self.expiry, HOLDER_ADDR),))

    async def blocklisted(self) -> list[str]:
        return list(self.blocklist)

    async def blocklist_add(self, addresses: Sequence[str], expire_s: int) -> None:
        self.blocklist.extend(addresses)

    async def break_lock(self, holder: Locker) -> None:
        self.broken.append(holder)
        self.script = ["ok"]

    async def release(self) -> None:
        self.released += 1
        self.gone = True
        self.held = None

    async def close(self) -> None:
        return None


def leasing(
    tmp_path: Path, script: list[str], *, renewing: bool = False, backwards: bool = False
) -> tuple[Leasing, ScriptedLease]:
    settings = example_settings(
        priority_file=tmp_path / "p", fault_file=tmp_path / "f", runtime_dir=tmp_path,
        node_name="a", lease_duration_s=2, lease_renew_interval_s=0.1, lease_margin_s=0.5,
    )  # fmt: skip
    lease = ScriptedLease(script, renewing=renewing, backwards=backwards)
    return Leasing(settings, lease, Metrics()), lease


async def test_a_renewing_holder_is_refused_after_one_interval(tmp_path: Path) -> None:
    """The holder's expiry moves forward (looked at every 0.1 s, for at most one interval +
    the stale margin): the step ends with LEASE_HELD_BY_PEER at the first look that shows it
    (not a failure), nothing is marked for fencing, and /status names the holder."""
    ls, lease = leasing(tmp_path, ["busy"], renewing=True)
    started = time.monotonic()
    with pytest.raises(StepOutcome) as info:
        await ls.take()
    took = time.monotonic() - started
    assert info.value.event is Event.LEASE_HELD_BY_PEER
    assert 0.05 <= took < 0.3 and lease.calls == 1 and lease.looks == 2
    assert ls.stale is None and "harbor-ha:b" in str(ls.view()["holder"])


async def test_a_renewal_with_an_earlier_expiry_is_a_renewal(tmp_path: Path) -> None:
    """Each look finds another expiry, each earlier than the last (an OSD clock stepped back;
    python3-rados's lock_exclusive sent duration + garbage microseconds, so Pacific's expiries
    jumped by up to 4.3 s either way; the partition row's CI failure): the holder renews, so
    LEASE_HELD_BY_PEER, never LEASE_STALE (that fenced a live master)."""
    ls, lease = leasing(tmp_path, ["busy"], backwards=True)
    with pytest.raises(StepOutcome) as info:
        await ls.take()
    assert info.value.event is Event.LEASE_HELD_BY_PEER
    assert ls.stale is None and lease.broken == []


async def test_a_holder_whose_expiry_stands_still_is_marked_stale(tmp_path: Path) -> None:
    """The expiry did not move over one interval (+ margin, looked at every 0.1 s): LEASE_STALE,
    with the holder
    (its entity, cookie and lease-client address) kept for the fence step; no break yet."""
    ls, lease = leasing(tmp_path, ["busy"])
    started = time.monotonic()
    with pytest.raises(StepOutcome) as info:
        await ls.take()
    assert time.monotonic() - started >= 0.1 + 0.25, "the whole interval + margin watched"
    assert info.value.event is Event.LEASE_STALE
    assert ls.stale is not None and ls.stale.address == HOLDER_ADDR
    assert lease.broken == [] and lease.held is None


async def test_take_over_breaks_the_fenced_holders_lock_and_takes_it(tmp_path: Path) -> None:
    """After the fence: the stale holder's lock is broken (that holder, by entity and
    cookie) and the lease taken; the node holds it and nothing is marked stale any more."""
    ls, lease = leasing(tmp_path, ["busy"])
    with pytest.raises(StepOutcome):
        await ls.take()
    assert ls.stale is not None
    await ls.take_over(ls.stale)
    assert [(b.entity, b.cookie) for b in lease.broken] == [("client.9", "harbor-ha:b")]
    assert ls.view()["held"] is True and ls.stale is None


async def test_wait_for_lapse_retries_until_the_lock_is_free(tmp_path: Path) -> None:
    """The fallback when the holder's fence is unconfirmed: no break, the lease is taken on
    the first attempt after the lock lapsed (retried every interval)."""
    ls, lease = leasing(tmp_path, ["busy"] * 4 + ["ok"])
    holder = (await lease.inspect()).holder
    assert holder is not None
    await ls.wait_for_lapse(holder)
    assert lease.calls == 5 and lease.broken == [] and ls.view()["held"] is True


async def test_a_lease_freed_between_two_calls_is_taken(tmp_path: Path) -> None:
    """Busy at the take, free at the look: the take is tried again at once and succeeds."""
    ls, lease = leasing(tmp_path, ["busy", "ok"])
    lease.free = True
    await ls.take()
    assert lease.calls == 2 and ls.view()["held"] is True


async def test_poll_keeps_waiting_while_the_holder_renews(tmp_path: Path) -> None:
    """A refused standby's polls: LEASE_PEER_RENEWS while the expiry moves (no peer URL:
    the heal check is skipped)."""
    ls, _ = leasing(tmp_path, ["busy"], renewing=True)
    for _ in range(4):
        event, reason = await ls.poll()
        assert event is Event.LEASE_PEER_RENEWS and "renews" in reason


async def test_poll_claims_back_when_the_expiry_stops_or_the_lease_is_free(
    tmp_path: Path,
) -> None:
    """The expiry unchanged over three looks (two intervals): LEASE_CLAIM_BACK; two looks
    are not enough.  A free lease: LEASE_CLAIM_BACK at once."""
    ls, lease = leasing(tmp_path, ["busy"])
    assert (await ls.poll())[0] is Event.LEASE_PEER_RENEWS
    assert (await ls.poll())[0] is Event.LEASE_PEER_RENEWS
    event, reason = await ls.poll()
    assert event is Event.LEASE_CLAIM_BACK and "stopped renewing" in reason
    lease.free = True
    assert await ls.poll() == (Event.LEASE_CLAIM_BACK, "the lease is free")


async def test_take_does_not_trust_a_slow_answer(tmp_path: Path) -> None:
    """A success that took longer than one interval is retried (the deadline assumes
    answers within one interval)."""
    ls, lease = leasing(tmp_path, ["slow", "ok"])
    await ls.take()
    assert lease.calls == 2


@pytest.mark.parametrize(
    ("how", "event"),
    [
        ("ok", Event.LEASE_RENEWED),
        ("busy", Event.LEASE_LOST),
        ("timeout", Event.LEASE_UNREACHABLE),
        ("slow", Event.LEASE_UNREACHABLE),
    ],
)
async def test_renewal_verdicts(tmp_path: Path, how: str, event: Event) -> None:
    """A renewal's outcome as the machine's event: renewed in time, the peer holds it, no
    answer, or an answer too late to count."""
    ls, _ = leasing(tmp_path, [how])
    told = await ls.renew()
    assert told is not None
    got, reason = told
    assert got is event and reason


async def test_release_at_the_end_of_a_demotion(tmp_path: Path) -> None:
    """Release gives the lease up and the expiry gauge goes back to 0."""
    ls, lease = leasing(tmp_path, ["ok"])
    await ls.take()
    assert ls.metrics.registry.get_sample_value("harbor_ha_lease_expiry_timestamp_seconds")
    await ls.release()
    assert lease.released == 1 and ls.view()["held"] is False
    assert ls.metrics.registry.get_sample_value("harbor_ha_lease_expiry_timestamp_seconds") == 0


async def test_a_renewal_after_the_release_tells_nothing(tmp_path: Path) -> None:
    """A renewal still due when the demotion released the lease neither takes it back nor
    reports a failure (None: the machine is told nothing)."""
    ls, lease = leasing(tmp_path, ["ok"])
    await ls.take()
    await ls.release()
    assert await ls.renew() is None and lease.calls == 1


async def test_looks_made_while_backup_shorten_the_lease_step(tmp_path: Path) -> None:
    """The standby's watch saw the holder's expiry long enough ago (more than one interval +
    margin): the lease step judges it stopped from one fresh look, without the watch's wait
    (LEASE_STALE at once), and counts from the earliest look that saw that expiry."""
    ls, lease = leasing(tmp_path, ["busy"])
    await ls.watch()
    await ls.watch()
    await asyncio.sleep(0.1 + 0.25)
    started = time.monotonic()
    with pytest.raises(StepOutcome) as info:
        await ls.take()
    assert info.value.event is Event.LEASE_STALE
    # Not the watch's wait: that alone would be one gap (0.35 s) from the step's own look.
    assert time.monotonic() - started < 0.3 and lease.looks == 3


async def test_a_recent_watch_only_shortens_the_wait(tmp_path: Path) -> None:
    """The watch saw the expiry less than one interval + margin ago: the step waits only for
    the rest of that gap (from the end of that look), then judges the holder stopped."""
    ls, _ = leasing(tmp_path, ["busy"])
    await ls.watch()
    watched = time.monotonic()
    await asyncio.sleep(0.2)
    with pytest.raises(StepOutcome) as info:
        await ls.take()
    assert info.value.event is Event.LEASE_STALE
    took = time.monotonic() - watched
    # At least the gap (0.35 s) from the watch's look; less than a whole gap counted from the
    # step's own first look (0.2 + 0.35 s).
    assert 0.35 <= took < 0.55, took


async def test_a_renewal_since_a_recent_watch_refuses_at_once(tmp_path: Path) -> None:
    """The expiry moved between the watch's last look (less than a gap ago) and the step's
    first look: the holder renews, LEASE_HELD_BY_PEER without waiting; nothing to fence."""
    ls, lease = leasing(tmp_path, ["busy"], renewing=True)
    await ls.watch()
    started = time.monotonic()
    with pytest.raises(StepOutcome) as info:
        await ls.take()
    assert info.value.event is Event.LEASE_HELD_BY_PEER and ls.stale is None
    assert time.monotonic() - started < 0.3 and lease.looks == 2  # no gap's wait (0.35 s)


async def test_a_watch_that_saw_another_expiry_is_no_evidence(tmp_path: Path) -> None:
    """The watch saw an older expiry long ago; the holder renewed once since then and then
    stopped: the old look proves nothing about now, so the step watches a whole gap from its
    own first look (never judging stale from a look of another expiry)."""
    ls, lease = leasing(tmp_path, ["busy"])
    lease.expiry -= 5
    await ls.watch()
    await asyncio.sleep(0.4)
    lease.expiry += 5
    started = time.monotonic()
    with pytest.raises(StepOutcome) as info:
        await ls.take()
    assert info.value.event is Event.LEASE_STALE
    assert time.monotonic() - started >= 0.1 + 0.25


async def status_server(status: dict[str, object]) -> web.AppRunner:
    """A peer's /status on loopback answering ``status``."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(status)

    app = web.Application()
    app.router.add_get("/status", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


@pytest.mark.parametrize(
    ("state", "event"),
    [
        ("STOPPING", Event.LEASE_HOLDER_DEMOTING),
        ("UNMOUNTING", Event.LEASE_HOLDER_DEMOTING),
        ("UNMAPPING", Event.LEASE_HOLDER_DEMOTING),
        ("MASTER", Event.LEASE_HELD_BY_PEER),
    ],
)
async def test_a_live_holder_that_demotes_is_told_apart(
    tmp_path: Path, state: str, event: Event
) -> None:
    """A live holder whose /status (real HTTP on loopback) says it is demoting and holds the
    lease: LEASE_HOLDER_DEMOTING (the machine waits in LEASING for its release); serving:
    LEASE_HELD_BY_PEER.  Never LEASE_STALE: a renewing holder is never fenced."""
    runner = await status_server({"state": state, "lease": {"held": True}})
    port = runner.addresses[0][1]
    try:
        settings = example_settings(
            priority_file=tmp_path / "p", fault_file=tmp_path / "f", runtime_dir=tmp_path,
            node_name="a", lease_renew_interval_s=0.1, peer_http_url=f"http://127.0.0.1:{port}",
        )  # fmt: skip
        ls = Leasing(settings, ScriptedLease(["busy"], renewing=True), Metrics())
        with pytest.raises(StepOutcome) as info:
            await ls.take()
    finally:
        await runner.cleanup()
    assert info.value.event is event and ls.stale is None


@pytest.mark.parametrize(
    ("status", "healed"),
    [
        ({"state": "MASTER", "lease": {"held": True}}, True),
        ({"state": "MASTER", "lease": {"held": False}}, False),
        ({"state": "BACKUP", "lease": {"held": True}}, False),
    ],
)
async def test_poll_claims_back_when_the_peer_answers_master_holding_the_lease(
    tmp_path: Path, status: dict[str, object], healed: bool
) -> None:
    """The partition healed: the peer's /status (real HTTP on loopback) answers MASTER with
    the lease held -> LEASE_CLAIM_BACK although the holder renews (clearing the fault makes
    keepalived a BACKUP again); any other answer keeps the node waiting."""
    runner = await status_server(status)
    port = runner.addresses[0][1]
    try:
        settings = example_settings(
            priority_file=tmp_path / "p", fault_file=tmp_path / "f", runtime_dir=tmp_path,
            node_name="a", lease_renew_interval_s=0.5, peer_http_url=f"http://127.0.0.1:{port}",
        )  # fmt: skip
        ls = Leasing(settings, ScriptedLease(["busy"], renewing=True), Metrics())
        event, reason = await ls.poll()
    finally:
        await runner.cleanup()
    assert (event is Event.LEASE_CLAIM_BACK) is healed, reason
    assert ("partition healed" in reason) is healed


class SlowLooks(ScriptedLease):
    """Each look reads Ceph at its start; the first answers at once, the others 0.55 s after
    their read (a `rados` process that shuts down slowly).  The holder renews every 0.5 s,
    just before the first read; its expiry is the renewal time + 2 s."""

    def __init__(self) -> None:
        super().__init__(["busy"])
        self.t0 = time.monotonic()
        self.read_at: list[float] = []

    async def inspect(self, timeout_s: float | None = None) -> LeaseInfo:
        now = time.monotonic() - self.t0
        self.read_at.append(round(now, 3))
        renewed = ((now + 0.01) // 0.5) * 0.5 - 0.01
        if len(self.read_at) > 1:
            await asyncio.sleep(0.55)
        return LeaseInfo((Locker("client.9", "harbor-ha:b", "b", renewed + 2, HOLDER_ADDR),))


async def test_slow_looks_never_make_a_renewing_holder_stale(tmp_path: Path) -> None:
    """A look that answers long after its read must not count as a late read: the watch goes
    on until a look that *started* one interval + margin after the first one ended, so two
    reads are that far apart and a holder renewing every interval is seen renewing (never
    LEASE_STALE, which would fence a live master)."""
    settings = example_settings(
        priority_file=tmp_path / "p", fault_file=tmp_path / "f", runtime_dir=tmp_path,
        node_name="a", lease_renew_interval_s=0.5, lease_stale_margin_s=0.1,
    )  # fmt: skip
    lease = SlowLooks()
    ls = Leasing(settings, lease, Metrics())
    with pytest.raises(StepOutcome) as info:
        await ls.take()
    assert info.value.event is Event.LEASE_HELD_BY_PEER, lease.read_at
    assert lease.read_at[-1] - lease.read_at[0] >= 0.6


async def test_reconcile_reads_who_holds_the_lease(tmp_path: Path) -> None:
    """Reconcile's lease fact: another node's cookie holding the lease is a peer's hold (the
    machine then never adopts MASTER); a free lease, this node's own cookie, or a read that
    fails is not (the first renewal and the deadline bound a claim then)."""
    ls, lease = leasing(tmp_path, ["ok"])
    assert await ls.peer_holds() is True
    lease.free = True
    assert await ls.peer_holds() is False
    own = example_settings(
        priority_file=tmp_path / "p", fault_file=tmp_path / "f", runtime_dir=tmp_path,
        node_name="b",
    )  # fmt: skip
    lease.free = False
    assert await Leasing(own, lease, Metrics()).peer_holds() is False

    class Unreachable(ScriptedLease):
        async def inspect(self, timeout_s: float | None = None) -> LeaseInfo:
            raise LeaseTimeout("get_info", 3.0)

    assert await Leasing(own, Unreachable(["ok"]), Metrics()).peer_holds() is False


async def test_a_peer_with_the_same_node_name_is_refused_by_name(tmp_path: Path) -> None:
    """The peer's /status names this node's own ``node_name``: the two share the lease's cookie.
    `harbor-ha check` fails naming it, and the lease step never trusts what that peer says
    (its /status is no demoting holder, no healed partition), logging the clash."""
    runner = await status_server({"node": "a", "state": "STOPPING", "lease": {"held": True}})
    port = runner.addresses[0][1]
    try:
        settings = example_settings(
            priority_file=tmp_path / "p", fault_file=tmp_path / "f", runtime_dir=tmp_path,
            node_name="a", peer_http_url=f"http://127.0.0.1:{port}",
        )  # fmt: skip
        findings = await peer_name_clash(settings)
        assert [level for level, _ in findings] == ["FAIL"] and "'a'" in findings[0][1]
        other = settings.model_copy(update={"node_name": "c"})
        assert await peer_name_clash(other) == []
        ls = Leasing(settings, ScriptedLease(["busy"], renewing=True), Metrics())
        with capture_logs() as logs, pytest.raises(StepOutcome) as info:
            await ls.take()
        assert info.value.event is Event.LEASE_HELD_BY_PEER
        assert any(e["event"] == "peer_same_node_name" for e in logs)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("state", "lease_lost", "held"),
    [
        (State.MASTER, False, True),
        (State.STOPPING, False, True),  # a clean demotion renews until its release
        (State.STOPPING, True, False),  # LEASE_LOST: no longer renewed
        (State.FENCED_SELF, False, False),
        (State.BACKUP, False, False),
    ],
)
async def test_held_is_the_machines_lease_state_on_the_monotonic_clock(
    tmp_path: Path, state: State, lease_lost: bool, held: bool
) -> None:
    """/status's and the metric's "held by me" is the machine's own lease state (a lost lease,
    FENCED_SELF or BACKUP hold nothing, whatever the last renewal said), and a renewal ages on
    the monotonic clock: one whose wall-clock expiry lies an hour ahead (a backward clock
    step) but whose duration has passed on the monotonic clock is not held."""
    ls, lease = leasing(tmp_path, ["ok"])
    ls.node = lambda: Node(state=state, lease_lost=lease_lost)
    await lease.acquire()
    assert ls.holds() is held and ls.view()["held"] is held
    assert ls.metrics.registry.get_sample_value("harbor_ha_lease_held") == (1 if held else 0)
    lease.held = Held(time.monotonic() - 2.5, time.time() + 3600, 2, 0.5)
    assert ls.holds() is False and ls.view()["held"] is False


async def test_a_renewal_that_finds_its_client_fenced_is_a_lost_lease(tmp_path: Path) -> None:
    """A renewal answered "blocklisted" (a peer fenced this lease client) is LEASE_LOST, not
    an unreachable Ceph: the master demotes at once instead of serving on to its deadline;
    any other error stays LEASE_UNREACHABLE."""

    class Fenced(ScriptedLease):
        kind = "blocklisted"

        async def renew(self) -> Held:
            raise LeaseError(self.kind, "lease lock: client blocklisted")

    ls, _ = leasing(tmp_path, ["ok"])
    fenced = Fenced(["ok"])
    ls.lease = fenced
    told = await ls.renew()
    assert told is not None and told[0] is Event.LEASE_LOST
    fenced.kind = "failed"
    told = await ls.renew()
    assert told is not None and told[0] is Event.LEASE_UNREACHABLE
