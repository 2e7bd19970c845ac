"""Priority 6: bad input, at the level where it is the real thing.

No lab needed here (the lab-level bad inputs, a missing RBD image and an unreadable compose
file on the standby, are in test_badinput_lab.py):
- property-based fuzzing (hypothesis) of keepalived FIFO lines through the daemon's intake
  path: ``parse_line`` (only BadFifoLine may escape) then ``event_for_line`` (only known
  events, or None), and raw bytes through the real FifoReader on a real FIFO;
- track-file paths that vanish (rmdir) or become unwritable (chattr +i): a named
  TrackFileError, and the next write after the path is back succeeds;
- env files with every kind of wrong value, through the real CLI: exit 2, one stderr line
  per bad variable, naming it; likewise a missing required setting, an unknown key (with a
  suggestion) and a value with a trailing ``# comment`` (systemd keeps it in the value);
- a mountpoint that is not a directory: `harbor-ha check` reports it (FAIL line, exit != 0).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harbor_ha.daemon.watchers import ROLE_EVENTS, event_for_line
from harbor_ha.keepalived.errors import BadFifoLine, TrackFileError
from harbor_ha.keepalived.fifo import LVS_STATES, VRRP_STATES, FifoReader, parse_line
from harbor_ha.keepalived.trackfile import TrackFiles, read_track_file
from harbor_ha.machine import Event

ROOT = Path(__file__).resolve().parents[2]
WORDS = [*sorted(VRRP_STATES | LVS_STATES), "{UNKNOWN}", "master", "MASTERX", ""]
KNOWN_EVENTS = set(ROLE_EVENTS.values())

line_like = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda kind, name, word, prio, pad: f'{pad}{kind} "{name}" {word} {prio}{pad}',
        st.sampled_from(["INSTANCE", "GROUP", "VS", "RS", "INSTANCEX", "instance"]),
        st.one_of(st.just("VI_1"), st.text(max_size=20)),
        st.sampled_from(WORDS),
        st.one_of(st.integers(-5, 1000).map(str), st.text(max_size=5)),
        st.sampled_from(["", " ", "\t", "\r"]),
    ),
)


def _intake(line: str) -> None:
    try:
        parsed = parse_line(line)
    except BadFifoLine:
        return
    assert parsed.kind in {"INSTANCE", "GROUP", "VS", "RS"}
    assert parsed.state in VRRP_STATES | LVS_STATES
    event = event_for_line(parsed, "VI_1")
    assert event is None or (isinstance(event, Event) and event in KNOWN_EVENTS)
    if event is not None:
        assert parsed.kind == "INSTANCE" and parsed.name == "VI_1"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line_like)
def test_fuzz_fifo_line_intake(line: str) -> None:
    """Any text through parse + event mapping: only BadFifoLine may be raised; a parsed line
    has a known kind/state, and maps to a known machine event or to None."""
    _intake(line)


@pytest.mark.full
@settings(max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line_like)
def test_fuzz_fifo_line_intake_long(line: str) -> None:
    """The same property over 20 000 examples (full matrix only)."""
    _intake(line)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(min_size=0, max_size=6000), min_size=1, max_size=5))
def test_fuzz_fifo_bytes_through_real_reader(chunks: list[bytes]) -> None:
    """Random bytes (invalid UTF-8, NULs, over-long lines, no newline) written into a real
    FIFO read by the real FifoReader: no exception escapes, and a valid line written after
    the garbage still arrives (the reader resynchronises on the next newline)."""
    import tempfile

    async def main(path: Path) -> list[Any]:
        bad: list[str] = []
        reader = FifoReader(path, on_bad_line=lambda raw, why: bad.append(why))
        got: list[Any] = []

        async def consume() -> None:
            async for line in reader.lines():
                got.append(line)
                if line.raw == 'INSTANCE "VI_1" BACKUP 100':
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        fd = os.open(path, os.O_WRONLY)
        try:
            for c in chunks:
                os.write(fd, c)
            os.write(fd, b'\nINSTANCE "VI_1" BACKUP 100\n')
        finally:
            os.close(fd)
        await asyncio.wait_for(task, 10)
        reader.close()
        return got

    with tempfile.TemporaryDirectory(prefix="hhflt-fifo-") as d:
        fifo = Path(d) / "fifo"
        os.mkfifo(fifo)
        got = asyncio.run(main(fifo))
    assert got and got[-1].raw == 'INSTANCE "VI_1" BACKUP 100'
    for line in got:
        assert line.state in VRRP_STATES | LVS_STATES


# ---------------------------------------------------------------- track files
def _chattr(flag: str, path: Path) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


def test_track_file_dir_vanishes_then_returns(tmp_path: Path) -> None:
    """The track files' directory removed (rmdir): writes raise TrackFileError (named, the
    daemon logs it and keeps deciding); once the directory is back, the next write works."""
    d = tmp_path / "run"
    tf = TrackFiles(d / "priority", d / "fault")
    tf.ensure()
    for f in d.iterdir():
        f.unlink()
    d.rmdir()
    with pytest.raises(TrackFileError):
        tf.set_fault(True)
    with pytest.raises(TrackFileError):
        tf.set_ready(True)
    d.mkdir()
    assert tf.set_fault(True) is True
    assert read_track_file(d / "fault") == 1


def test_track_file_dir_immutable(tmp_path: Path) -> None:
    """The track files' directory made immutable (chattr +i, real inode flag): the atomic
    write cannot make its temp file: TrackFileError; after chattr -i the write succeeds."""
    if os.geteuid() != 0:
        pytest.skip("chattr +i needs root")
    d = tmp_path / "run"
    tf = TrackFiles(d / "priority", d / "fault")
    tf.ensure()
    if not _chattr("+i", d):
        pytest.skip("filesystem of tmp_path has no inode flags")
    try:
        with pytest.raises(TrackFileError):
            tf.set_fault(False)
    finally:
        _chattr("-i", d)
    assert tf.set_fault(False) is True
    assert read_track_file(d / "fault") == 0


# ------------------------------------------------------------------ env files
BAD_VALUES: list[tuple[str, str]] = [
    ("HARBOR_HA_VIP", "300.1.1.1/24"),
    ("HARBOR_HA_VIP", "not-an-ip"),
    ("HARBOR_HA_HTTPS_PORT", "x"),
    ("HARBOR_HA_HTTPS_PORT", "70000"),
    ("HARBOR_HA_PROBE_INTERVAL_S", "-1"),
    ("HARBOR_HA_PROBE_INTERVAL_S", "0"),
    ("HARBOR_HA_KEEPALIVED_ROLE", "LEADER"),
    ("HARBOR_HA_VRRP_ROUTER_ID", "300"),
    ("HARBOR_HA_LOG_LEVEL", "loud"),
    ("HARBOR_HA_STOP_HARBOR_ON_EXIT", "maybe"),
    ("HARBOR_HA_FENCE_TIMEOUT_S", "soon"),
    ("HARBOR_HA_PROBE_FALL", "1.5"),
]


def _cli(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HARBOR_", "CEPH_")) and k not in ("INTERFACE", "KEEPALIVED_ROLE")
    }
    return subprocess.run(
        [sys.executable, "-m", "harbor_ha.cli", "--env-file", str(env_file), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


GOOD = {
    "HARBOR_HA_VIP": "10.99.0.100/24",
    "HARBOR_HA_INTERFACE": "eth0",
    "HARBOR_HA_CEPH_POOL": "rbd",
    "HARBOR_HA_CEPH_IMAGE": "harbor",
}


_REQ = "HARBOR_HA_INTERFACE=eth0\nHARBOR_HA_CEPH_POOL=rbd\nHARBOR_HA_CEPH_IMAGE=harbor\n"
_VIP = "HARBOR_HA_VIP=10.99.0.100/24\n"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_REQ, "HARBOR_HA_VIP / HARBOR_VIP: required, not set"),
        (_REQ + _VIP + "HARBOR_HA_VIPP=10.99.0.100/24\n",
         "HARBOR_HA_VIPP: unknown setting (did you mean HARBOR_HA_VIP?)"),
        (_REQ + _VIP + "MOUNTPOINT=/srv/harbor\n",
         "MOUNTPOINT: unknown setting (did you mean HARBOR_HA_MOUNTPOINT?)"),
        (_REQ + "HARBOR_HA_VIP=10.99.0.100/24   # the VIP\n",
         "HARBOR_HA_VIP / HARBOR_VIP: not an IP"),
        (_REQ + _VIP + "export HARBOR_HA_HTTPS_PORT=443\n", "systemd has no 'export'"),
    ],
    ids=["missing_required", "unknown_prefixed", "bare_name", "inline_comment", "export"],
)  # fmt: skip
def test_env_file_name_and_grammar_errors_exit_2(
    tmp_path: Path, text: str, needle: str, record: Any
) -> None:
    """Configuration that would be silently wrong is refused by the real CLI with one line
    saying why: a missing required setting, an unknown key, a bare field name, a trailing
    '# comment' (part of the value in systemd's grammar), an `export` line."""
    f = tmp_path / "harbor-ha.env"
    f.write_text(text)
    r = _cli("render-keepalived", "-o", "-", env_file=f)
    lines = r.stderr.strip().splitlines()
    record(
        injected=f"env file {text.splitlines()[-1]!r}",
        expected=f"exit 2, one line: {needle}",
        observed=f"exit {r.returncode}, {lines}",
    )
    assert r.returncode == 2 and r.stdout == ""
    assert len(lines) == 1, lines
    assert needle in lines[0], lines


@pytest.mark.parametrize(("var", "value"), BAD_VALUES)
def test_env_file_bad_value_exit_2(tmp_path: Path, var: str, value: str) -> None:
    """One wrong value in the env file: the real CLI exits 2 with exactly one line, naming
    the variable."""
    f = tmp_path / "harbor-ha.env"
    f.write_text("".join(f"{k}={v}\n" for k, v in {**GOOD, var: value}.items()))
    r = _cli("render-keepalived", "-o", "-", env_file=f)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1, lines
    assert var in lines[0], lines


def test_env_file_all_bad_values_one_line_each(tmp_path: Path, record: Any) -> None:
    """Every wrong value at once (one per variable): exit 2, one line per bad variable."""
    last: dict[str, str] = {}
    for var, value in BAD_VALUES:
        last[var] = value
    f = tmp_path / "harbor-ha.env"
    f.write_text("".join(f"{k}={v}\n" for k, v in {**GOOD, **last}.items()))
    r = _cli("render-keepalived", "-o", "-", env_file=f)
    lines = r.stderr.strip().splitlines()
    named = {var for var in last if any(var in ln for ln in lines)}
    record(
        injected=f"env file with {len(last)} bad variables (and each alone: "
        f"{len(BAD_VALUES)} cases)",
        expected="exit 2, one stderr line per bad variable naming it",
        observed=f"exit {r.returncode}, {len(lines)} lines, {len(named)} variables named",
    )
    assert r.returncode == 2
    assert len(lines) == len(last), lines
    assert named == set(last)


def test_mountpoint_not_a_directory_check_fails(tmp_path: Path, record: Any) -> None:
    """HARBOR_HA_MOUNTPOINT names a regular file: `harbor-ha check` prints a FAIL line for it
    and exits non-zero."""
    mp = tmp_path / "data"
    mp.write_text("i am a file\n")
    f = tmp_path / "harbor-ha.env"
    f.write_text(
        "".join(f"{k}={v}\n" for k, v in {**GOOD, "HARBOR_HA_MOUNTPOINT": str(mp)}.items())
    )
    r = _cli("check", env_file=f)
    fails = [ln for ln in r.stdout.splitlines() if "mountpoint" in ln and "FAIL" in ln]
    record(
        injected="mountpoint is a regular file (harbor-ha check)",
        expected="FAIL line naming the mountpoint, exit != 0",
        observed=f"exit {r.returncode}; {fails[:1]}",
    )
    assert r.returncode != 0
    assert fails, r.stdout
