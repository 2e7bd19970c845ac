"""The failsafe exchange, harbor-ha to harbor-ha (docs/design.md, "The failsafe").

When the master cannot renew the lease, it asks the peer over TCP (one JSON line each way)
whether the peer can reach Ceph.  The peer, if it cannot (probed with a short timeout) and is
not serving, promises not to promote for ``window_s`` and answers so.  Both lines carry an
HMAC-SHA256 under the shared secret: the request over (node, nonce, time), the answer over
(nonce, promise, window), so neither can be forged or replayed.  A request with a wrong or
missing MAC, a stale time or a nonce seen before is refused and logged.  This listener is
never the read-only HTTP port.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("harbor_ha.failsafe")

MAX_SKEW_S = 30.0
"""A request's time may differ from ours by this much (and a nonce is remembered as long)."""
MAX_LINE = 4096


def mac(secret: bytes, *parts: object) -> str:
    return hmac.new(secret, "|".join(str(p) for p in parts).encode(), hashlib.sha256).hexdigest()


def split_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True)
class Decision:
    promise: bool
    reason: str


Decide = Callable[[], Awaitable[Decision]]
"""The peer's side: probe Ceph and the node's state; promise (and tell the machine) or not."""


class FailsafeServer:
    """Answers the master's failsafe requests (authenticated); one line in, one line out."""

    def __init__(
        self, listen: str, secret: bytes, window_s: float, decide: Decide, *, node: str
    ) -> None:
        self._listen = listen
        self._secret = secret
        self._window_s = window_s
        self._decide = decide
        self._node = node
        self._nonces: dict[str, float] = {}
        self._server: asyncio.Server | None = None
        self.refused = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        host, port = split_hostport(self._listen)
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_LINE)
        log.info("failsafe_listening", address=self._listen, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def check(self, req: Any) -> str | None:
        """Why a request is refused (None: it is authentic and fresh)."""
        if not isinstance(req, dict):
            return "not a JSON object"
        node, nonce, at, got = req.get("node"), req.get("nonce"), req.get("ts"), req.get("mac")
        if not isinstance(got, str) or not got:
            return "no MAC (missing secret)"
        if not isinstance(nonce, str) or not isinstance(at, (int, float)):
            return "no nonce or time"
        if not hmac.compare_digest(got, mac(self._secret, "ask", node, nonce, at)):
            return "wrong MAC (wrong secret)"
        if node == self._node:
            return (
                f"same node_name {node!r} as this node: the lease's cookie cannot tell the "
                "two apart (set HARBOR_HA_NODE_NAME differently on each node)"
            )
        now = time.time()
        if abs(now - at) > MAX_SKEW_S:
            return f"stale request ({now - at:+.1f} s)"
        self._nonces = {n: t for n, t in self._nonces.items() if now - t <= 2 * MAX_SKEW_S}
        if nonce in self._nonces:
            return "replayed nonce"
        self._nonces[nonce] = now
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(10):
                line = await reader.readline()
                try:
                    req = json.loads(line)
                except ValueError:
                    req = None
                refused = self.check(req)
                if refused is not None:
                    self.refused += 1
                    log.warning("failsafe_request_refused", peer=str(peer), reason=refused)
                    answer: dict[str, Any] = {"ok": False, "error": "unauthenticated"}
                else:
                    decision = await self._decide()
                    nonce = req["nonce"]
                    log.warning(
                        "failsafe_request", peer=str(peer), node=req.get("node"),
                        promise=decision.promise, reason=decision.reason,
                        window_s=self._window_s if decision.promise else None,
                    )  # fmt: skip
                    answer = {
                        "ok": True, "node": self._node, "promise": decision.promise,
                        "window_s": self._window_s, "reason": decision.reason,
                        "mac": mac(self._secret, "answer", nonce, decision.promise,
                                   self._window_s),
                    }  # fmt: skip
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (TimeoutError, OSError, ValueError) as exc:
            log.warning("failsafe_connection_failed", peer=str(peer), error=str(exc))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def ask(peer: str, secret: bytes, node: str, timeout_s: float) -> tuple[bool, str, float]:
    """The master's side: (the peer promised, why, the promise's window).  Any failure,
    refusal or answer without a valid MAC is 'no promise'."""
    nonce = secrets.token_hex(16)
    at = time.time()
    req = {"node": node, "nonce": nonce, "ts": at, "mac": mac(secret, "ask", node, nonce, at)}
    host, port = split_hostport(peer)
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port, limit=MAX_LINE)
            try:
                writer.write(json.dumps(req).encode() + b"\n")
                await writer.drain()
                answer = json.loads(await reader.readline())
            finally:
                writer.close()
    except (TimeoutError, OSError, ValueError) as exc:
        return False, f"failsafe peer {peer}: {type(exc).__name__}: {exc}", 0.0
    if not isinstance(answer, dict) or not answer.get("ok"):
        return False, f"failsafe peer {peer} refused: {answer!r:.200}", 0.0
    promise, window = answer.get("promise"), answer.get("window_s")
    want = mac(secret, "answer", nonce, promise, window)
    if not hmac.compare_digest(str(answer.get("mac", "")), want):
        return False, f"failsafe peer {peer}: answer with a wrong MAC", 0.0
    if promise is not True or not isinstance(window, (int, float)):
        return False, f"failsafe peer {peer}: no promise ({answer.get('reason')})", 0.0
    return True, f"{answer.get('node')} promised: {answer.get('reason')}", float(window)
