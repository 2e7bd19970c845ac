"""A blocking call bounded off the event loop (harbor_ha.blocking.call_bounded): its result or
its exception comes back, and a call that never returns (a read of a FIFO with no writer, as
a hung mount's read never returns) ends in TimeoutError at the bound, from a daemon thread
that keeps neither the loop's executor nor the interpreter's exit waiting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from pathlib import Path

import pytest

from harbor_ha.blocking import call_bounded
from harbor_ha.commands.cluster import cluster_findings
from tests.fakes import example_settings
from tests.harbor_config import HarborValues, write_install


def release(fifo: Path) -> None:
    """Give the FIFO a writer for a moment (non-blocking): the stuck open returns, the read
    sees EOF, and the test's own thread ends."""
    with contextlib.suppress(OSError):  # no reader left: nothing to release
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


async def test_the_result_and_the_exception_come_back() -> None:
    """A call that returns gives its value; one that raises raises the same exception."""
    assert await call_bounded(lambda: 41 + 1, 1.0, "t-ok") == 42

    def boom() -> int:
        raise ValueError("no such file")

    with pytest.raises(ValueError, match="no such file"):
        await call_bounded(boom, 1.0, "t-boom")


async def test_a_call_that_never_returns_times_out_in_a_daemon_thread(tmp_path: Path) -> None:
    """Opening a FIFO with no writer blocks for ever: TimeoutError at the bound, the loop
    stays free meanwhile, and the stuck thread is a daemon (not the loop's executor's)."""
    fifo = tmp_path / "hung"
    os.mkfifo(fifo)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await call_bounded(fifo.read_text, 0.3, "t-hung")
    took = time.monotonic() - t0
    ticker.cancel()
    (stuck,) = [t for t in threading.enumerate() if t.name == "t-hung"]
    assert stuck.daemon and ticks > 5 and took < 5
    release(fifo)
    stuck.join(5)


async def test_check_reports_a_hung_harbor_file_instead_of_hanging(tmp_path: Path) -> None:
    """`check` in the shared mode with core's env file that never answers (a FIFO with no
    writer): a FAIL naming the bound, nothing compared, no hang."""
    install = write_install(tmp_path / "harbor", HarborValues())
    env = install.config_dir / "core" / "env"
    env.unlink()
    os.mkfifo(env)
    s = example_settings(
        node_name="a", mode="shared", shared_fs_type="none", nodes="a=127.0.0.1:1,b=127.0.0.1:2",
        harbor_config_dir=install.config_dir, harbor_secret_dir=install.secret_dir,
        compose_file=install.compose_file, command_timeout_s=0.3,
    )  # fmt: skip
    try:
        findings = await cluster_findings(s)
    finally:
        release(env)
    assert findings == [
        ("FAIL", "cluster: reading Harbor's files on this node took over 0.3 s (a hung "
         "mount?): nothing compared")
    ]  # fmt: skip
