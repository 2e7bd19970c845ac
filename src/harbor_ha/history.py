"""The history journal: every transition, one JSON line, in a size-bounded file under the state
directory, so `harbor-ha history` can show failovers after restarts and reboots.

- Written by the driver's transition observer (:class:`HistoryWriter`), read by the CLI
  (:func:`read_history`) straight from the files: it works while the daemon is down.
- Bounded: before a line would take ``history.jsonl`` past ``max_bytes`` it is renamed to
  ``history.jsonl.1`` (replacing the older one), so at most twice ``max_bytes`` is on disk.
- fsync'd: each line is flushed and fsync'd, because the lines that matter most are the
  last ones before a crash or a power cut (a fencing, a failed promotion), and transitions
  are rare (a handful per failover), so the cost does not matter.  The writes run on one
  worker thread of their own, in order: a slow or hung local disk delays the history, never
  the event loop that keeps the safety rules (and pings the watchdog).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("harbor_ha.history")

FILE_NAME = "history.jsonl"


def history_files(state_dir: Path) -> tuple[Path, Path]:
    """(current, rotated) journal files."""
    current = state_dir / FILE_NAME
    return current, current.with_name(FILE_NAME + ".1")


class HistoryWriter:
    """Appends transition records (a driver observer); failures are logged, never raised."""

    def __init__(self, state_dir: Path, node: str, *, max_bytes: int) -> None:
        self._path, self._rotated = history_files(state_dir)
        self._dir = state_dir
        self._node = node
        self._max = max_bytes
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
        self.failed = 0

    def __call__(self, record: dict[str, Any]) -> None:
        line = json.dumps({"node": self._node, **record}, default=str) + "\n"
        future = self._pool.submit(self._append, line.encode())
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        exc = future.exception()
        if exc is not None:
            self.failed += 1
            log.error("history_write_failed", path=str(self._path), error=str(exc))

    def _append(self, data: bytes) -> None:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            if self._path.stat().st_size + len(data) > self._max:
                self._path.replace(self._rotated)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def flush(self) -> None:
        """Wait for the lines submitted so far (tests, shutdown)."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def read_history(state_dir: Path) -> Iterator[dict[str, Any]]:
    """Every record, oldest first (the rotated file, then the current one); a torn last line
    (a crash mid-write) or a line that is not a JSON object is skipped."""
    for path in reversed(history_files(state_dir)):
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record
