"""The leadership lease against the real cluster, as the restricted client.harbor.

Two simulated nodes ("a", "b") are two :class:`Lease` objects, each with its own agent (its
own Ceph client instance) and cookie.  The lease object is unique per test (under the
documented prefix harbor-ha.lease).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from harbor_ha.ceph import Ceph
from harbor_ha.ceph.argv import common_args
from harbor_ha.daemon.failsafe import Failsafe
from harbor_ha.daemon.leasing import Leasing, StepOutcome
from harbor_ha.lease import Lease, LeaseError, LeaseHeldByPeer, parse_lock_info
from harbor_ha.lease.check import check_lease
from harbor_ha.machine import Event, Node, transition
from harbor_ha.metrics import Metrics
from harbor_ha.peer.failsafe import ask
from harbor_ha.runner import ProcessRunner
from lab.ceph import CephCluster

pytestmark = pytest.mark.integration

DURATION_S = 3
OP_TIMEOUT_S = 2.0


async def cli_lock_info(lease: Lease) -> str:
    """`rados lock info` of the lease object (the CLI's view, to compare the agent's with)."""
    s = lease._s
    argv = [s.rados_bin, *common_args(s), "-p", s.ceph_pool, "lock", "info", s.lease_object]
    res = await ProcessRunner().run([*argv, "harbor-ha", "--format", "json"], timeout_s=10)
    assert res.ok, res.output_tail(400)
    return res.stdout


@pytest.fixture
async def make_lease(ceph_cluster: CephCluster) -> AsyncIterator[Callable[[str], Lease]]:
    """A factory of leases on one fresh lease object; every agent is closed at teardown."""
    obj = "harbor-ha.lease-" + secrets.token_hex(4)
    made: list[Lease] = []

    def make(node: str) -> Lease:
        settings = ceph_cluster.settings(
            node_name=node,
            lease_object=obj,
            lease_duration_s=DURATION_S,
            lease_op_timeout_s=OP_TIMEOUT_S,
            lease_margin_s=1.0,
        )
        lease = Lease(settings)
        made.append(lease)
        return lease

    yield make
    for lease in made:
        await lease.close()


async def test_acquire_shows_holder_and_expiry(make_lease: Callable[[str], Lease]) -> None:
    """A free lease is taken; Ceph reports our agent's instance and cookie as the holder, and
    an expiry at least one duration after the call (at most 4 s more); the deadline is
    renewal + duration - margin."""
    a = make_lease("a")
    before = time.time()
    held = await a.acquire()
    info = await a.inspect()
    holder = info.holder
    assert holder is not None
    assert holder.cookie == "harbor-ha:a"
    assert holder.entity == a.agent.instance
    assert holder.expiration is not None
    raw = await cli_lock_info(a)
    cli = parse_lock_info(raw).holder
    assert cli is not None, raw
    assert (cli.entity, cli.cookie, cli.description, cli.address) == (
        holder.entity, holder.cookie, holder.description, holder.address,
    ), "the agent's cls_lock get_info reads what the CLI does"  # fmt: skip
    assert cli.expiration == pytest.approx(holder.expiration, abs=1e-5)
    # Ceph's expiry is the OSD's time of the call + exactly the duration (python3-rados's
    # lock_exclusive added 0-4.3 s of uninitialised microseconds; see lease/wire.py).
    assert before + DURATION_S - 0.01 <= holder.expiration <= time.time() + DURATION_S, raw
    assert held.deadline == pytest.approx(held.renewed_at + DURATION_S - 1.0)
    assert len(info.lockers) == 1


async def test_each_renewal_expires_one_duration_after_it(
    make_lease: Callable[[str], Lease],
) -> None:
    """Ten renewals 0.1 s apart: each one's expiry (Ceph's, read back) lies between the call's
    start and end + the duration, so successive expiries only grow (a standby tells renewals
    apart by them; the binding's lock_exclusive made them jump by up to 4.3 s either way)."""
    a = make_lease("a")
    expiries = []
    for _ in range(10):
        before = time.time()
        await a.renew()
        after = time.time()
        holder = (await a.inspect()).holder
        assert holder is not None and holder.expiration is not None
        assert before + DURATION_S - 0.01 <= holder.expiration <= after + DURATION_S
        expiries.append(holder.expiration)
        await asyncio.sleep(0.1)
    assert expiries == sorted(expiries) and len(set(expiries)) == 10


async def test_renewal_keeps_it_from_a_second_client(make_lease: Callable[[str], Lease]) -> None:
    """While a renews every 0.5 s for twice the duration, b (another client instance) is
    refused every time with LeaseHeldByPeer, and a's renewals keep the same agent instance."""
    a, b = make_lease("a"), make_lease("b")
    await a.acquire()
    instance = a.agent.instance
    refusals = 0
    end = time.monotonic() + 2 * DURATION_S
    while time.monotonic() < end:
        await a.acquire()
        with pytest.raises(LeaseHeldByPeer):
            await b.acquire()
        refusals += 1
        await asyncio.sleep(0.5)
    assert refusals >= 2 * DURATION_S
    assert a.agent.instance == instance and a.agent.starts == 1
    holder = (await b.inspect()).holder
    assert holder is not None and holder.cookie == "harbor-ha:a"


async def test_peer_takes_it_after_the_duration_without_renewal(
    make_lease: Callable[[str], Lease],
) -> None:
    """a takes it and stops renewing (its agent stays connected): b is refused before the
    duration, takes it after it, and a's next renewal then fails with LeaseHeldByPeer."""
    a, b = make_lease("a"), make_lease("b")
    await a.acquire()
    taken = time.monotonic()
    with pytest.raises(LeaseHeldByPeer):
        await b.acquire()
    while True:
        try:
            await b.acquire()
            break
        except LeaseHeldByPeer:
            assert time.monotonic() - taken < DURATION_S + 3
            await asyncio.sleep(0.2)
    lapse = time.monotonic() - taken
    print(f"\nlease lapse without renewal (duration {DURATION_S} s): {lapse:.2f} s")
    assert lapse >= DURATION_S - 0.5
    holder = (await a.inspect()).holder
    assert holder is not None and holder.cookie == "harbor-ha:b"
    with pytest.raises(LeaseHeldByPeer):
        await a.acquire()


async def test_a_lease_object_not_created_yet_is_free(
    make_lease: Callable[[str], Lease],
) -> None:
    """Before any node took the lease its object does not exist: the agent's read says free
    (as the CLI's "No such file" did), not an error."""
    assert (await make_lease("a").inspect()).holder is None


async def test_release_frees_it_at_once(make_lease: Callable[[str], Lease]) -> None:
    """After a clean release b takes the lease immediately (no wait for the expiry)."""
    a, b = make_lease("a"), make_lease("b")
    await a.acquire()
    await a.release()
    assert (await b.inspect()).holder is None
    await b.acquire()


async def test_a_restarted_agent_takes_its_own_lock_back(
    make_lease: Callable[[str], Lease],
) -> None:
    """The agent dies while holding the lease: the next acquire starts a new client instance,
    breaks the lock our cookie left on the dead instance, and holds it; the peer's is never
    broken (b is still refused)."""
    a, b = make_lease("a"), make_lease("b")
    await a.acquire()
    first = a.agent.instance
    await a.agent.close()
    await a.acquire()
    assert a.agent.instance != first and a.agent.starts == 2
    holder = (await a.inspect()).holder
    assert holder is not None and holder.entity == a.agent.instance
    with pytest.raises(LeaseHeldByPeer):
        await b.acquire()


async def test_a_restarted_master_does_not_take_back_a_lock_a_peer_fenced(
    ceph_cluster: CephCluster, make_lease: Callable[[str], Lease]
) -> None:
    """a holds the lease and dies (kill -9: its agent goes with it); b's fence blocklists a's
    lease client. a's daemon restarts into MASTER (reconcile) and renews: it must not break
    its old lock and take it back (b's take would fail "busy" and roll back: one more
    failover); the renewal says LeaseHeldByPeer (LEASE_LOST: a demotes), the old lock stays
    for b to break. Unfenced, the same restart takes its lock back (the test above)."""
    a = make_lease("a")
    await a.acquire()
    old = (await a.inspect()).holder
    assert old is not None
    await a.agent.close()
    ceph = Ceph(ceph_cluster.settings(node_name="b"), ProcessRunner())
    await ceph.fence(also=(old.address,), listed=make_lease("b").blocklisted)
    restarted = make_lease("a")  # a new daemon: nothing held yet
    with pytest.raises(LeaseHeldByPeer, match="blocklisted"):
        await restarted.renew()
    holder = (await restarted.inspect()).holder
    assert holder is not None and holder.entity == old.entity, "the fenced lock stays for b"


async def test_frozen_ceph_bounds_every_call_and_the_agent_recovers(
    ceph_cluster: CephCluster, make_lease: Callable[[str], Lease]
) -> None:
    """With the mon and the OSD SIGSTOPped, a renewal and a read each fail within their bound
    (op timeout + 1 s, plus slack) instead of hanging; after SIGCONT the lease is held again."""
    a = make_lease("a")
    await a.acquire()
    pids = [ceph_cluster.pids["mon.a"], ceph_cluster.pids["osd.0"]]
    bound = OP_TIMEOUT_S + 1.0 + 1.5
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        for call in (a.acquire, a.inspect):
            started = time.monotonic()
            with pytest.raises(LeaseError):
                await call()
            assert time.monotonic() - started < bound
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    end = time.monotonic() + 60
    while True:
        try:
            await a.acquire()
            break
        except LeaseError:
            assert time.monotonic() < end, "the lease was not held again within 60 s of the thaw"
            await asyncio.sleep(0.5)
    holder = (await a.inspect()).holder
    assert holder is not None and holder.cookie == "harbor-ha:a"
    assert holder.entity == a.agent.instance


async def test_check_passes_with_the_documented_caps(ceph_cluster: CephCluster) -> None:
    """`harbor-ha check`'s lease part, as client.harbor with exactly the documented caps
    (osd 'profile rbd pool=rbd'): no problem; it says who holds the lease (here: free)."""
    obj = "harbor-ha.lease-" + secrets.token_hex(4)
    settings = ceph_cluster.settings(node_name="a", lease_object=obj)
    problems, notes = await check_lease(settings, ProcessRunner())
    assert problems == []
    assert notes == [f"lease {obj}: free"]


async def test_check_reports_caps_without_class_write(ceph_cluster: CephCluster) -> None:
    """A user whose osd caps only read the pool cannot take the lock: the check reports it as
    denied and names the cap to add."""
    keyring = ceph_cluster.create_user(
        "leaseless-" + secrets.token_hex(3),
        ["mon", "profile rbd", "osd", f"allow r pool={ceph_cluster.pool}"],
    )
    user = keyring.name.removeprefix("keyring.")
    settings = ceph_cluster.settings(
        node_name="a", user=user, keyring=keyring, lease_object="harbor-ha.lease-ro"
    )
    problems, _ = await check_lease(settings, ProcessRunner())
    assert len(problems) == 1, problems
    assert "denied" in problems[0] and "object_prefix harbor-ha.lease" in problems[0]


async def test_a_stopped_holder_is_fenced_then_taken_over_before_its_lock_lapses(
    ceph_cluster: CephCluster, make_lease: Callable[[str], Lease]
) -> None:
    """a takes the lease and stops renewing (as after a crash or a pause; its agent stays
    connected): b's lease step sees the expiry standing still and ends with LEASE_STALE
    naming a's lease client; the real fence (as client.harbor, its entries added through b's
    agent as the fence step does: the CLI's list shows them) blocklists that address,
    confirmed in the blocklist (the agent's monitor call lists what the CLI lists); b
    breaks a's lock and holds the lease well before it would have lapsed; a, blocklisted,
    can never renew it again."""
    a, b = make_lease("a"), make_lease("b")
    await a.acquire()
    taken = time.monotonic()
    step = Leasing(b._s, b, Metrics())
    with pytest.raises(StepOutcome) as info:
        await asyncio.wait_for(step.take(), step.timeout_s())
    assert info.value.event is Event.LEASE_STALE
    stale = step.stale
    assert stale is not None and stale.cookie == "harbor-ha:a"
    assert stale.entity == a.agent.instance
    ceph = Ceph(ceph_cluster.settings(node_name="b"), ProcessRunner())
    fenced = await ceph.fence(also=(stale.address,), listed=b.blocklisted, add=b.blocklist_add)
    assert stale.address in fenced and stale.address in await ceph.blocklist_ls()  # agent added
    assert set(await b.blocklisted()) == set(await ceph.blocklist_ls()), "agent == CLI"
    await step.take_over(stale)
    took = time.monotonic() - taken
    print(f"\nstopped holder detected, fenced and taken over {took:.2f} s after its last renewal")
    assert took < DURATION_S, "taken over before the lock's duration ran out"
    holder = (await b.inspect()).holder
    assert holder is not None and holder.cookie == "harbor-ha:b"
    with pytest.raises(LeaseError):
        await a.acquire()  # the blocklisted client: refused (its agent is restarted)
    with pytest.raises(LeaseHeldByPeer):
        await a.acquire()  # the new client is not blocklisted, and the lease is b's


async def test_a_node_fenced_after_its_clean_demotion_takes_the_lease_with_a_new_client(
    ceph_cluster: CephCluster, make_lease: Callable[[str], Lease]
) -> None:
    """a held the lease and released it (a clean demotion), and its lease client was then
    blocklisted (the peer's fence step named it while a was demoting); once the lease is free
    again, a's next take does not fail on its blocklisted client: the agent that got
    ESHUTDOWN is replaced and the take succeeds at once with a new client (the e2e switchover
    after an unhealthy handover failed its first promotion on exactly that)."""
    a, b = make_lease("a"), make_lease("b")
    await a.acquire()
    old_client = (await a.inspect()).holder
    assert old_client is not None
    await a.release()
    ceph = Ceph(ceph_cluster.settings(node_name="b"), ProcessRunner())
    await ceph.fence(also=(old_client.address,))
    assert old_client.address in await ceph.blocklist_ls()
    await b.acquire()
    await b.release()
    await a.acquire()  # the first attempt meets ESHUTDOWN; the second is a new client
    holder = (await a.inspect()).holder
    assert holder is not None and holder.cookie == "harbor-ha:a"
    assert holder.address != old_client.address


async def test_a_live_holder_is_refused_and_never_fenced(
    ceph_cluster: CephCluster, make_lease: Callable[[str], Lease]
) -> None:
    """While a renews, b's lease step (LEASE_HELD_BY_PEER) marks nothing for fencing, a's
    lease client is not in the blocklist, and b's polls say it renews, then, once a stops
    renewing, that it may claim the VIP back."""
    a, b = make_lease("a"), make_lease("b")
    await a.acquire()

    async def renew_forever() -> None:
        while True:
            await asyncio.sleep(0.5)
            await a.acquire()

    renewer = asyncio.create_task(renew_forever())
    step = Leasing(b._s, b, Metrics())
    try:
        started = time.monotonic()
        with pytest.raises(StepOutcome) as info:
            await step.take()
        print(f"\nlease step refused a renewing holder in {time.monotonic() - started:.2f} s")
        assert info.value.event is Event.LEASE_HELD_BY_PEER and step.stale is None
        for _ in range(4):
            await asyncio.sleep(0.5)
            assert (await step.poll())[0] is Event.LEASE_PEER_RENEWS
    finally:
        renewer.cancel()
    holder = (await a.inspect()).holder
    assert holder is not None
    ceph = Ceph(ceph_cluster.settings(node_name="b"), ProcessRunner())
    assert holder.address not in await ceph.blocklist_ls()
    events = []
    for _ in range(4):
        await asyncio.sleep(0.5)
        events.append((await step.poll())[0])
    assert events[-1] is Event.LEASE_CLAIM_BACK, events


async def test_failsafe_probe_promises_only_when_ceph_is_unreachable(
    ceph_cluster: CephCluster, make_lease: Callable[[str], Lease]
) -> None:
    """The failsafe between two daemons' parts over loopback TCP, the peer probing the real
    Ceph: reachable -> no promise; mon and OSD SIGSTOPped -> the peer promises (and posts
    FAILSAFE_PROMISED); a request with a wrong secret is refused and logged and never
    reaches the probe."""
    peer_lease = make_lease("b")
    posted: list[Event] = []
    settings = peer_lease._s.model_copy(
        update={"failsafe_secret": SecretStr("k1"), "failsafe_listen": "127.0.0.1:0"}
    )

    async def decide(event: Event, reason: str) -> Node:
        posted.append(event)
        return transition(Node(), event)[0]

    peer = Failsafe(settings, peer_lease, lambda: Node(), decide)
    assert peer.server is not None
    await peer.server.start()
    address = f"127.0.0.1:{peer.server.port}"
    try:
        promised, why, _ = await ask(address, b"k1", "a", 6.0)
        assert not promised and "reaches Ceph" in why
        pids = [ceph_cluster.pids["mon.a"], ceph_cluster.pids["osd.0"]]
        try:
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            promised, why, window = await ask(address, b"k1", "a", 6.0)
            with capture_logs() as logs:
                wrong, wrong_why, _ = await ask(address, b"k2", "a", 6.0)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
    finally:
        await peer.server.stop()
    assert promised and window == settings.failsafe_window_s and "cannot reach Ceph" in why
    assert posted == [Event.FAILSAFE_PROMISED]
    assert not wrong and "refused" in wrong_why
    assert [e["reason"] for e in logs if e["event"] == "failsafe_request_refused"] == [
        "wrong MAC (wrong secret)"
    ]


async def test_blocklist_entries_added_together_land_in_one_osdmap_commit(
    ceph_cluster: CephCluster, make_lease: Callable[[str], Lease]
) -> None:
    """The fence's entries (a watcher and a stopped lease holder) added through the agent in
    one call reach the monitor together: both are in the blocklist and the OSD map moved by
    ONE epoch (one commit), not two (the second would wait ~1 s for the monitor's next
    proposal, paxos_propose_interval).  Addresses from TEST-NET-2, no client of this test."""
    b = make_lease("b")
    addresses = [f"198.51.100.{secrets.randbelow(250) + 1}:0/{1000 + i}" for i in range(2)]

    def epoch() -> int:
        res = ceph_cluster.admin("osd", "stat", "-f", "json")
        return int(json.loads(res.stdout)["epoch"])

    await b.blocklisted()  # the agent is up: its start is no part of the timing
    before = epoch()
    started = time.monotonic()
    await b.blocklist_add(addresses, 60)
    took = time.monotonic() - started
    print(f"\ntwo entries through the agent in {took:.3f} s")
    assert epoch() == before + 1, "one OSD map commit for both entries"
    listed = set(await b.blocklisted())
    assert set(addresses) <= listed


async def test_a_fenced_master_never_renews_its_way_back(
    ceph_cluster: CephCluster, make_lease: Callable[[str], Lease]
) -> None:
    """a holds the lease and renews; b fences a's lease client (the blocklist kills a's
    agent).  a's next renewals, whatever client they connect, never break a's old lock and
    take it back: the first finds itself blocklisted, every later one says LeaseHeldByPeer
    (LEASE_LOST: a demotes); the old lock stays for b, whose take-over then succeeds (no
    "busy", no back-off)."""
    a, b = make_lease("a"), make_lease("b")
    await a.acquire()
    await a.renew()
    old = (await a.inspect()).holder
    assert old is not None
    ceph = Ceph(ceph_cluster.settings(node_name="b"), ProcessRunner())
    await ceph.fence(also=(old.address,), listed=b.blocklisted, add=b.blocklist_add)
    with pytest.raises(LeaseError):
        await a.renew()
    for _ in range(2):
        with pytest.raises(LeaseHeldByPeer):
            await a.renew()
    holder = (await a.inspect()).holder
    assert holder is not None and holder.entity == old.entity, "a never took it back"
    step = Leasing(b._s, b, Metrics())
    await step.take_over(old)
    holder = (await b.inspect()).holder
    assert holder is not None and holder.cookie == "harbor-ha:b"
