"""structlog set-up: one JSON object per line on stderr (journald keeps it).

The state machine's ``event`` field would clash with structlog's message key,
so the message goes to ``msg`` and callers pass the machine event as ``_event``.

Every line carries the node's name (``node``), so the two nodes' journals can be merged and
searched.  Under systemd (stderr is the journal stream), every line starts with the
``<N>`` syslog priority of its level: journald reads and strips that prefix
(``SyslogLevelPrefix=yes``, systemd's default), so ``journalctl -p err`` finds the errors and
``journalctl -o cat`` still shows plain JSON.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

import structlog

SYSLOG_PRIORITY = {
    "critical": 2,
    "error": 3,
    "exception": 3,
    "warning": 4,
    "warn": 4,
    "info": 6,
    "debug": 7,
}
"""structlog level -> syslog priority (sd-daemon(3): <3> SD_ERR ... <7> SD_DEBUG)."""


def stderr_is_journal(journal_stream: str | None) -> bool:
    """True when stderr is the journal stream systemd passed (``$JOURNAL_STREAM`` is
    ``<device>:<inode>`` of that stream; compare it with stderr's, as systemd.exec(5) says)."""
    if not journal_stream:
        return False
    try:
        device, inode = (int(x) for x in journal_stream.split(":", 1))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def add_node(node: str) -> structlog.typing.Processor:
    def processor(
        _: object, __: str, event_dict: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        event_dict.setdefault("node", node)
        return event_dict

    return processor


def syslog_prefixed(renderer: structlog.typing.Processor) -> structlog.typing.Processor:
    """Wrap the final renderer: ``<N>`` of the line's level, then the rendered line."""

    def render(logger: object, name: str, event_dict: structlog.typing.EventDict) -> str:
        priority = SYSLOG_PRIORITY.get(str(event_dict.get("level", "info")), 6)
        line = renderer(logger, name, event_dict)
        if isinstance(line, bytes | bytearray):
            line = line.decode()
        if not isinstance(line, str):  # pragma: no cover - both renderers make strings
            raise TypeError(f"renderer returned {type(line).__name__}")
        return f"<{priority}>{line}"

    return render


def configure(
    level: str = "info",
    fmt: Literal["json", "console"] = "json",
    *,
    node: str = "",
    syslog_prefix: bool = False,
) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    if syslog_prefix:
        renderer = syslog_prefixed(renderer)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            *([add_node(node)] if node else []),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("msg", replace_by="_event"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
