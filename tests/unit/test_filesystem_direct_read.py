"""The in-process read probe: one O_DIRECT read, bounded by its timeout, and a read the kernel
does not answer never stacks a second blocked thread.  Real files and a real FIFO (whose open
blocks in the kernel until a writer comes, like a read of a stuck device)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from harbor_ha.filesystem.direct_read import DirectReader, read_first_block


def test_reads_one_block_with_o_direct(tmp_path: Path) -> None:
    """The first 4 KiB of a file on ext4 are read with O_DIRECT (the page cache bypassed)."""
    path = tmp_path / "disk.img"
    path.write_bytes(b"x" * 65536)
    assert read_first_block(str(path)) == 4096


async def test_readable_and_unreadable(tmp_path: Path) -> None:
    """A readable device answers (True, ""); a missing one (False, its errno text)."""
    path = tmp_path / "disk.img"
    path.write_bytes(b"x" * 8192)
    reader = DirectReader()
    assert await reader.read(str(path), 5) == (True, "")
    ok, why = await reader.read(str(tmp_path / "gone"), 5)
    assert ok is False and "No such file or directory" in why


async def test_blocked_read_times_out_and_is_not_stacked(tmp_path: Path) -> None:
    """A read that blocks answers None (no answer, not an error) after the timeout, the event
    loop running meanwhile; the next read answers at once that the earlier one is still
    blocked (no second thread); once the kernel lets the first one go, reads are asked
    again."""
    fifo = tmp_path / "stuck"
    os.mkfifo(fifo)
    good = tmp_path / "disk.img"
    good.write_bytes(b"x" * 8192)
    reader = DirectReader()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        started = time.monotonic()
        ok, why = await reader.read(str(fifo), 0.3)
        assert ok is None and "no answer within 0.3 s" in why
        assert time.monotonic() - started >= 0.3 and ticks >= 10
        threads = threading.active_count()
        started = time.monotonic()
        ok, why = await reader.read(str(good), 5)
        assert ok is None and "still blocked" in why
        assert threading.active_count() == threads
    finally:
        task.cancel()
    fd = os.open(fifo, os.O_WRONLY)  # the blocked open returns; the read then fails (pipe)
    os.close(fd)
    deadline = time.monotonic() + 5
    while (await reader.read(str(good), 5))[0] is not True:
        assert time.monotonic() < deadline, "reads never resumed"
        await asyncio.sleep(0.01)
