"""The daemon's use of the failsafe (docs/design.md, "The failsafe"): the master's request,
as the event the machine gets, and the peer's decision (promise only when it cannot reach
Ceph itself and is not serving; the promise is an event of this node's machine)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from harbor_ha.lease import LeaseError
from harbor_ha.machine import Event, Node, promise_refusal
from harbor_ha.peer.failsafe import Decision, FailsafeServer, ask
from harbor_ha.settings import Settings

from .leasing import LeasePort

log = structlog.get_logger("harbor_ha.failsafe")

PROMISE_FILE = "failsafe-promise"
"""In runtime_dir: the monotonic instant this node's last promise ends.  /run and the
monotonic clock both start anew at boot, so the file never outlives the clock it counts on."""


def promise_path(settings: Settings) -> Path:
    return settings.runtime_dir / PROMISE_FILE


def remember_promise(path: Path, window_s: float) -> None:
    """A granted promise binds a restarted daemon too: write when it ends (atomic rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{time.monotonic() + window_s:.3f}\n")
    tmp.replace(path)


def promise_left(path: Path, window_s: float) -> float:
    """Seconds left of a promise given before this start (0: none).  An unreadable file is
    one whole window: refuse to promote rather than break a promise."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return 0.0
    except OSError:
        return window_s
    try:
        left = float(text) - time.monotonic()
    except ValueError:
        return window_s
    return min(max(left, 0.0), window_s)


class Failsafe:
    def __init__(
        self,
        settings: Settings,
        lease: LeasePort,
        node: Callable[[], Node],
        decide: Callable[[Event, str], Awaitable[Node]],
    ) -> None:
        self._s = settings
        self._lease = lease
        self._node = node
        self._decide = decide
        secret = settings.failsafe_secret
        self._secret = secret.get_secret_value().encode() if secret is not None else b""
        self.server: FailsafeServer | None = None
        if settings.failsafe_listen and self._secret:
            self.server = FailsafeServer(
                settings.failsafe_listen, self._secret, settings.failsafe_window_s, self.decide,
                node=settings.node_name,
            )  # fmt: skip

    async def ask(self) -> tuple[Event, str]:
        """The master's request: FAILSAFE_CONFIRMED only for a promise (with a valid MAC) at
        least as long as this node's window; anything else is FAILSAFE_DENIED."""
        s = self._s
        if not s.failsafe_enabled or s.failsafe_peer is None:
            return Event.FAILSAFE_DENIED, "no failsafe configured"
        promised, why, window = await ask(
            s.failsafe_peer, self._secret, s.node_name, s.failsafe_request_timeout_s
        )
        if promised and window >= s.failsafe_window_s:
            return Event.FAILSAFE_CONFIRMED, why
        if promised:
            why = f"{why}, but for {window:g} s < failsafe_window_s {s.failsafe_window_s:g}"
        return Event.FAILSAFE_DENIED, why

    async def decide(self) -> Decision:
        """The peer's side: promise only while BACKUP and unable to reach Ceph.  The promise
        is the machine's decision, taken after the probe (the node may have started a
        promotion meanwhile: then refused); a granted one is written down, so a restarted
        daemon keeps it."""
        refusal = promise_refusal(self._node())
        if refusal is not None:
            return Decision(False, refusal)
        try:
            await self._lease.inspect(timeout_s=self._s.failsafe_probe_timeout_s)
        except LeaseError as exc:
            why = f"failsafe: cannot reach Ceph ({exc})"
            node = await self._decide(Event.FAILSAFE_PROMISED, why)
            if not node.promised:
                return Decision(False, promise_refusal(node) or f"this node is {node.state}")
            path = promise_path(self._s)
            try:
                await asyncio.to_thread(remember_promise, path, self._s.failsafe_window_s)
            except OSError as err:  # a restart would forget it: say so
                log.error("failsafe_promise_not_written", path=str(path), error=str(err))
            return Decision(True, f"cannot reach Ceph either ({exc})")
        return Decision(False, "this node reaches Ceph")
