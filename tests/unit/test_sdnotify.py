"""sd_notify: datagrams to a real Unix socket, as systemd receives them."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from harbor_ha.daemon.driver import Driver
from harbor_ha.daemon.sdnotify import STATUS_MAX, SdNotifier, StatusReporter, status_line
from harbor_ha.keepalived.trackfile import TrackFiles
from harbor_ha.machine import Event, Kind, Node, State, Step
from harbor_ha.metrics import Metrics


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


async def test_status_follows_every_transition(tmp_path: Path) -> None:
    """With the StatusReporter observing the driver, each transition sends
    ``STATUS=<state>: <reason>`` to the notify socket: the reconcile, then each promotion
    state, in order."""
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.setblocking(False)
    notifier = SdNotifier(str(path))

    async def step_ok(step: Step) -> None:
        return None

    async def no_renewal() -> tuple[Event, str]:  # the lease is not under test here
        return Event.LEASE_RENEWED, "test"

    track = TrackFiles(tmp_path / "prio", tmp_path / "fault")
    track.ensure()
    driver = Driver(
        Node(), run_step=step_ok, step_timeout=lambda s: 5, track=track, metrics=Metrics(),
        background={Kind.RENEW_LEASE: no_renewal}, observers=(StatusReporter(notifier),),
    )  # fmt: skip
    task = asyncio.create_task(driver.run((Node(), ()), "reconciled from facts"))
    try:
        driver.post(Event.KA_MASTER, "keepalived: INSTANCE VI_1 MASTER")
        for _ in range(500):
            if driver.node.state is State.MASTER:
                break
            await asyncio.sleep(0.01)
        got = []
        while True:
            try:
                got.append(server.recv(4096).decode())
            except BlockingIOError:
                break
    finally:
        task.cancel()
        await asyncio.wait({task})
        notifier.close()
        server.close()
    assert got == [
        "STATUS=BACKUP: reconciled from facts",
        "STATUS=LEASING: keepalived: INSTANCE VI_1 MASTER",
        "STATUS=FENCING: lease done",
        "STATUS=MAPPING: fence done",
        "STATUS=MOUNTING: map done",
        "STATUS=STARTING: mount done",
        "STATUS=MASTER: start done",
    ]


def test_status_line_is_one_short_line() -> None:
    """A reason with newlines or over 200 characters still gives one line of at most 200."""
    line = status_line({"to": "BACKUP", "reason": "a\nb" + "x" * 500})
    assert line.startswith("STATUS=BACKUP: a b") and "\n" not in line
    assert len(line) == len("STATUS=") + STATUS_MAX and line.endswith("...")
