"""The process runner: results, timeouts that kill the whole process group, cancellation."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import harbor_ha.runner as runner_module
from harbor_ha.runner import (
    CommandFailed,
    CommandNotFound,
    CommandResult,
    CommandTimeout,
    ProcessRunner,
)


@pytest.fixture(autouse=True)
async def _reaped() -> AsyncIterator[None]:
    """The background reapers of a test's killed commands finish before its event loop closes:
    a killed child left unreaped would warn at garbage collection, in a later test
    (ResourceWarning: subprocess still running, unclosed transport)."""
    yield
    if runner_module._REAPING:
        await asyncio.wait(set(runner_module._REAPING), timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def _wait_dead(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        await asyncio.sleep(0.05)
    return not _alive(pid)


async def test_result_carries_output_and_code() -> None:
    """A finished command reports its exit code, stdout and stderr."""
    r = await ProcessRunner().run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout_s=5)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert not r.ok


async def test_check_raises_with_stderr() -> None:
    """check=True turns a non-zero exit into CommandFailed quoting stderr."""
    with pytest.raises(CommandFailed, match="boom"):
        await ProcessRunner().run(["sh", "-c", "echo boom >&2; exit 1"], timeout_s=5, check=True)


async def test_missing_executable() -> None:
    """A missing executable is CommandNotFound, not a crash."""
    with pytest.raises(CommandNotFound):
        await ProcessRunner().run(["/nonexistent/harbor-ha-test"], timeout_s=5)


async def test_input_and_env() -> None:
    """stdin data and extra environment reach the command."""
    r = await ProcessRunner().run(
        ["sh", "-c", "cat; echo $HHA_X"], timeout_s=5, input_data=b"in\n", env={"HHA_X": "y"}
    )
    assert r.stdout == "in\ny\n"


async def test_timeout_kills_whole_process_group(tmp_path: Path) -> None:
    """On timeout the command AND its children (same process group) are killed, and the call
    returns CommandTimeout instead of hanging on the children's open pipes."""
    pidfile = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pidfile}; trap '' TERM; wait"
    with pytest.raises(CommandTimeout):
        await ProcessRunner().run(["sh", "-c", script], timeout_s=0.5)
    child = int(pidfile.read_text())
    assert await _wait_dead(child), "the grandchild survived the timeout"


async def test_cancel_kills_process_group(tmp_path: Path) -> None:
    """Cancelling the awaiting task (a BACKUP during promotion) kills the process group."""
    pidfile = tmp_path / "child.pid"
    task = asyncio.create_task(
        ProcessRunner().run(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], timeout_s=60)
    )
    while not pidfile.exists() or not pidfile.read_text().strip():
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _wait_dead(int(pidfile.read_text()))


async def test_observer_sees_every_result() -> None:
    """The observer (metrics) is called with each finished command."""
    seen: list[CommandResult] = []
    await ProcessRunner(observer=seen.append).run(["true"], timeout_s=5)
    assert [r.argv for r in seen] == [("true",)]


async def test_cancel_does_not_wait_for_a_child_that_cannot_die(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cancelled command returns at once even when its child does not die: the runner
    kills the group and reaps it in the background, so a step cancelled at its bound is not
    held up (a D-state child, e.g. a force unmap on a node cut from Ceph, seen on the VM
    tier). Here SIGKILL is withheld (os.killpg does nothing) to get a child that outlives it."""
    import os
    import signal

    import harbor_ha.runner as runner_module

    monkeypatch.setattr(os, "killpg", lambda pid, sig: None)
    task = asyncio.create_task(ProcessRunner().run(["sleep", "300"], timeout_s=60))
    await asyncio.sleep(0.3)
    before = set(runner_module._REAPING)
    started = asyncio.get_running_loop().time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    took = asyncio.get_running_loop().time() - started
    reapers = list(runner_module._REAPING)
    monkeypatch.undo()
    for reaper in reapers:  # the child we kept alive: kill it for real, let the reaper finish
        pid = int(reaper.get_name().removeprefix("reap-"))
        os.killpg(pid, signal.SIGKILL)
        await asyncio.wait_for(reaper, 5)
    assert not before and len(reapers) == 1
    assert took < 0.5, f"cancel waited {took:.2f} s for a child that cannot die"


def test_process_state_reads_proc_stat() -> None:
    """process_state gives the state letter of a live process (this one runs: R) and None
    for a pid that does not exist."""
    from harbor_ha.runner import process_state

    assert process_state(os.getpid()) == "R"
    assert process_state(2**22 + 12345) is None


async def test_unfinished_here_names_the_current_tasks_killed_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """unfinished_here() names the commands of the calling task that were killed but have
    not ended yet, with their state (a D-state one says so; pinned for real on the VM tier:
    umount on a node cut from Ceph); other tasks' commands and finished ones are not named.
    SIGKILL is withheld here (os.killpg does nothing) to get a command that outlives it."""
    import signal

    runner = ProcessRunner()
    other = asyncio.create_task(runner.run(["sleep", "0.8"], timeout_s=10))
    seen: list[str] = []

    async def step() -> None:
        try:
            async with asyncio.timeout(0.3):
                await runner.run(["sleep", "300"], timeout_s=60)
        except TimeoutError:
            seen.extend(runner.unfinished_here())

    real_killpg = os.killpg
    monkeypatch.setattr(os, "killpg", lambda pid, sig: None)
    await step()
    monkeypatch.undo()
    assert len(seen) == 1 and seen[0].startswith("sleep 300 [pid "), seen
    assert "state S" in seen[0], seen
    for pid, (argv, _task) in list(runner._running.items()):
        if argv == ("sleep", "300"):
            real_killpg(pid, signal.SIGKILL)
    await other
    for _ in range(100):
        if not runner._running:
            break
        await asyncio.sleep(0.05)
    assert runner._running == {}


async def test_unfinished_here_names_a_command_killed_at_the_bound() -> None:
    """A command cancelled at a step's bound and killed for real is still named (as "killed
    at the bound") by the task that ran it, until the background reaper forgets it: a step's
    timeout reason says what it was waiting for even when that command could die."""
    runner = ProcessRunner()
    seen: list[str] = []
    try:
        async with asyncio.timeout(0.3):
            await runner.run(["sleep", "300"], timeout_s=60)
    except TimeoutError:
        seen.extend(runner.unfinished_here())
    assert len(seen) == 1 and seen[0].startswith("sleep 300 [pid "), seen
    assert seen[0].endswith(("killed at the bound]", "state S]", "state R]")), seen
    for _ in range(100):
        if not runner._running:
            break
        await asyncio.sleep(0.05)
    assert runner._running == {}
