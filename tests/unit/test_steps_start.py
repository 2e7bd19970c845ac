"""The start step's wait for a healthy Harbor (Steps.start) and the container-event pulse.

The step itself is real; Harbor and compose are stand-ins named FAKE below: the case pinned here
is a container event arriving DURING a health check, a moment real Docker cannot be made to hit
on demand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harbor_ha.daemon import steps as steps_module
from harbor_ha.daemon.pulse import Pulse
from harbor_ha.daemon.steps import Steps
from harbor_ha.daemon.watchers import forward_container_events
from harbor_ha.metrics import Metrics
from tests.fakes import FakeFs, example_settings


@dataclass
class Report:
    healthy: bool
    reason: str = ""
    degraded: tuple[str, ...] = ()


class FakeHarborEventDuringCheck:
    """FAKE Harbor probe: the first check sees Harbor unhealthy, and while it runs the last
    container turns healthy (its Docker event fires the pulse); later checks see healthy."""

    def __init__(self, wake: Pulse) -> None:
        self.wake = wake
        self.checks = 0

    async def check(self, *, judge_health: bool = True) -> Any:
        raise AssertionError("the start step asks whether Harbor serves, not its health API")

    async def serving(self) -> Any:
        self.checks += 1
        if self.checks == 1:
            self.wake.fire()  # the container event, delivered while this check is running
            return Report(False, "nginx starting")
        return Report(True)


class FakeCompose:
    """FAKE compose: records that `up` was called (the real one is tested in integration)."""

    def __init__(self) -> None:
        self.ups = 0

    async def up(self, timeout_s: float) -> None:
        self.ups += 1


def make_steps(tmp_path: Path, harbor: Any, compose: Any, wake: Pulse) -> Steps:
    settings = example_settings(
        priority_file=tmp_path / "prio", fault_file=tmp_path / "fault", runtime_dir=tmp_path
    )
    steps = Steps(
        settings,
        ceph=None,  # type: ignore[arg-type]
        fs=FakeFs("/dev/loop7"),  # type: ignore[arg-type]
        compose=compose,
        harbor=harbor,
        metrics=Metrics(),
        wake=wake,
        leasing=None,  # type: ignore[arg-type]
    )
    steps.adopt("/dev/loop7")
    return steps


@pytest.mark.timeout(20)
async def test_event_during_check_triggers_next_check_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container event that arrives while a health check runs is not erased: the step checks
    again at once instead of sleeping a poll period (here made an hour, so a lost event would
    hang the test until its timeout)."""
    monkeypatch.setattr(steps_module, "HEALTH_POLL_S", 3600.0)
    wake = Pulse()
    harbor = FakeHarborEventDuringCheck(wake)
    compose = FakeCompose()
    steps = make_steps(tmp_path, harbor, compose, wake)
    await steps.start()
    assert compose.ups == 1
    assert harbor.checks == 2
    assert steps.harbor_healthy is True


async def test_container_event_wakes_every_waiter() -> None:
    """One container event wakes the monitor AND the start step: both wait on the one pulse
    with their own mark, so neither can swallow the other's wake-up; a waiter whose mark is
    older than the event returns at once."""

    async def events() -> AsyncIterator[str]:
        await asyncio.sleep(0.05)
        yield "nginx health_status: healthy"

    wake = Pulse()
    mark = wake.mark()
    waiters = [asyncio.create_task(wake.wait(mark, 10)) for _ in range(2)]
    await forward_container_events(events(), wake)
    assert await asyncio.gather(*waiters) == [True, True]
    assert await wake.wait(mark, 0), "a late waiter with the old mark still sees the pulse"
    assert not await wake.wait(wake.mark(), 0.05), "no new pulse: the wait times out"
