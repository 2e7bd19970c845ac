"""A blocking call (a read that a hung filesystem can stall forever) run off the event loop
and bounded: in a daemon thread of its own, never the loop's default executor, so a call
stuck in the kernel neither holds one of that executor's few workers nor keeps the
interpreter from exiting (``asyncio.run`` waits for the default executor's threads)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def call_bounded(fn: Callable[[], T], limit_s: float, name: str) -> T:
    """``fn()`` in a daemon thread named ``name``; its result or exception, or TimeoutError
    once ``limit_s`` passed (the thread is then left to end, or not, on its own)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(result: list[T], error: Exception | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result[0])

    def work() -> None:
        result: list[T] = []
        error: Exception | None = None
        try:
            result.append(fn())
        except Exception as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(deliver, result, error)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await asyncio.wait_for(future, max(limit_s, 0.01))
