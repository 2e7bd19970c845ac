"""keepalived notify_fifo: line parsing, and FifoReader against a real FIFO (os.mkfifo)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
import struct
import termios
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harbor_ha.keepalived import BadFifoLine, FifoError, FifoLine, FifoReader, parse_line
from harbor_ha.keepalived.fifo_grammar import LineSplitter
from lab.waiting import until

# ---------------------------------------------------------------- parse_line


@pytest.mark.parametrize(
    ("line", "kind", "name", "state", "priority"),
    [
        ('INSTANCE "VI_1" MASTER 100', "INSTANCE", "VI_1", "MASTER", 100),
        ('INSTANCE "VI_1" BACKUP 100\n', "INSTANCE", "VI_1", "BACKUP", 100),
        ('INSTANCE "VI_1" FAULT 0', "INSTANCE", "VI_1", "FAULT", 0),
        ('INSTANCE "VI_1" STOP 100', "INSTANCE", "VI_1", "STOP", 100),
        ('INSTANCE "VI_1" DELETED 100', "INSTANCE", "VI_1", "DELETED", 100),
        ('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150', "INSTANCE", "VI_1", "MASTER_RX_LOWER_PRI", 150),
        ('INSTANCE "VI_1" MASTER_PRIORITY 90', "INSTANCE", "VI_1", "MASTER_PRIORITY", 90),
        ('INSTANCE "VI_1" BACKUP_PRIORITY 150', "INSTANCE", "VI_1", "BACKUP_PRIORITY", 150),
        ('INSTANCE "vi.with-dots_2" MASTER 255', "INSTANCE", "vi.with-dots_2", "MASTER", 255),
        ('GROUP "G1" MASTER 0', "GROUP", "G1", "MASTER", 0),
        ('GROUP "G1" FAULT 0\r\n', "GROUP", "G1", "FAULT", 0),
        ("VS [192.168.201.15]:tcp:80 UP", "VS", "[192.168.201.15]:tcp:80", "UP", None),
        (
            "RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN",
            "RS",
            "[1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80",
            "DOWN",
            None,
        ),
    ],
)
def test_parse_line_accepts_every_keepalived_format(
    line: str, kind: str, name: str, state: str, priority: int | None
) -> None:
    """Each line format keepalived 2.2.7 writes parses into kind/name/state/priority."""
    parsed = parse_line(line)
    assert parsed == FifoLine(
        kind=kind, name=name, state=state, priority=priority, raw=line.removesuffix("\n")
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("hello world", "unknown line type"),
        ('INSTANCE "VI_1" SLEEPING 100', "unknown state word"),
        ('INSTANCE "VI_1" {UNKNOWN} 100', "UNKNOWN"),
        ('INSTANCE "VI_1" MASTER abc', "bad priority"),
        ('INSTANCE "VI_1" MASTER 256', "bad priority"),
        ('INSTANCE "VI_1" MASTER -1', "bad priority"),
        ('INSTANCE "VI_1" MASTER 1000', "bad priority"),
        ('INSTANCE "VI_1" MASTER', "expected"),
        ("INSTANCE VI_1 MASTER 100", "expected"),
        ('INSTANCE "" MASTER 100', "expected"),
        ('INSTANCE "VI_1" MASTER 100 extra', "expected"),
        ('INSTANCE "VI\x01" MASTER 100', "control"),
        ("VS [1.2.3.4]:tcp:80 SIDEWAYS", "unknown state word"),
        ("RS [1.2.3.4]:tcp:80 UP", "at least 4"),
        ('INSTANCE "' + "x" * 5000 + '" MASTER 100', "too long"),
    ],
)
def test_parse_line_rejects_garbage_with_a_reason(line: str, reason: str) -> None:
    """Anything keepalived does not write raises BadFifoLine whose reason says why."""
    with pytest.raises(BadFifoLine) as info:
        parse_line(line)
    assert reason in info.value.reason
    assert info.value.line == line


@given(st.text(max_size=300))
def test_parse_line_never_raises_anything_but_badfifoline(text: str) -> None:
    """Arbitrary text: parse_line returns a FifoLine or raises BadFifoLine, nothing else."""
    with contextlib.suppress(BadFifoLine):
        assert isinstance(parse_line(text), FifoLine)


@given(
    st.sampled_from(["INSTANCE", "GROUP", "VS", "RS", "instance", ""]),
    st.text(max_size=20),
    st.sampled_from(["MASTER", "BACKUP", "FAULT", "UP", "master", "{UNKNOWN}", ""]),
    st.one_of(st.integers(-1000, 1000).map(str), st.text(max_size=5)),
)
def test_parse_line_near_valid_lines_never_crash(
    kind: str, name: str, state: str, prio: str
) -> None:
    """Lines shaped like keepalived's but with random parts never raise another exception."""
    line = f'{kind} "{name}" {state} {prio}'
    try:
        parsed = parse_line(line)
    except BadFifoLine:
        return
    assert parsed.kind == kind
    if parsed.priority is not None:
        assert 0 <= parsed.priority <= 255


