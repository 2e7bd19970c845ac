"""keepalived track files: atomic plain-decimal writes, write-on-change, self-healing."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from harbor_ha.keepalived import TrackFileError, TrackFiles, read_track_file, write_track_file


def test_write_is_plain_decimal_with_newline(tmp_path: Path) -> None:
    """Values are written as plain decimal + newline: never a leading zero (octal to keepalived)."""
    path = tmp_path / "prio"
    for value, text in ((0, "0\n"), (1, "1\n"), (10, "10\n"), (8, "8\n"), (-3, "-3\n")):
        write_track_file(path, value)
        assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["prio"], "no temp file left behind"


def test_concurrent_reader_never_sees_partial_content(tmp_path: Path) -> None:
    """A reader hammering the file while it is rewritten only ever sees a whole number."""
    path = tmp_path / "fault"
    write_track_file(path, 0)
    seen: set[bytes] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                with open(path, "rb") as f:
                    seen.add(f.read())
            except BaseException as exc:  # a missing file would be a failure too
                errors.append(exc)
                return

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for i in range(400):
            write_track_file(path, i % 2)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert seen <= {b"0\n", b"1\n"}, seen


def test_set_returns_whether_it_wrote(tmp_path: Path) -> None:
    """set_ready/set_fault write only on change and say so."""
    files = TrackFiles(tmp_path / "prio", tmp_path / "fault")
    assert files.set_ready(True) is True
    assert files.set_ready(True) is False
    assert files.priority_value == 1
    assert files.set_ready(False) is True
    assert files.priority_value == 0
    assert files.set_fault(True) is True
    assert files.set_fault(True) is False
    assert files.fault_value == 1
    assert files.set_fault(False) is True
    assert files.fault_value == 0


def test_set_rewrites_after_external_change_or_delete(tmp_path: Path) -> None:
    """A file changed or deleted behind our back is rewritten at the next call."""
    files = TrackFiles(tmp_path / "prio", tmp_path / "fault")
    files.set_fault(True)
    (tmp_path / "fault").write_text("0\n")
    assert files.set_fault(True) is True
    assert (tmp_path / "fault").read_text() == "1\n"
    (tmp_path / "fault").unlink()
    assert files.set_fault(True) is True
    assert files.fault_value == 1
    (tmp_path / "fault").write_text("01\n")  # same number, but not our plain form
    assert files.set_fault(True) is True
    assert (tmp_path / "fault").read_text() == "1\n"


def test_values_are_none_when_missing_or_garbage(tmp_path: Path) -> None:
    """priority_value/fault_value are None for a missing, empty or non-numeric file."""
    files = TrackFiles(tmp_path / "prio", tmp_path / "fault")
    assert files.priority_value is None
    (tmp_path / "prio").write_text("")
    assert files.priority_value is None
    (tmp_path / "prio").write_text("ready\n")
    assert files.priority_value is None
    (tmp_path / "prio").write_text(" 7 \n")
    assert files.priority_value == 7
    assert read_track_file(tmp_path / "nothing") is None


def test_ensure_writes_safe_initial_values(tmp_path: Path) -> None:
    """ensure() writes not-ready + fault-on by default, creating the directory."""
    files = TrackFiles(tmp_path / "run" / "prio", tmp_path / "run" / "fault")
    files.ensure()
    assert (files.priority_value, files.fault_value) == (0, 1)
    other = TrackFiles(tmp_path / "p2", tmp_path / "f2", initial_ready=True, initial_fault=False)
    other.ensure()
    assert (other.priority_value, other.fault_value) == (1, 0)


def test_ensure_keep_existing_keeps_valid_values_only(tmp_path: Path) -> None:
    """ensure(keep_existing=True) keeps a plain 0/1 and replaces a missing or garbage file."""
    (tmp_path / "fault").write_text("0\n")
    (tmp_path / "prio").write_text("junk")
    files = TrackFiles(tmp_path / "prio", tmp_path / "fault")
    files.ensure(keep_existing=True)
    assert (files.priority_value, files.fault_value) == (0, 0)
    files.ensure()
    assert files.fault_value == 1


def test_vanished_directory_raises_with_the_path(tmp_path: Path) -> None:
    """Writing into a directory that vanished raises TrackFileError naming the path."""
    directory = tmp_path / "run"
    directory.mkdir()
    files = TrackFiles(directory / "prio", directory / "fault")
    files.set_ready(True)
    (directory / "prio").unlink()
    directory.rmdir()
    with pytest.raises(TrackFileError) as info:
        files.set_ready(False)
    assert info.value.path == directory / "prio"
    assert str(directory / "prio") in str(info.value)


def test_parent_that_is_a_file_raises(tmp_path: Path) -> None:
    """A parent path that is a regular file cannot hold the track file: TrackFileError."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrackFileError, match="cannot write"):
        write_track_file(tmp_path / "file" / "prio", 1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory_raises(tmp_path: Path) -> None:
    """A directory we may not write raises TrackFileError (as non-root)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        with pytest.raises(TrackFileError):
            write_track_file(directory / "prio", 1)
    finally:
        directory.chmod(0o700)


def test_unwritable_directory_raises_as_root_too() -> None:
    """A directory no one may create files in (/proc) raises TrackFileError, even as root."""
    with pytest.raises(TrackFileError, match="/proc/harbor-ha-track"):
        write_track_file(Path("/proc/harbor-ha-track"), 1)


def test_a_write_never_waits_on_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Track files are written on the event loop (every transition may change the fault file):
    a write is atomic for keepalived (temp file + rename) but never fsyncs, so a disk that
    stalls cannot stop the loop, and with it the lease's renewals.  They live in /run and are
    rewritten at every start: durability buys nothing."""

    def stalled(fd: int) -> None:
        raise AssertionError("fsync on the event loop: a stalled disk would stop the renewals")

    monkeypatch.setattr(os, "fsync", stalled)
    target = tmp_path / "fault"
    write_track_file(target, 1)
    assert read_track_file(target) == 1
