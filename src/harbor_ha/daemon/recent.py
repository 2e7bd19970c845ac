"""A short, bounded history of what an owner did (transitions, errors), for /status."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

Entry = dict[str, Any]


class Recent:
    """The last ``size`` entries, oldest first."""

    def __init__(self, size: int = 20) -> None:
        self._items: deque[Entry] = deque(maxlen=size)

    def add(self, entry: Entry) -> None:
        self._items.append(entry)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)


class Errors(Recent):
    """Errors of one owner: ``{"at", "where", "error"}``."""

    def record(self, where: str, error: str) -> None:
        self.add({"at": time.time(), "where": where, "error": error})


def merged(sources: Iterable[Iterable[Entry]], size: int = 20) -> list[Entry]:
    """The last ``size`` entries of several histories, in time order."""
    entries = sorted((e for src in sources for e in src), key=lambda e: float(e["at"]))
    return entries[-size:]
