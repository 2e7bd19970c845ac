"""The log lines as journald receives them, from a real child process writing to stderr:
each carries the node's name, and under systemd (stderr is $JOURNAL_STREAM) the ``<N>``
syslog priority prefix of its level that journald turns into PRIORITY= (journalctl -p)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import os, structlog
from harbor_ha import logs
logs.configure("debug", node="node-a",
               syslog_prefix=logs.stderr_is_journal(os.environ.get("JOURNAL_STREAM")))
log = structlog.get_logger("t")
log.debug("d"); log.info("i", _event="KA_MASTER"); log.warning("w"); log.error("e")
log.critical("c"); log.info("mine", node="other")
try:
    raise RuntimeError("boom")
except RuntimeError:
    log.exception("x")
"""


def _run(tmp_path: Path, journal_stream: str | None) -> list[str]:
    out = tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with out.open("wb") as f:
        if journal_stream == "this file":
            st = os.fstat(f.fileno())
            journal_stream = f"{st.st_dev}:{st.st_ino}"
        if journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream
        subprocess.run([sys.executable, "-c", SCRIPT], stderr=f, env=env, timeout=60, check=True)
    return out.read_text().splitlines()


def test_under_journald_each_line_has_its_priority_prefix(tmp_path: Path) -> None:
    """With stderr being $JOURNAL_STREAM, every line starts with <7> debug, <6> info,
    <4> warning, <3> error and exception, <2> critical, followed by the JSON object."""
    lines = _run(tmp_path, "this file")
    prefixes = [line[: line.index(">") + 1] for line in lines]
    assert prefixes[:6] == ["<7>", "<6>", "<4>", "<3>", "<2>", "<6>"]
    assert prefixes[6] == "<3>", "log.exception is an error"
    first = json.loads(lines[1][3:])
    assert first["msg"] == "i" and first["event"] == "KA_MASTER" and first["level"] == "info"


def test_every_line_names_the_node(tmp_path: Path) -> None:
    """Each line has node=<HARBOR_HA_NODE_NAME>; a line that names a node itself keeps it."""
    records = [json.loads(line) for line in _run(tmp_path, None)]
    assert [r["node"] for r in records] == ["node-a"] * 5 + ["other", "node-a"]


def test_no_prefix_when_stderr_is_not_the_journal(tmp_path: Path) -> None:
    """Outside systemd (no $JOURNAL_STREAM, or one that names another stream) the lines are
    plain JSON, as the lab and a terminal read them."""
    for stream in (None, "1:2", "garbage"):
        lines = _run(tmp_path, stream)
        assert all(line.startswith("{") for line in lines), (stream, lines[:2])
