"""The daemon's use of the lease (daemon/leasing.py): the lease step's patience with a holder,
the renewal's verdicts.  The lease itself is a scripted stand-in here (the real one is proven
against Ceph in tests/integration/ceph/test_lease_real.py); under test is the decision logic."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from harbor_ha.daemon.leasing import Leasing, StepRefused
from harbor_ha.lease import Held, LeaseHeldByPeer, LeaseInfo, LeaseTimeout, Locker
from harbor_ha.machine import Event
from harbor_ha.metrics import Metrics
from tests.fakes import example_settings


class ScriptedLease:
    """Answers acquire() from a script: 'ok', 'busy', 'timeout' or 'slow' (ok after a delay)."""

    def __init__(self, script: list[str], *, renewing: bool = False) -> None:
        self.script = script
        self.renewing = renewing  # the holder's expiry moves forward at each look
        self.expiry = time.time() + 0.3
        self.held: Held | None = None
        self.last_error: str | None = None
        self.calls = 0
        self.released = 0

    async def acquire(self) -> Held:
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

    async def inspect(self) -> LeaseInfo:
        if self.renewing:
            self.expiry = time.time() + 2
        return LeaseInfo((Locker("client.9", "harbor-ha:b", "b", self.expiry, "x:0/1"),))

    async def release(self) -> None:
        self.released += 1
        self.held = None

    async def close(self) -> None:
        return None


def leasing(
    tmp_path: Path, script: list[str], *, renewing: bool = False
) -> tuple[Leasing, ScriptedLease]:
    settings = example_settings(
        priority_file=tmp_path / "p", fault_file=tmp_path / "f", runtime_dir=tmp_path,
        node_name="a", lease_duration_s=2, lease_renew_interval_s=0.1, lease_margin_s=0.5,
    )  # fmt: skip
    lease = ScriptedLease(script, renewing=renewing)
    return Leasing(settings, lease, Metrics()), lease


async def test_a_renewing_holder_is_refused_at_once(tmp_path: Path) -> None:
    """The holder's expiry moves forward between two looks (it renews): the step ends with
    LEASE_HELD_BY_PEER (not a failure) at the second look, about one interval, and /status
    names the holder."""
    ls, lease = leasing(tmp_path, ["busy"], renewing=True)
    started = time.monotonic()
    with pytest.raises(StepRefused) as info:
        await ls.take()
    assert info.value.event is Event.LEASE_HELD_BY_PEER
    assert time.monotonic() - started < 0.5 and lease.calls == 2
    assert "harbor-ha:b" in str(ls.view()["holder"])


async def test_a_lock_that_never_lapses_is_refused_after_one_duration(tmp_path: Path) -> None:
    """A busy lock whose expiry does not move but which Ceph keeps refusing: given up one
    duration plus one interval after the start (2.1 s here; the expiry seen is earlier)."""
    ls, lease = leasing(tmp_path, ["busy"])
    started = time.monotonic()
    with pytest.raises(StepRefused):
        await ls.take()
    assert 2.1 <= time.monotonic() - started < 3.0
    assert lease.calls >= 10  # retried every interval


async def test_take_gets_a_lapsing_lock(tmp_path: Path) -> None:
    """A crashed holder's lock lapses within the patience: the step succeeds on the first
    attempt after it."""
    ls, lease = leasing(tmp_path, ["busy"] * 5 + ["ok"])
    await ls.take()
    assert lease.calls == 6 and ls.view()["held"] is True


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
    got, reason = await ls.renew()
    assert got is event and reason


async def test_release_at_the_end_of_a_demotion(tmp_path: Path) -> None:
    """Release gives the lease up and the expiry gauge goes back to 0."""
    ls, lease = leasing(tmp_path, ["ok"])
    await ls.take()
    assert ls.metrics.registry.get_sample_value("harbor_ha_lease_expiry_timestamp_seconds")
    await ls.release()
    assert lease.released == 1 and ls.view()["held"] is False
    assert ls.metrics.registry.get_sample_value("harbor_ha_lease_expiry_timestamp_seconds") == 0
