"""keepalived's notify_fifo, read without blocking the event loop.

The line grammar is in :mod:`harbor_ha.keepalived.fifo_grammar`.

Reading: keepalived opens the FIFO ``O_RDWR`` and keeps it open, so lines
written while nobody reads wait in the pipe (a new reader sees earlier lines),
and its exit (or restart) shows the reader an EOF.  :class:`FifoReader` uses a
non-blocking fd and ``loop.add_reader`` rather than a thread: no thread to stop
when a blocking ``open``/``read`` hangs, and ``close()`` takes effect at once.
On EOF it closes and reopens the FIFO: on Linux a freshly opened read end
reports no hang-up until a writer has come and gone again, so waiting for the
next keepalived costs no CPU; reopens are further spaced by ``reopen_delay_s``
so a kernel that behaved otherwise could not make it spin.

Whether a keepalived is there: keepalived holds the FIFO open for its whole life (a reload
closes and reopens it at once), so a read end that reads EOF at once has no writer, and one
that answers EAGAIN has one.  With ``writer_grace_s`` set, the reader looks after each open
(every ``writer_check_s`` until a writer is there) and reports through ``on_writer(False)``
a FIFO that stayed without writer that long (keepalived died: kill -9, crash), then
``on_writer(True)`` once a writer holds it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import structlog

from harbor_ha.keepalived.errors import BadFifoLine, FifoError
from harbor_ha.keepalived.fifo_grammar import (
    LVS_KINDS,
    LVS_STATES,
    MAX_LINE_CHARS,
    VRRP_KINDS,
    VRRP_STATES,
    FifoLine,
    LineSplitter,
    parse_line,
)

__all__ = [
    "LVS_KINDS",
    "LVS_STATES",
    "MAX_LINE_CHARS",
    "VRRP_KINDS",
    "VRRP_STATES",
    "FifoLine",
    "FifoReader",
    "LineSplitter",
    "parse_line",
]

log = structlog.get_logger(__name__)

_READ_CHUNK = 65536


class FifoReader:
    """Reads keepalived's notify FIFO as :class:`FifoLine`s, forever, reopening on EOF.

    Bad input (garbage, unknown words, over-long or non-UTF-8 lines, a partial
    line cut by EOF) is reported through ``on_bad_line(raw, reason)`` and
    skipped; every reopen after an EOF is reported through ``on_reopen()``.
    Lines are not de-duplicated: keepalived may replay them and they are hints.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_line_bytes: int = MAX_LINE_CHARS,
        reopen_delay_s: float = 0.2,
        on_bad_line: Callable[[str, str], None] | None = None,
        on_reopen: Callable[[], None] | None = None,
        writer_grace_s: float | None = None,
        writer_check_s: float = 0.5,
        on_writer: Callable[[bool], None] | None = None,
    ) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be >= 1")
        self.path = Path(path)
        self.max_line_bytes = max_line_bytes
        self.reopen_delay_s = reopen_delay_s
        self._on_bad_line = on_bad_line
        self._on_reopen = on_reopen
        self.writer_grace_s = writer_grace_s
        self.writer_check_s = writer_check_s
        self._on_writer = on_writer
        self.writer_gone = False
        """No writer held the FIFO for writer_grace_s (reported), and none came back yet."""
        self._fd: int | None = None
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self.reopens = 0
        """How many times the FIFO was reopened after an EOF."""
        self.bad_lines = 0
        """How many bad lines were reported."""

    # ----------------------------------------------------------- public API
    def ensure_fifo(self) -> None:
        """Create the FIFO (0600, and its parent directory) if missing; refuse a non-FIFO."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.mkfifo(self.path, 0o600)
                log.info("fifo_created", path=str(self.path))
            except FileExistsError:
                pass  # created meanwhile (keepalived): checked below
            except OSError as exc:
                raise FifoError(self.path, f"cannot create: {exc.strerror or exc}") from exc
            st = os.lstat(self.path)
        except OSError as exc:
            raise FifoError(self.path, f"cannot stat: {exc.strerror or exc}") from exc
        if not stat.S_ISFIFO(st.st_mode):
            raise FifoError(
                self.path,
                f"exists and is not a FIFO ({_file_kind(st.st_mode)}): refusing to use it",
            )

    def close(self) -> None:
        """Stop reading: the iterator of :meth:`lines` ends; the fd is closed."""
        self._closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if self._waiter is None:
            self._close_fd()

    @property
    def closed(self) -> bool:
        return self._closed

    async def lines(self) -> AsyncIterator[FifoLine]:
        """Yield every good line, forever (until :meth:`close`); reopen on EOF."""
        splitter = LineSplitter(self.max_line_bytes)
        last_open: float | None = None
        try:
            while not self._closed:
                if last_open is not None:
                    wait = self.reopen_delay_s - (time.monotonic() - last_open)
                    if wait > 0:
                        await self._sleep(wait)
                    if self._closed:
                        break
                    self.reopens += 1
                    log.info("fifo_reopen", path=str(self.path), reopens=self.reopens)
                    self._call("on_reopen", self._on_reopen)
                fd = self._fd = self._open()
                last_open = time.monotonic()
                pending = None
                if self.writer_grace_s is not None:
                    pending = await self._await_writer(fd)
                if not pending:
                    # A read end with no writer yet reads as EOF at once, but epoll
                    # reports it readable only once a writer wrote or came and went.
                    await self._wait_readable(fd)
                while True:
                    data, pending = pending or await self._read(fd), None
                    if not data:
                        break
                    for raw, too_long in splitter.feed(data):
                        line = self._decode(raw, too_long)
                        if line is not None:
                            yield line
                rest = splitter.reset()
                if rest and not self._closed:
                    self._bad(rest.decode("utf-8", "replace"), "incomplete line at EOF")
                self._close_fd()
                if not self._closed:
                    log.info("fifo_eof", path=str(self.path))
        finally:
            self._close_fd()

    # ------------------------------------------------------------ internals
    def _open(self) -> int:
        self.ensure_fifo()
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(self.path, flags)
        except OSError as exc:
            raise FifoError(self.path, f"cannot open: {exc.strerror or exc}") from exc
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            raise FifoError(self.path, "replaced by a non-FIFO while opening")
        log.debug("fifo_opened", path=str(self.path))
        return fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    async def _await_writer(self, fd: int) -> bytes | None:
        """Return once a writer holds the FIFO: what it already wrote, or None (nothing yet).
        Without one, look again every writer_check_s; writer_grace_s after the open, report
        the FIFO writerless (``on_writer(False)``, once); report its return (``True``)."""
        assert self.writer_grace_s is not None
        opened = time.monotonic()
        while not self._closed:
            try:
                data: bytes | None = os.read(fd, _READ_CHUNK)
            except BlockingIOError:
                data = None  # a writer, nothing written yet
            except OSError as exc:
                raise FifoError(self.path, f"read failed: {exc.strerror or exc}") from exc
            if data != b"":
                if self.writer_gone:
                    self.writer_gone = False
                    log.info("fifo_writer_back", path=str(self.path))
                    self._call("on_writer", self._on_writer, True)
                return data
            if not self.writer_gone and time.monotonic() - opened >= self.writer_grace_s:
                self.writer_gone = True
                log.warning(
                    "fifo_no_writer", path=str(self.path), after_s=self.writer_grace_s,
                    reason="no keepalived holds its notify FIFO: it exited without coming back",
                )  # fmt: skip
                self._call("on_writer", self._on_writer, False)
            await self._wait_readable(fd, timeout_s=self.writer_check_s)
        return None

    async def _read(self, fd: int) -> bytes:
        """The next chunk; b"" on EOF or close."""
        while not self._closed:
            try:
                return os.read(fd, _READ_CHUNK)
            except BlockingIOError:
                await self._wait_readable(fd)
            except OSError as exc:
                raise FifoError(self.path, f"read failed: {exc.strerror or exc}") from exc
        return b""

    async def _wait_readable(self, fd: int, timeout_s: float | None = None) -> None:
        """Until ``fd`` is readable, :meth:`close` is called, or ``timeout_s`` passed."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter

        def ready() -> None:
            if not waiter.done():
                waiter.set_result(None)

        loop.add_reader(fd, ready)
        timer = loop.call_later(timeout_s, ready) if timeout_s is not None else None
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            loop.remove_reader(fd)
            self._waiter = None

    async def _sleep(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        handle = loop.call_later(delay, wake)
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiter = None

    def _decode(self, raw: bytes, too_long: bool) -> FifoLine | None:
        if too_long:
            shown = raw.decode("utf-8", "replace")
            self._bad(shown, f"line longer than {self.max_line_bytes} bytes: discarded")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._bad(raw.decode("utf-8", "replace"), "not valid UTF-8")
            return None
        if not text.strip():
            return None
        try:
            return parse_line(text, max_chars=self.max_line_bytes)
        except BadFifoLine as exc:
            self._bad(exc.line, exc.reason)
            return None

    def _bad(self, raw: str, reason: str) -> None:
        self.bad_lines += 1
        log.warning("fifo_bad_line", path=str(self.path), reason=reason, line=raw[:120])
        if self._on_bad_line is not None:
            try:
                self._on_bad_line(raw, reason)
            except Exception:
                log.exception("fifo_callback_failed", callback="on_bad_line")

    @staticmethod
    def _call(name: str, callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("fifo_callback_failed", callback=name)


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "unknown file type"
