"""The bounded read probe, in process: one O_DIRECT read of a device's first 4 KiB.

The master asks it every probe interval ("is the device still readable?": a fenced krbd
client's uncached reads fail with EIO), so it runs no process (``dd iflag=direct`` did the
same read, at a fork and exec each second).  O_DIRECT bypasses the page cache: the answer
comes from the device (for krbd: from the OSDs), never from cached pages.

The read runs in a daemon thread and the caller waits at most ``timeout_s``.  A read the
kernel never answers (a device stuck in D state) cannot be interrupted, by a thread or by
killing a ``dd``; its thread is left behind, and until it returns every later read answers
"not readable" at once instead of stacking more blocked threads.  Daemon threads never hold
up the process's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import threading

BLOCK_BYTES = 4096
"""One page: aligned for O_DIRECT on devices with a logical block size up to 4 KiB."""


def read_first_block(device: str) -> int:
    """Read the first BLOCK_BYTES of ``device`` with O_DIRECT; the bytes read (OSError on
    failure).  Blocking: call it from a thread."""
    buf = mmap.mmap(-1, BLOCK_BYTES)  # anonymous, page-aligned: what O_DIRECT needs
    try:
        fd = os.open(device, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        try:
            return os.preadv(fd, [buf], 0)
        finally:
            os.close(fd)
    finally:
        buf.close()


class DirectReader:
    """Bounded O_DIRECT reads; owns the thread of a read that did not return in time."""

    def __init__(self) -> None:
        self._blocked: threading.Thread | None = None
        self._blocked_device = ""

    async def read(self, device: str, timeout_s: float) -> tuple[bool, str]:
        """(readable, why not): one read of ``device`` within ``timeout_s``; never raises."""
        if self._blocked is not None:
            if self._blocked.is_alive():
                return False, f"an earlier read of {self._blocked_device} is still blocked"
            self._blocked = None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[bool, str]] = loop.create_future()

        def answer(result: tuple[bool, str]) -> None:
            if not done.done():
                done.set_result(result)

        def work() -> None:
            try:
                read_first_block(device)
                result = (True, "")
            except OSError as exc:
                result = (False, f"{device}: {os.strerror(exc.errno) if exc.errno else exc}")
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                loop.call_soon_threadsafe(answer, result)

        thread = threading.Thread(target=work, name="read-probe", daemon=True)
        thread.start()
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(done)
        except TimeoutError:
            self._blocked, self._blocked_device = thread, device
            return False, f"{device}: no answer within {timeout_s:g} s"
        except asyncio.CancelledError:  # the thread may still be reading: never start a second
            self._blocked, self._blocked_device = thread, device
            raise
