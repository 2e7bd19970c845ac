"""The control socket's commands on a node of the shared mode (the real Control and Driver):
`drain` is posted and drains a SERVING node; keepalived's notify, switchover and retry are
refused naming the mode (409), never posted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from harbor_ha.daemon.control import Control
from harbor_ha.daemon.driver import Driver
from harbor_ha.http import ControlError
from harbor_ha.keepalived.trackfile import TrackFiles
from harbor_ha.machine import Mode, Node, Policy, State, Step
from harbor_ha.metrics import Metrics
from lab.waiting import until


async def _no_step(step: Step) -> None:
    return None


async def test_drain_is_posted_and_keepalived_commands_are_refused(tmp_path: Path) -> None:
    """On a SERVING node: notify master, switchover and retry answer ControlError naming the
    shared mode and change nothing; drain is posted and the node is DRAINING (maintenance)."""
    track = TrackFiles(tmp_path / "prio", tmp_path / "fault")
    track.ensure()
    node = Node(state=State.SERVING, policy=Policy(mode=Mode.SHARED, drain_wait_s=60.0))
    driver = Driver(node, run_step=_no_step, step_timeout=lambda st: 60, track=track,
                    metrics=Metrics(), background={})  # fmt: skip
    control = Control(driver, dict, "VI_1")
    task = asyncio.create_task(driver.run((node, ()), "test"))
    try:
        for command, args in (("notify", {"state": "master"}), ("switchover", {}),
                              ("retry", {})):  # fmt: skip
            with pytest.raises(ControlError, match="no meaning in the shared mode"):
                await control.handle(command, args)
        assert driver.node.state is State.SERVING
        assert await control.handle("drain", {}) == {"posted": "DRAIN"}
        await until(lambda: driver.node.state is State.DRAINING)
        assert driver.node.maintenance and not driver.node.serving
    finally:
        task.cancel()
        await asyncio.wait({task})
