"""The env-file parser: systemd's EnvironmentFile= grammar, case by case.

The table of cases (tests/envfile_cases.py) is also run through a real systemd by
tests/integration/systemd/test_envfile_systemd.py, so these expectations are systemd's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_ha.settings import EnvFileError, parse_env_bytes, parse_env_text, read_env_file
from tests.envfile_cases import CASES, Case


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case) -> None:
    """Each case gives systemd's values, and a problem on exactly the lines systemd ignores
    or misreads; a file systemd refuses as a whole raises EnvFileError."""
    if case.values is None:
        with pytest.raises(EnvFileError, match="systemd refuses"):
            parse_env_bytes(case.data)
        return
    parsed = parse_env_bytes(case.data)
    assert parsed.values == case.values
    assert tuple(line for line, _ in parsed.problems) == case.problem_lines


def test_inline_comment_stays_in_the_value() -> None:
    """The issue's case: '#' after a value is part of the value (no inline comments)."""
    parsed = parse_env_text("HARBOR_HA_VIP=10.0.0.100/24   # the VIP\n")
    assert parsed.values == {"HARBOR_HA_VIP": "10.0.0.100/24   # the VIP"}
    assert parsed.problems == []


def test_problem_messages_say_what_systemd_does() -> None:
    """Each problem says why the line is wrong, in the operator's terms."""
    text = 'export A=1\nNOEQUALS\nB="open\n'
    messages = [msg for _, msg in parse_env_text(text).problems]
    assert "systemd has no 'export'" in messages[0]
    assert "no '='" in messages[1] and "'NOEQUALS'" in messages[1]
    assert "quote not closed" in messages[2]


def test_comment_continuation_is_flagged() -> None:
    """A comment ending in a backslash swallows the next line in systemd < 254 only: the
    parser reads it as Debian 12's systemd does and flags the line it swallows."""
    parsed = parse_env_text("# a \\\nA=1\n# b\nB=2\n")
    assert parsed.values == {"B": "2"}
    assert [line for line, _ in parsed.problems] == [2]


def test_line_numbers_follow_continuations() -> None:
    """Problems are reported on the file's own line numbers, continuations included."""
    parsed = parse_env_text('A="x\ny"\nB=1\\\n2\nbad line\n')
    assert parsed.values == {"A": "x\ny", "B": "12"}
    assert [line for line, _ in parsed.problems] == [5]
    assert parsed.lines == {"A": 1, "B": 3}


def test_read_env_file(tmp_path: Path) -> None:
    """A file is read as bytes: missing and non-UTF-8 files are errors naming the file."""
    with pytest.raises(EnvFileError, match="not found"):
        read_env_file(tmp_path / "none.env")
    bad = tmp_path / "bad.env"
    bad.write_bytes(b"A=1\nB=\xff\n")
    with pytest.raises(EnvFileError, match=rf"{bad}:2: not valid UTF-8"):
        read_env_file(bad)
    good = tmp_path / "good.env"
    good.write_text("A='x y'\n")
    assert read_env_file(good).values == {"A": "x y"}