# ---------------------------------------------------------------- FifoReader


class Collector:
    """Runs a FifoReader in a task and records what it yields and reports."""

    def __init__(self, path: Path, **kwargs: object) -> None:
        self.lines: list[FifoLine] = []
        self.bad: list[tuple[str, str]] = []
        self.reopens = 0
        self.reader = FifoReader(
            path,
            on_bad_line=lambda raw, reason: self.bad.append((raw, reason)),
            on_reopen=self._reopened,
            **kwargs,  # type: ignore[arg-type]
        )
        self.task: asyncio.Task[None] | None = None

    def _reopened(self) -> None:
        self.reopens += 1

    async def _run(self) -> None:
        async for line in self.reader.lines():
            self.lines.append(line)

    def start(self) -> Collector:
        self.task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        self.reader.close()
        if self.task is not None:
            await asyncio.wait_for(self.task, 5)


def unread(fd: int) -> int:
    """Bytes in the pipe not yet read by the reader (FIONREAD)."""
    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])


def open_writer(path: Path) -> int:
    """Open the FIFO the way keepalived does (O_RDWR | O_NONBLOCK)."""
    return os.open(path, os.O_RDWR | os.O_NONBLOCK)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "notify.fifo"
    os.mkfifo(path, 0o600)
    return path


async def test_reader_joins_a_line_written_in_pieces(fifo: Path) -> None:
    """A line split across several writes (and reads) is buffered and yielded once whole."""
    col = Collector(fifo).start()
    w = open_writer(fifo)
    try:
        for piece in (b"INSTANCE ", b'"VI_1" MAS', b"TER 10", b'0\nINSTANCE "VI_1" BA'):
            os.write(w, piece)
            await until(lambda: unread(w) == 0, "reader to consume the piece")
        assert [ln.state for ln in col.lines] == ["MASTER"]
        os.write(w, b"CKUP 100\n")
        await until(lambda: len(col.lines) == 2, "second line")
        assert col.lines[1].state == "BACKUP"
        assert col.bad == []
    finally:
        os.close(w)
        await col.stop()


async def test_reader_skips_and_reports_bad_lines(fifo: Path) -> None:
    """Garbage, unknown words, a 100 kB line and non-UTF-8 are reported once each and skipped."""
    col = Collector(fifo).start()
    w = open_writer(fifo)
    try:
        os.write(w, b"total garbage\n")
        os.write(w, b'INSTANCE "VI_1" SLEEPING 100\n')
        big = b"A" * 100_000 + b"\n"
        view = memoryview(big)
        while view:  # the pipe holds 64 kB: write as the reader drains
            try:
                n = os.write(w, view)
            except BlockingIOError:
                await asyncio.sleep(0.005)
                continue
            view = view[n:]
        os.write(w, b'INSTANCE "VI_1" \xff\xfe MASTER 100\n')
        os.write(w, b"\n")
        os.write(w, b'INSTANCE "VI_1" MASTER 100\n')
        await until(lambda: len(col.lines) == 1, "the good line")
        assert col.lines[0].state == "MASTER"
        reasons = [reason for _, reason in col.bad]
        assert len(reasons) == 4, reasons
        assert "unknown line type" in reasons[0]
        assert "unknown state word" in reasons[1]
        assert "longer than 4096 bytes" in reasons[2]
        assert "UTF-8" in reasons[3]
        assert col.reader.bad_lines == 4
    finally:
        os.close(w)
        await col.stop()


