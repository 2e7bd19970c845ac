"""Waiting for a condition in the lab: poll it until it holds, or fail saying what did not."""

from __future__ import annotations

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
