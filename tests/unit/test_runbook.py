"""docs/runbook.md tells operators to run only commands the CLI really has: every
`harbor-ha ...` command in its code spans and code blocks parses with the real argument
parser, except the ones issue 12 adds later, which the runbook must say are not there yet."""

from __future__ import annotations

import re
import shlex

import pytest

from harbor_ha.cli import _parser
from tests.unit.deployfiles import RUNBOOK

NOT_YET = {("list",), ("history",), ("switchover", "--wait")}
"""Commands issue 12 adds; the runbook may name them only next to "Issue 12 adds"."""


def code_snippets(text: str) -> list[tuple[str, str]]:
    """(snippet, its paragraph) for every inline code span and indented code-block line."""
    out: list[tuple[str, str]] = []
    for paragraph in re.split(r"\n\s*\n", text):
        spans = re.findall(r"`([^`]+)`", paragraph.replace("\n", " "))
        lines = [line.strip() for line in paragraph.splitlines() if line.startswith("    ")]
        out.extend((snippet, paragraph) for snippet in spans + lines)
    return out


def cli_commands(snippet: str) -> list[list[str]]:
    """The argument lists of each `harbor-ha ...` call in a shell snippet (not systemd unit
    names: `systemctl restart harbor-ha`, `journalctl -u harbor-ha`)."""
    snippet = snippet.split("  #", 1)[0]
    calls: list[list[str]] = []
    for part in re.split(r"\|\||&&|\||;", snippet):
        try:
            words = shlex.split(part)
        except ValueError:
            continue
        for i, word in enumerate(words):
            if word == "harbor-ha" or word.endswith("/bin/harbor-ha"):
                if i > 0 and words[0] in {"systemctl", "journalctl", "ln"}:
                    break
                calls.append(words[i + 1 :])
                break
    return calls


def test_snippet_reader_finds_commands_not_unit_names() -> None:
    """The reader used below picks the CLI calls out of shell lines and leaves unit names."""
    assert cli_commands("harbor-ha version && harbor-ha status") == [["version"], ["status"]]
    assert cli_commands("harbor-ha render-keepalived -o - | diff - x") == [
        ["render-keepalived", "-o", "-"]
    ]
    assert cli_commands("/opt/v/bin/harbor-ha check   # comment") == [["check"]]
    assert cli_commands("systemctl enable --now harbor-ha keepalived") == []
    assert cli_commands("journalctl -u harbor-ha --since -1h") == []


def test_runbook_commands_exist() -> None:
    """Each harbor-ha command of the runbook parses with the CLI's parser; a command that
    issue 12 adds later only appears where the runbook says so."""
    checked = 0
    for snippet, paragraph in code_snippets(RUNBOOK.read_text()):
        for args in cli_commands(snippet):
            if not args:
                continue
            checked += 1
            try:
                _parser().parse_args(args)
            except SystemExit:
                assert tuple(args) in NOT_YET, f"not a harbor-ha command: {snippet!r}"
                assert "Issue 12 adds" in paragraph, f"{snippet!r} exists only after issue 12"
    assert checked >= 20


def test_parser_rejects_an_invented_command() -> None:
    """The check above can fail: the parser refuses a command the CLI does not have."""
    with pytest.raises(SystemExit):
        _parser().parse_args(["failover", "--now"])
