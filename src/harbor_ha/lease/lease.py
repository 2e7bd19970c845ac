"""The leadership lease: take, renew, read, break and release it through the agent.

Taking and renewing need the one long-lived Ceph client (the agent: a locker is the client
instance plus the cookie).  Reading the holder and breaking a lock do not need a particular
instance, but they go through the same client too: a look is one OSD round trip (a few ms)
instead of a `rados` process (~35 ms and a new Ceph session each), so the standby can watch
the lease while BACKUP and the lease step costs no process (cls_lock's calls: :mod:`.wire`).

The cookie names the node (``harbor-ha:<node_name>``).  When the agent was restarted (it
died, or a request timed out and it was killed) the lock may still be held by *our* cookie
on the dead instance: that is this node's own lease, so it is broken and taken again at
once (unless a peer has already fenced that dead instance: a daemon that restarted while
serving then lets the peer take over); a lock under another cookie is the peer's and is
never broken here.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from harbor_ha.ceph.parse import parse_blocklist
from harbor_ha.settings import Settings

from .client import AgentClient, AgentConfig
from .errors import LeaseError, LeaseHeldByPeer
from .view import LeaseInfo, Locker
from .wire import break_lock_input, decode_get_info, get_info_input, lock_input

log = structlog.get_logger("harbor_ha.lease")

LOCK_NAME = "harbor-ha"
"""The cls_lock name on the lease object (one lock per object)."""


def cookie_of(node_name: str) -> str:
    """The lock cookie that names a node (a lock under another cookie is another node's)."""
    return f"harbor-ha:{node_name}"


@dataclass(frozen=True)
class Held:
    """This node's lease after a successful take/renew (monotonic times of this process)."""

    renewed_at: float  # monotonic: when the successful call was sent
    renewed_wall: float  # wall clock of the same instant (for status/metrics)
    duration_s: int
    margin_s: float

    @property
    def deadline(self) -> float:
        """Monotonic instant by which the master must have stopped serving."""
        return self.renewed_at + self.duration_s - self.margin_s

    @property
    def expiry_wall(self) -> float:
        """Wall-clock instant Ceph's lock expires at the latest (from our side)."""
        return self.renewed_wall + self.duration_s


class Lease:
    """The lease object ``settings.lease_object`` in ``settings.ceph_pool``."""

    def __init__(self, settings: Settings) -> None:
        self._s = settings
        self.cookie = cookie_of(settings.node_name)
        self.agent = AgentClient(
            AgentConfig(
                conf=settings.ceph_conf,
                mon_host=settings.ceph_mon_host,
                keyring=settings.ceph_keyring,
                user=settings.ceph_user,
                pool=settings.ceph_pool,
                op_timeout_s=settings.lease_op_timeout_s,
                request_timeout_s=settings.lease_op_timeout_s + 1.0,
                python=settings.lease_agent_python,
            )
        )
        self.held: Held | None = None  # the last successful take/renew
        self.last_error: str | None = None
        self._op = asyncio.Lock()  # one take/renew/release at a time
        self._released = False  # released since the last take: a renewal must not re-take it

    # ------------------------------------------------------------ take / renew
    async def acquire(self) -> Held:
        """Take the lease, or renew it if this agent holds it.

        Raises LeaseHeldByPeer (another node's cookie holds it and renews), LeaseTimeout
        (Ceph did not answer in time) or LeaseError."""
        async with self._op:
            self._released = False
            return await self._acquire()

    async def renew(self) -> Held:
        """Renew the lease (a daemon that restarted into a promotion takes its own lock back);
        LeaseError("released") once it was released, until the next ``acquire``.

        A renewal still due when the demotion's release runs must not take the lease back:
        the check and the lock are one operation with respect to ``release``."""
        async with self._op:
            if self._released:
                raise LeaseError("released", "lease renew: released at the end of a demotion")
            # Every renewal checks the blocklist before breaking this cookie's lock on an
            # earlier instance: a master whose lease client was fenced must lose the lease,
            # never take it back (the fencing peer's take would fail "busy" and back off).
            return await self._acquire(resuming=True)

    async def _acquire(self, resuming: bool = False) -> Held:
        taking = self.held is None
        try:
            sent, wall = await self._try_lock(resuming)
        except LeaseError as exc:
            if not (taking and exc.kind == "blocklisted"):
                self.last_error = str(exc)
                raise
            # A peer fenced this node's earlier lease client (e.g. while this node demoted):
            # the agent was stopped on that answer, so this attempt connects a new client.
            # Only when taking: a holder's renewal that finds itself blocklisted was fenced
            # and must lose the lease, not take it again.
            log.info("lease_client_blocklisted", reason="taking the lease with a new client")
            try:
                sent, wall = await self._try_lock(resuming)
            except LeaseError as again:
                self.last_error = str(again)
                raise
        s = self._s
        self.held = Held(sent, wall, s.lease_duration_s, s.lease_margin_s)
        self.last_error = None
        return self.held

    async def _try_lock(self, resuming: bool = False) -> tuple[float, float]:
        """Connect (if needed), then lock; the monotonic and wall time the lock was sent."""
        await self.agent.ensure()
        sent, wall = time.monotonic(), time.time()
        try:
            await self._lock()
        except LeaseHeldByPeer:
            if not await self._break_own_stale(resuming):
                raise
            await self._lock()
        return sent, wall

    async def warm(self) -> None:
        """Start and connect the agent ahead of the first take (a standby's promotion then
        does not pay the interpreter's start and the Ceph connection); failures are logged,
        the first request tries again."""
        try:
            await self.agent.ensure()
        except LeaseError as exc:
            self.last_error = str(exc)
            log.warning("lease agent not started ahead", error=str(exc))

    async def release(self) -> None:
        """Give the lease up (a clean demotion: the peer need not wait for the expiry)."""
        async with self._op:
            self.held, self._released = None, True
            try:
                await self.agent.request("unlock", **self._ids())
            except LeaseError as exc:
                if exc.kind != "absent":
                    raise

    async def _lock(self) -> None:
        """Take or renew: cls_lock ``lock`` with the exact duration (:func:`.wire.lock_input`
        says why not the binding's ``lock_exclusive``).  Sent once: a renewal that finds this
        client blocklisted must fail (``_acquire`` decides whether a new client may take)."""
        description = f"{self._s.node_name} {self.agent.instance or ''}".strip()
        data = lock_input(LOCK_NAME, self.cookie, description, self._s.lease_duration_s)
        await self.agent.request(
            "exec",
            object=self._s.lease_object,
            cls="lock",
            method="lock",
            input=base64.b64encode(data).decode(),
        )

    def _ids(self) -> dict[str, Any]:
        return {"object": self._s.lease_object, "name": LOCK_NAME, "cookie": self.cookie}

    async def _break_own_stale(self, resuming: bool) -> bool:
        """Break the lock if our cookie holds it from an earlier agent instance.

        ``resuming``: a renewal (a master's, or the first of a daemon that restarted while
        serving).  If a peer has fenced that earlier client (its address is in the
        blocklist), the peer is taking over: its fence also cut this node's image, and a lock
        taken back now only makes the peer's take fail "busy" and roll back (one more
        failover).  So LeaseHeldByPeer (LEASE_LOST: this node demotes), not a reclaim."""
        info = await self.inspect()
        holder = info.holder
        if holder is None or holder.cookie != self.cookie or holder.entity == self.agent.instance:
            return False
        if resuming and holder.address in await self.blocklisted():
            log.warning(
                "lease_not_reclaimed", entity=holder.entity, address=holder.address,
                reason="a peer fenced this node's earlier lease client: it is taking over",
            )  # fmt: skip
            raise LeaseHeldByPeer(
                f"lease: this node's earlier lease client {holder.address} is blocklisted "
                "(a peer fenced it and is taking over)"
            )
        log.info(
            "lease: breaking this node's lock from an earlier agent",
            entity=holder.entity,
            instance=self.agent.instance,
        )
        await self.break_lock(holder)
        return True

    async def break_lock(self, holder: Locker) -> None:
        """Break ``holder``'s lock (cls_lock ``break_lock`` through the agent; a lock already
        gone is no error).  Any client may break a locker: no particular instance needed."""
        try:
            await self._exec(
                "break_lock", break_lock_input(LOCK_NAME, holder.entity, holder.cookie)
            )
        except LeaseError as exc:
            if exc.kind != "absent":
                raise

    async def blocklist_add(self, addresses: Sequence[str], expire_s: int) -> None:
        """``osd blocklist add ADDRESS EXPIRE_S`` for every address, as monitor commands sent
        at once through the agent (the fence step's entries: one monitor round trip, not a
        `ceph` process of ~0.5 s each; the same command and caps as the CLI's).  At once,
        because the monitor commits entries that arrive together in one proposal, and makes
        one that arrives after another's commit wait for its next proposal
        (``paxos_propose_interval``, 1 s by default): two entries one after the other took
        1.06 s, together 0.055 s (``python -m bench.blocklist_batch``, docs/benchmark.md).
        The caller checked the addresses' form."""
        if not addresses:
            return
        await self.agent.request(
            "mon_all",
            commands=[
                {"prefix": "osd blocklist", "blocklistop": "add", "addr": address,
                 "expire": float(expire_s)}
                for address in addresses
            ],
        )  # fmt: skip

    async def blocklisted(self) -> list[str]:
        """Addresses in Ceph's blocklist (``osd blocklist ls`` as a monitor command through
        the agent: the fence step's confirmation costs one monitor round trip, not a `ceph`
        process of ~0.5 s)."""
        answer = await self.agent.request(
            "mon", command={"prefix": "osd blocklist ls", "format": "json"}
        )
        try:
            return parse_blocklist(str(answer.get("output", "")))
        except ValueError as exc:
            raise LeaseError("failed", f"osd blocklist ls: bad answer: {exc}") from exc

    # ------------------------------------------------------------ read
    async def inspect(self, timeout_s: float | None = None) -> LeaseInfo:
        """Who holds the lease and until when (Ceph's view: cls_lock ``get_info`` through the
        agent, one OSD round trip; any client may read it).  No object yet: free."""
        try:
            answer = await self._exec("get_info", get_info_input(LOCK_NAME), timeout_s)
        except LeaseError as exc:
            if exc.kind == "absent":
                return LeaseInfo(())
            raise
        try:
            return decode_get_info(answer)
        except ValueError as exc:
            raise LeaseError("failed", f"lease: unexpected lock info: {exc}") from exc

    async def _exec(self, method: str, data: bytes, timeout_s: float | None = None) -> bytes:
        """A cls_lock call on the lease object.  A blocklisted agent (a peer fenced this
        node's lease client) was stopped on that answer: a read or a break needs no
        particular instance, so it is sent once more through a new client."""
        fields = {
            "object": self._s.lease_object,
            "cls": "lock",
            "method": method,
            "input": base64.b64encode(data).decode(),
        }
        try:
            try:
                answer = await self.agent.request("exec", timeout_s=timeout_s, **fields)
            except LeaseError as exc:
                if exc.kind != "blocklisted":
                    raise
                answer = await self.agent.request("exec", timeout_s=timeout_s, **fields)
            return base64.b64decode(str(answer.get("output", "")))
        except ValueError as exc:
            raise LeaseError("failed", f"lease {method}: bad answer: {exc}") from exc

    async def close(self) -> None:
        await self.agent.close()
