"""One wake-up primitive for several waiters: a generation counter that never swallows a pulse."""

from __future__ import annotations

import asyncio
import contextlib


class Pulse:
    """``fire()`` wakes every waiter.  A waiter takes ``mark()`` BEFORE it looks at the world
    and then ``wait(mark, timeout)``: a pulse fired in between (during a slow check) returns at
    once, and no waiter can clear another's pulse (there is nothing to clear)."""

    def __init__(self) -> None:
        self._generation = 0
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    def mark(self) -> int:
        return self._generation

    async def wait(self, mark: int, timeout_s: float | None = None) -> bool:
        """True when a pulse fired since ``mark``; False when ``timeout_s`` passed first."""
        if self._generation != mark:
            return True
        event = self._event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()
        return self._generation != mark
