"""The start step's wait for a healthy Harbor (Steps.start) and the container-event fan-out.

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
from harbor_ha.daemon.status import StatusBoard
from harbor_ha.daemon.steps import Steps
from harbor_ha.daemon.watchers import forward_container_events
from harbor_ha.metrics import Metrics
from tests.fakes import example_settings


@dataclass
class Report:
    healthy: bool
    reason: str = ""


class FakeHarborEventDuringCheck:
    """FAKE Harbor probe: the first check sees Harbor unhealthy, and while it runs the last
    container turns healthy (its Docker event sets the wake event); later checks see healthy."""

    def __init__(self, wake: asyncio.Event) -> None:
        self.wake = wake
        self.checks = 0

    async def check(self) -> Any:
        self.checks += 1
        if self.checks == 1:
            self.wake.set()  # the container event, delivered while this check is running
            return Report(False, "nginx starting")
        return Report(True)


class FakeCompose:
    """FAKE compose: records that `up` was called (the real one is tested in integration)."""

    def __init__(self) -> None:
        self.ups = 0

    async def up(self, timeout_s: float) -> None:
        self.ups += 1


def make_steps(tmp_path: Path, harbor: Any, compose: Any, wake: asyncio.Event) -> Steps:
    board = StatusBoard("test")
    board.device = "/dev/loop7"
    settings = example_settings(
        priority_file=tmp_path / "prio", fault_file=tmp_path / "fault", runtime_dir=tmp_path
    )
    return Steps(
        settings,
        ceph=None,  # type: ignore[arg-type]
        fs=None,  # type: ignore[arg-type]
        compose=compose,
        harbor=harbor,
        is_mounted_from=lambda device: device == "/dev/loop7",
        metrics=Metrics(),
        board=board,
        wake=wake,
    )


@pytest.mark.timeout(20)
async def test_event_during_check_triggers_next_check_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container event that arrives while a health check runs is not erased: the step checks
    again at once instead of sleeping a poll period (here made an hour, so a lost event would
    hang the test until its timeout)."""
    monkeypatch.setattr(steps_module, "HEALTH_POLL_S", 3600.0)
    wake = asyncio.Event()
    harbor = FakeHarborEventDuringCheck(wake)
    compose = FakeCompose()
    steps = make_steps(tmp_path, harbor, compose, wake)
    await steps.start()
    assert compose.ups == 1
    assert harbor.checks == 2
    assert steps._board.harbor_healthy is True


async def test_container_events_set_every_wake_event() -> None:
    """Each container event wakes the monitor AND the start step (each on its own event, so the
    monitor clearing its event cannot swallow the start step's wake-up)."""

    async def events() -> AsyncIterator[str]:
        yield "nginx health_status: healthy"

    monitor_wake, step_wake = asyncio.Event(), asyncio.Event()
    await forward_container_events(events(), monitor_wake, step_wake)
    assert monitor_wake.is_set() and step_wake.is_set()
