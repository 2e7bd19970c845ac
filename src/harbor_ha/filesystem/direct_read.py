"""The bounded read probe, in process: one O_DIRECT read of a device's first 4 KiB.

The master asks it every probe interval ("is the device still readable?": a fenced krbd
client's uncached reads fail with EIO), so it runs no process (``dd iflag=direct`` did the
same read, at a fork and exec each second).  O_DIRECT bypasses the page cache: the answer
comes from the device (for krbd: from the OSDs), never from cached pages.

The read runs in a worker thread and the caller waits at most ``timeout_s``.  A read the
kernel never answers (a device stuck in D state) cannot be interrupted, by a thread or by
killing a ``dd``; until it returns, every later read answers "not readable" at once (no
reads pile up behind it).  The worker is a daemon thread: it never holds up the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import queue
import threading
from collections.abc import Callable

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


def statvfs_of(path: str) -> int:
    """statfs(2) of the filesystem mounted at ``path``, then stat(2) of its root: answered
    by the filesystem itself (a FUSE daemon, an NFS server's FSSTAT and GETATTR), so a dead
    ceph-fuse errors (ENOTCONN) and a hung server does not answer.  The stat is for a CephFS
    client evicted at the MDS: its statfs still answers (the monitors serve it), its first
    metadata request does not (ENOENT, ESHUTDOWN).  Blocking: call it from a thread."""
    os.statvfs(path)
    return os.stat(path).st_mode


class DirectReader:
    """Bounded O_DIRECT reads, one at a time, in one long-lived worker thread (started at the
    first read); owns the device of the read in flight.  ``op`` is the blocking call (the
    shared mode asks the mounted filesystem itself: ``statvfs_of``)."""

    def __init__(self, op: Callable[[str], object] = read_first_block) -> None:
        self._op = op
        self._requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._in_flight: str | None = None  # set by the loop, cleared by the worker

    async def read(self, device: str, timeout_s: float) -> tuple[bool | None, str]:
        """(readable, why not): one read of ``device`` within ``timeout_s``; never raises.
        None: no answer (this read timed out, or an earlier one is still blocked: the device
        does not answer, which is not an error from it)."""
        if self._in_flight is not None:
            return None, f"an earlier read of {self._in_flight} is still blocked"
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="read-probe", daemon=True)
            self._worker.start()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[bool | None, str]] = loop.create_future()
        self._in_flight = device
        self._requests.put((device, loop, done))
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(done)
        except TimeoutError:
            return None, f"{device}: no answer within {timeout_s:g} s"

    def _work(self) -> None:
        while True:
            device, loop, done = self._requests.get()
            try:
                self._op(device)
                result: tuple[bool | None, str] = (True, "")
            except OSError as exc:
                result = (False, f"{device}: {os.strerror(exc.errno) if exc.errno else exc}")
            self._in_flight = None
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                loop.call_soon_threadsafe(_answer, done, result)


_Request = tuple[str, asyncio.AbstractEventLoop, "asyncio.Future[tuple[bool | None, str]]"]


def _answer(done: asyncio.Future[tuple[bool | None, str]], result: tuple[bool | None, str]) -> None:
    if not done.done():
        done.set_result(result)
