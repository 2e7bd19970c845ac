"""The daemon's use of the failsafe (docs/design.md, "The failsafe"): the master's request,
as the event the machine gets, and the peer's decision (promise only when it cannot reach
Ceph itself and is not serving; the promise is an event of this node's machine)."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from harbor_ha.lease import LeaseError
from harbor_ha.machine import Event, Node, promise_refusal
from harbor_ha.peer.failsafe import Decision, FailsafeServer, ask
from harbor_ha.settings import Settings

from .leasing import LeasePort

log = structlog.get_logger("harbor_ha.failsafe")


class Failsafe:
    def __init__(
        self,
        settings: Settings,
        lease: LeasePort,
        node: Callable[[], Node],
        post: Callable[[Event, str], None],
    ) -> None:
        self._s = settings
        self._lease = lease
        self._node = node
        self._post = post
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
        """The peer's side: promise only while BACKUP and unable to reach Ceph."""
        refusal = promise_refusal(self._node())
        if refusal is not None:
            return Decision(False, refusal)
        try:
            await self._lease.inspect(timeout_s=self._s.failsafe_probe_timeout_s)
        except LeaseError as exc:
            self._post(Event.FAILSAFE_PROMISED, f"failsafe: cannot reach Ceph ({exc})")
            return Decision(True, f"cannot reach Ceph either ({exc})")
        return Decision(False, "this node reaches Ceph")