async def test_reader_reopens_on_eof_and_reads_the_next_writer(fifo: Path) -> None:
    """When the writer closes (keepalived exits) the reader reopens and reads the next one."""
    col = Collector(fifo).start()
    w = open_writer(fifo)
    os.write(w, b'INSTANCE "VI_1" MASTER 100\n')
    await until(lambda: len(col.lines) == 1, "first writer's line")
    os.close(w)
    await until(lambda: col.reopens == 1, "reopen after EOF")
    w2 = open_writer(fifo)
    try:
        os.write(w2, b'INSTANCE "VI_1" BACKUP 100\n')
        await until(lambda: len(col.lines) == 2, "second writer's line")
        assert [ln.state for ln in col.lines] == ["MASTER", "BACKUP"]
        assert col.reader.reopens == 1
    finally:
        os.close(w2)
        await col.stop()


async def test_reader_reports_a_line_cut_by_eof(fifo: Path) -> None:
    """A partial line left when the writer closes is reported, not glued to the next writer's."""
    col = Collector(fifo).start()
    w = open_writer(fifo)
    os.write(w, b'INSTANCE "VI_1" MAS')
    await until(lambda: unread(w) == 0, "reader to consume the partial line")
    os.close(w)
    await until(lambda: col.reopens == 1, "reopen after EOF")
    w2 = open_writer(fifo)
    try:
        os.write(w2, b'TER 100\nINSTANCE "VI_1" BACKUP 100\n')
        await until(lambda: len(col.lines) == 1, "the next good line")
        assert col.lines[0].state == "BACKUP"
        assert [r for _, r in col.bad] == ["incomplete line at EOF", col.bad[1][1]]
        assert col.bad[0][0] == 'INSTANCE "VI_1" MAS'
    finally:
        os.close(w2)
        await col.stop()


async def test_reader_yields_replayed_lines_again(fifo: Path) -> None:
    """The same line written twice is yielded twice: events are hints, the daemon dedups."""
    col = Collector(fifo).start()
    w = open_writer(fifo)
    try:
        os.write(w, b'INSTANCE "VI_1" MASTER 100\n' * 2)
        await until(lambda: len(col.lines) == 2, "both copies")
        assert col.lines[0] == col.lines[1]
    finally:
        os.close(w)
        await col.stop()


async def test_reader_sees_lines_written_before_it_started(fifo: Path) -> None:
    """Lines keepalived wrote while nobody read (it holds the FIFO O_RDWR) are read later."""
    w = open_writer(fifo)
    os.write(w, b'INSTANCE "VI_1" BACKUP 100\n')
    col = Collector(fifo).start()
    try:
        await until(lambda: len(col.lines) == 1, "the earlier line")
    finally:
        os.close(w)
        await col.stop()


async def test_reader_creates_a_missing_fifo_and_its_directory(tmp_path: Path) -> None:
    """A missing FIFO (and parent dir) is created with mode 0600 before reading."""
    path = tmp_path / "run" / "harbor-ha" / "keepalived.fifo"
    col = Collector(path).start()
    try:
        await until(path.exists, "the FIFO to be created")
        st_ = os.stat(path)
        assert stat.S_ISFIFO(st_.st_mode)
        assert stat.S_IMODE(st_.st_mode) & 0o077 == 0
        w = open_writer(path)
        os.write(w, b'INSTANCE "VI_1" FAULT 0\n')
        await until(lambda: len(col.lines) == 1, "a line through the created FIFO")
        os.close(w)
    finally:
        await col.stop()


@pytest.mark.parametrize("kind", ["regular file", "directory", "symlink"])
async def test_reader_refuses_a_path_that_is_not_a_fifo(tmp_path: Path, kind: str) -> None:
    """A path holding a regular file, a directory or a symlink is refused with a clear error."""
    path = tmp_path / "notify.fifo"
    if kind == "regular file":
        path.write_text("not a fifo")
    elif kind == "directory":
        path.mkdir()
    else:
        target = tmp_path / "real.fifo"
        os.mkfifo(target)
        path.symlink_to(target)
    reader = FifoReader(path)
    with pytest.raises(FifoError, match=f"not a FIFO \\({kind}\\)"):
        async for _ in reader.lines():
            pass
    assert path.exists() or path.is_symlink()


