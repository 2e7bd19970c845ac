"""The fence step fences only while this node holds the VIP (Steps.fence).

A MASTER line the FIFO replays (or a stray one) while the VIP is on the peer must not blocklist
the serving peer. The step is real; Ceph is a stand-in named FAKE (it records whether fencing
was asked for); the VIP answer is a plain function, as the real check is `ip addr` in the
node's netns (tests/faults covers it in the two-node lab).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path

import pytest

from harbor_ha.ceph import FenceError
from harbor_ha.daemon import steps as steps_module
from harbor_ha.daemon.leasing import Leasing, StepOutcome
from harbor_ha.daemon.pulse import Pulse
from harbor_ha.daemon.steps import StepError, Steps
from harbor_ha.machine import Event
from harbor_ha.metrics import Metrics
from tests.fakes import example_settings
from tests.unit.test_leasing import HOLDER_ADDR, ScriptedLease


class FakeCeph:
    """FAKE Ceph: records fence calls (the real fence is tested against a real cluster)."""

    def __init__(self, *, refuse_also: bool = False) -> None:
        self.fenced = 0
        self.also: list[tuple[str, ...]] = []
        self.adders: list[Callable[[Sequence[str], int], Awaitable[None]] | None] = []
        self.refuse_also = refuse_also

    async def fence(
        self,
        *,
        exclude: Collection[str] = (),
        also: Collection[str] = (),
        listed: Callable[[], Awaitable[list[str]]] | None = None,
        add: Callable[[Sequence[str], int], Awaitable[None]] | None = None,
    ) -> list[str]:
        self.fenced += 1
        self.adders.append(add)
        self.also.append(tuple(also))
        if also and self.refuse_also:
            raise FenceError(f"blocklisted {list(also)} not in the blocklist")
        return ["10.0.0.1:0/1", *also]


def make(
    tmp_path: Path, ceph: FakeCeph, answers: list[bool], lease: ScriptedLease | None = None
) -> Steps:
    settings = example_settings(
        priority_file=tmp_path / "prio", fault_file=tmp_path / "fault", runtime_dir=tmp_path
    )

    async def vip() -> bool:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return Steps(
        settings,
        ceph=ceph,  # type: ignore[arg-type]
        fs=None,  # type: ignore[arg-type]
        compose=None,  # type: ignore[arg-type]
        harbor=None,  # type: ignore[arg-type]
        metrics=Metrics(),
        wake=Pulse(),
        leasing=Leasing(settings, lease or ScriptedLease(["ok"]), Metrics()),
        vip_present=vip,
    )


async def test_fence_refused_without_vip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No VIP on the interface for the whole grace: StepError, and Ceph is never asked."""
    monkeypatch.setattr(steps_module, "VIP_CONFIRM_S", 0.3)
    ceph = FakeCeph()
    with pytest.raises(StepError, match="refusing to fence"):
        await make(tmp_path, ceph, [False]).fence()
    assert ceph.fenced == 0


async def test_fence_with_vip(tmp_path: Path) -> None:
    """VIP present: the peer is fenced, its entries added through the lease agent (the
    lease's blocklist_add: a monitor call, not a `ceph` process)."""
    ceph = FakeCeph()
    steps = make(tmp_path, ceph, [True])
    await steps.fence()
    assert ceph.fenced == 1
    assert ceph.adders == [steps._leasing.lease.blocklist_add]


async def test_fence_waits_for_vip_within_grace(tmp_path: Path) -> None:
    """The VIP shows up within the grace (second check): fencing goes ahead."""
    ceph = FakeCeph()
    await make(tmp_path, ceph, [False, True]).fence()
    assert ceph.fenced == 1


async def _stale(steps: Steps) -> None:
    """Run the lease step against a holder whose expiry stands still (LEASE_STALE)."""
    with pytest.raises(StepOutcome) as info:
        await steps._leasing.take()
    assert info.value.event is Event.LEASE_STALE


async def test_fence_blocklists_a_stale_holder_then_takes_its_lease(tmp_path: Path) -> None:
    """After LEASE_STALE the fence step fences the holder's lease client with the watchers
    (one fence call, confirmed), then breaks that holder's lock and takes the lease: it ends
    with LEASE_TAKEN."""
    ceph, lease = FakeCeph(), ScriptedLease(["busy"])
    steps = make(tmp_path, ceph, [True], lease)
    await _stale(steps)
    with pytest.raises(StepOutcome) as info:
        await steps.fence()
    assert info.value.event is Event.LEASE_TAKEN
    assert ceph.also == [(HOLDER_ADDR,)]
    assert [b.address for b in lease.broken] == [HOLDER_ADDR] and lease.held is not None


async def test_an_unconfirmed_holder_fence_waits_for_the_lock_to_lapse(tmp_path: Path) -> None:
    """The holder's blocklist cannot be confirmed: the watchers are fenced alone, the lock
    is never broken, and the lease is taken only once Ceph lets it go (LEASE_TAKEN)."""
    ceph, lease = FakeCeph(refuse_also=True), ScriptedLease(["busy"] * 4 + ["ok"])
    steps = make(tmp_path, ceph, [True], lease)
    await _stale(steps)
    with pytest.raises(StepOutcome) as info:
        await steps.fence()
    assert info.value.event is Event.LEASE_TAKEN
    assert ceph.also == [(HOLDER_ADDR,), ()] and lease.broken == [] and lease.calls == 5


async def test_fence_blocklists_the_last_lease_holder_seen(tmp_path: Path) -> None:
    """The lease was free when taken (its holder's lock lapsed), but the standby's watch last
    saw another node's lease client holding it: the fence blocklists that client too (with
    the watchers and the lock owner, the configured expiry), so a holder that was only
    paused can never renew or write again."""
    ceph = FakeCeph()
    lease = ScriptedLease(["ok"])
    steps = make(tmp_path, ceph, [True], lease)
    await steps._leasing.watch()  # the standby's look: harbor-ha:b holds it
    await steps.fence()
    assert ceph.also == [(HOLDER_ADDR,)]
