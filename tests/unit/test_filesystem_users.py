"""Finding the users of a mount through /proc readlinks (real processes, no mount needed)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harbor_ha.filesystem.users import _inside, find_mount_users


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A sleep whose cwd is tmp_path/data; killed by PID and reaped at teardown."""
    data = tmp_path / "data"
    data.mkdir()
    proc = subprocess.Popen(["sleep", "600"], cwd=data)
    try:
        yield data, proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _wait_listed(path: Path, pid: int) -> dict[int, str]:
    deadline = time.monotonic() + 10
    while True:
        users = find_mount_users(path)
        if pid in users or time.monotonic() > deadline:
            return users


def test_path_matching() -> None:
    """Inside means the path itself or below it; a sibling sharing the prefix is not inside."""
    assert _inside("/data", "/data")
    assert _inside("/data/registry/blob", "/data")
    assert _inside("/data/gone (deleted)", "/data")
    assert not _inside("/data2/x", "/data")
    assert not _inside("/", "/data")


def test_finds_a_process_by_cwd(sleeper: tuple[Path, subprocess.Popen[bytes]]) -> None:
    """A process whose cwd is under the path is listed with its comm."""
    data, proc = sleeper
    users = _wait_listed(data, proc.pid)
    assert users.get(proc.pid) == "sleep"
    assert proc.pid not in find_mount_users(data.parent / "elsewhere")


def test_never_lists_itself(tmp_path: Path) -> None:
    """Our own PID is never a candidate for TERM/KILL, even with cwd and fds inside."""
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        with open(tmp_path / "held", "w"):
            assert os.getpid() not in find_mount_users(tmp_path)
    finally:
        os.chdir(here)


def test_only_the_given_pids(sleeper: tuple[Path, subprocess.Popen[bytes]]) -> None:
    """With pids=..., only those are checked (used to poll signalled users)."""
    data, proc = sleeper
    _wait_listed(data, proc.pid)
    assert find_mount_users(data, [proc.pid]) == {proc.pid: "sleep"}
    assert find_mount_users(data, [1, os.getpid()]) == {}