async def test_reader_does_not_spin_while_no_writer(fifo: Path) -> None:
    """After an EOF with no new writer the reader waits without reopening or burning CPU."""
    col = Collector(fifo, reopen_delay_s=0.01).start()
    w = open_writer(fifo)
    os.write(w, b'INSTANCE "VI_1" STOP 100\n')
    await until(lambda: len(col.lines) == 1, "the STOP line")
    os.close(w)
    await until(lambda: col.reopens == 1, "the reopen after EOF")
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(0.5)  # the measurement window, not a wait for a condition
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    print(f"reader idle without writer: cpu {cpu * 1000:.1f} ms over {wall * 1000:.0f} ms")
    try:
        assert col.reopens == 1
        assert cpu < 0.25 * wall
    finally:
        await col.stop()


async def test_close_ends_the_iteration(fifo: Path) -> None:
    """close() while the reader waits for data ends the iterator and closes the fd."""
    col = Collector(fifo).start()
    await until(lambda: col.reader._fd is not None, "the reader to open the FIFO")
    await col.stop()
    assert col.task is not None and col.task.done()
    assert col.reader._fd is None


# ---------------------------------------------------------------- LineSplitter


def test_splitter_joins_chunks_and_keeps_partial_lines() -> None:
    """Lines cut across reads are joined; a line without its newline waits for the next chunk
    and is handed back by reset() at EOF."""
    sp = LineSplitter(100)
    assert sp.feed(b'INSTANCE "VI_1" MAS') == []
    assert sp.feed(b'TER 100\nGROUP "G') == [(b'INSTANCE "VI_1" MASTER 100', False)]
    assert sp.reset() == b'GROUP "G'
    assert sp.reset() == b""


def test_splitter_reports_an_overlong_line_once_and_skips_to_its_newline() -> None:
    """A line past max_bytes is reported once (its first 200 bytes, too_long=True), the rest of
    it up to the newline is dropped, and the next line is whole."""
    sp = LineSplitter(10)
    assert sp.feed(b"x" * 15) == [(b"x" * 15, True)]
    assert sp.feed(b"yyyy") == []
    assert sp.feed(b"zz\nok\n") == [(b"ok", False)]
    assert sp.reset() == b""


async def test_reader_reports_a_fifo_left_without_keepalived_and_its_return(fifo: Path) -> None:
    """With writer_grace_s: the writer closes (keepalived killed) and none comes back:
    on_writer(False) once, after the grace and not before; a writer that opens it again
    without writing (a restarted keepalived) is on_writer(True) within one check; lines
    still flow. A writer back within the grace (a reload) reports nothing."""
    seen: list[tuple[bool, float]] = []
    start = time.monotonic()
    col = Collector(
        fifo,
        writer_grace_s=0.4,
        writer_check_s=0.05,
        on_writer=lambda present: seen.append((present, time.monotonic() - start)),
    ).start()
    w = open_writer(fifo)
    os.write(w, b'INSTANCE "VI_1" MASTER 100\n')
    await until(lambda: len(col.lines) == 1, "first line")
    os.close(w)  # a reload: the writer is back at once
    await until(lambda: col.reopens == 1, "reopen after EOF")
    w = open_writer(fifo)
    await asyncio.sleep(0.6)
    assert seen == [] and not col.reader.writer_gone
    os.close(w)  # killed: nobody comes back
    start = time.monotonic()
    await until(lambda: len(seen) == 1, "the FIFO reported writerless")
    assert seen[0][0] is False and seen[0][1] >= 0.4 and col.reader.writer_gone
    await asyncio.sleep(0.3)
    assert len(seen) == 1, "reported once"
    w2 = open_writer(fifo)
    try:
        await until(lambda: len(seen) == 2, "the writer's return")
        assert seen[1][0] is True and not col.reader.writer_gone
        os.write(w2, b'INSTANCE "VI_1" BACKUP 100\n')
        await until(lambda: len(col.lines) == 2, "the returned writer's line")
    finally:
        os.close(w2)
        await col.stop()
