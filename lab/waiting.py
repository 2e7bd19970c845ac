"""Waiting for a condition: poll it until it holds, or fail saying what did not.

The one place of the repository's wait helpers: ``poll`` (blocking) and ``until`` (async,
for the unit and integration tests on an event loop).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


class Timeout(AssertionError):
    """A condition of the lab did not become true in time (an AssertionError, so a test that
    meets it fails rather than errors)."""


def poll(cond: Callable[[], Any], within_s: float, what: str, every_s: float = 0.2) -> Any:
    """Poll ``cond`` until it returns a truthy value and return that; :class:`Timeout` after
    ``within_s`` (naming ``what`` and the last value)."""
    deadline = time.monotonic() + within_s
    last: Any = None
    while True:
        last = cond()
        if last:
            return last
        if time.monotonic() > deadline:
            raise Timeout(f"{what}: not true within {within_s:g} s (last: {last!r})")
        time.sleep(every_s)


async def until(
    cond: Callable[[], Any], what: str = "condition", within_s: float = 5.0, every_s: float = 0.01
) -> Any:
    """Await ``cond`` (a plain callable, or one returning an awaitable) until it gives a truthy
    value and return that; :class:`Timeout` after ``within_s`` (naming ``what`` and the last
    value).  Sleeps ``every_s`` between looks, so the loop's other tasks run."""
    deadline = time.monotonic() + within_s
    while True:
        last = cond()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise Timeout(f"{what}: not true within {within_s:g} s (last: {last!r})")
        await asyncio.sleep(every_s)
