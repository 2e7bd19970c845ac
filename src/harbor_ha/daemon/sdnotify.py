"""A hand-rolled sd_notify(3): one datagram per message to $NOTIFY_SOCKET (passed in by the CLI)."""

from __future__ import annotations

import contextlib
import socket

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
