"""sd_notify: datagrams to a real Unix socket, as systemd receives them."""

from __future__ import annotations

import socket
from pathlib import Path

from harbor_ha.daemon.sdnotify import SdNotifier


def test_messages_reach_the_socket(tmp_path: Path) -> None:
    """READY=1 / WATCHDOG=1 / STOPPING=1 arrive as one datagram each, fields joined by newlines."""
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(2)
    n = SdNotifier(str(path))
    try:
        assert n.notify("READY=1", "STATUS=reconciled: BACKUP")
        assert server.recv(4096) == b"READY=1\nSTATUS=reconciled: BACKUP"
        assert n.notify("WATCHDOG=1")
        assert server.recv(4096) == b"WATCHDOG=1"
    finally:
        n.close()
        server.close()


def test_abstract_socket() -> None:
    """An address starting with '@' is in the abstract namespace (systemd uses those too)."""
    name = "@harbor-ha-test-notify"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name[1:])
    server.settimeout(2)
    n = SdNotifier(name)
    try:
        assert n.notify("STOPPING=1")
        assert server.recv(64) == b"STOPPING=1"
    finally:
        n.close()
        server.close()


def test_without_systemd_is_a_no_op(tmp_path: Path) -> None:
    """No NOTIFY_SOCKET: nothing is sent and nothing fails; a vanished socket is logged, not
    raised."""
    assert not SdNotifier(None).notify("READY=1")
    gone = SdNotifier(str(tmp_path / "missing.sock"))
    assert not gone.notify("WATCHDOG=1")
    gone.close()
