"""harbor-ha(8) is generated from the CLI: every command, option and exit code the program has
is on the page, and the page is valid troff.  The packaged unit differs from
deploy/systemd/harbor-ha.service only in ExecStart."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from deb.build import unit_text
from deb.manpage import render
from harbor_ha import cli

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> dict[str, argparse.ArgumentParser]:
    for action in cli._parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_every_command_and_option_is_on_the_page() -> None:
    """Each subcommand has a section, each of its options (and choices) and the top-level
    options are named, and the exit codes of the CLI's docstring are listed."""
    page = render()
    assert page.startswith(".TH HARBOR\\-HA 8 ")
    for name, sub in _commands().items():
        assert f".SS {name.replace('-', chr(92) + '-')}\n" in page, name
        for action in sub._actions:
            for opt in action.option_strings:
                if opt not in ("-h", "--help"):
                    assert opt.replace("-", "\\-") in page, (name, opt)
            for choice in action.choices or ():
                assert str(choice) in page, (name, choice)
    assert "\\-\\-env\\-file" in page and "\\-\\-version" in page
    for code in ("unreachable", "FENCED_SELF", "crm_mon"):
        assert code in page, code


@pytest.mark.skipif(shutil.which("groff") is None, reason="needs groff")
def test_the_page_is_valid_troff() -> None:
    """groff renders it with every warning enabled and prints none."""
    done = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z"],
        input=render(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stderr == ""


def test_the_packaged_unit_differs_only_in_execstart() -> None:
    """The .deb's unit is the repository's with ExecStart=/usr/sbin/harbor-ha run."""
    repo = (ROOT / "deploy/systemd/harbor-ha.service").read_text().splitlines()
    packaged = unit_text().splitlines()
    diff = [(a, b) for a, b in zip(repo, packaged, strict=True) if a != b]
    assert diff == [("ExecStart=/usr/local/bin/harbor-ha run", "ExecStart=/usr/sbin/harbor-ha run")]
