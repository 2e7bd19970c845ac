"""A hand-rolled sd_notify(3): one datagram per message to $NOTIFY_SOCKET (passed in by the CLI)."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class SdNotifier:
    """Sends READY=1 / WATCHDOG=1 / STOPPING=1 / STATUS=... when run under systemd; else no-op."""

    def __init__(self, address: str | None) -> None:
        self._address: str | None = None
        self._sock: socket.socket | None = None
        if not address:
            return
        # An address starting with '@' is in the abstract namespace.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def notify(self, *fields: str) -> bool:
        if self._sock is None or self._address is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            log.warning("sd_notify_failed", error=str(exc))
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


STATUS_MAX = 200
"""systemctl status shows STATUS= on one line: keep it short."""


def status_line(record: dict[str, Any]) -> str:
    """``STATUS=<state>: <reason>`` for a transition record (the driver's observer)."""
    text = f"{record['to']}: {record['reason']}".replace("\n", " ")
    if len(text) > STATUS_MAX:
        text = text[: STATUS_MAX - 3] + "..."
    return f"STATUS={text}"


class StatusReporter:
    """Keeps systemd's STATUS= current: one notify per transition."""

    def __init__(self, notifier: SdNotifier) -> None:
        self._notifier = notifier

    def __call__(self, record: dict[str, Any]) -> None:
        self._notifier.notify(status_line(record))
