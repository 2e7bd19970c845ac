"""The daemon's use of the lease: the lease step, the renewal and the release.

The machine decides when (LEASING's step, the RENEW timer, the end of a clean demotion);
this module does the I/O and says what happened as an event.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from harbor_ha.lease import Held, LeaseError, LeaseHeldByPeer, LeaseInfo, Locker
from harbor_ha.machine import Event
from harbor_ha.metrics import Metrics
from harbor_ha.peer import PeerUnreachable, peer_status
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.lease")

LOOK_EVERY_S = 0.1
"""While telling a live holder from a stopped one, look at its expiry this often."""


class LeasePort(Protocol):
    held: Held | None
    last_error: str | None

    async def acquire(self) -> Held: ...
    async def inspect(self, timeout_s: float | None = None) -> LeaseInfo: ...
    async def break_lock(self, holder: Locker) -> None: ...
    async def release(self) -> None: ...
    async def close(self) -> None: ...


def moved(first: Locker, last: Locker) -> bool:
    """The holder renewed between two looks: Ceph's expiry of its lock moved forward."""
    return (
        first.expiration is not None
        and last.expiration is not None
        and (last.expiration > first.expiration)
    )


class StepRefused(Exception):
    """A step ends with a classified outcome: the driver posts ``event`` (not STEP_FAILED)."""

    def __init__(self, event: Event, message: str) -> None:
        super().__init__(message)
        self.event = event


@dataclass
class Leasing:
    """Owns this node's view of the lease (for /status, metrics and logs)."""

    settings: Settings
    lease: LeasePort
    metrics: Metrics
    peer: str | None = None  # the holder the last lease step found
    stale: Locker | None = None  # a holder that stopped renewing: the fence step fences it
    _polled: list[float | None] = field(default_factory=list)  # the holder's last expiries

    def __post_init__(self) -> None:
        self.metrics.lease_held.set_function(lambda: 1.0 if self.holds() else 0.0)

    def holds(self) -> bool:
        """This node's last renewal has not expired yet (read at each scrape)."""
        held = self.lease.held
        return held is not None and held.expiry_wall > time.time()

    def view(self) -> dict[str, object]:
        """The lease as /status shows it: held, the holder, expiry and last renewal."""
        held = self.lease.held
        mine = self.holds()
        return {
            "object": self.settings.lease_object,
            "held": mine,
            "holder": self.settings.node_name if mine else self.peer,
            "last_renewal": held.renewed_wall if held else None,
            "expiry": held.expiry_wall if held else None,
            "deadline_in_s": round(held.deadline - time.monotonic(), 3) if held else None,
            "last_error": self.lease.last_error,
        }

    def _export(self) -> None:
        held = self.lease.held
        self.metrics.lease_expiry.set(held.expiry_wall if held is not None else 0)

    def timeout_s(self) -> float:
        """The lease step's bound: two looks one interval (+ margin) apart, and retries."""
        s = self.settings
        return (
            2 * s.lease_renew_interval_s + s.lease_stale_margin_s + 4 * (s.lease_op_timeout_s + 1)
        )

    async def take(self) -> None:
        """The lease step.  Free: take it (STEP_DONE).  Held by the peer: look at Ceph's
        expiry of its lock twice, one renewal interval (+ lease_stale_margin_s) apart.  It
        moved: the holder renews -> StepRefused(LEASE_HELD_BY_PEER) (it is never fenced).  It
        did not: the holder stopped renewing -> StepRefused(LEASE_STALE): the fence step
        blocklists that holder's lease client with the image's watchers, then breaks its lock
        and takes it (``take_over``).  A success is kept only if Ceph answered within one
        interval (see Policy.lease_deadline_s); a slow answer is retried (it renewed our lock)."""
        s = self.settings
        self.stale = None
        while True:
            try:
                held = await self.lease.acquire()
                self._export()
                if time.monotonic() - held.renewed_at <= s.lease_renew_interval_s:
                    self.peer = None
                    log.info("lease_acquired", object=s.lease_object)
                    return
                continue
            except LeaseHeldByPeer:
                pass
            first = (await self.lease.inspect()).holder
            if first is None:
                continue  # released between the two calls: take it
            gap = s.lease_renew_interval_s + s.lease_stale_margin_s
            last = await self._watch(first, gap)
            if last is None or (last.entity, last.cookie) != (first.entity, first.cookie):
                continue  # released or taken by another locker meanwhile: look again
            self.peer = last.cookie
            self._polled = [last.expiration]
            if moved(first, last):
                log.warning("lease_held_by_peer", object=s.lease_object, holder=last.cookie,
                            reason="its expiry moved: it renews")  # fmt: skip
                raise StepRefused(
                    Event.LEASE_HELD_BY_PEER, f"{last.cookie} holds the lease and renews it"
                )
            self.stale = last
            log.warning(
                "lease_holder_stopped_renewing", object=s.lease_object, holder=last.cookie,
                entity=last.entity, address=last.address, expiration=last.expiration,
                reason=f"expiry unchanged over {gap:g} s",
            )  # fmt: skip
            raise StepRefused(Event.LEASE_STALE, f"{last.cookie} stopped renewing the lease")

    async def _watch(self, first: Locker, gap: float) -> Locker | None:
        """Look at the holder every LOOK_EVERY_S; stop at the first look where it renewed or
        changed (a live holder is known sooner: the refused node gives the VIP up sooner), or
        at the first look *started* ``gap`` after the first look *ended*: a look reads Ceph
        somewhere between its start and its end (a `rados` process connects, reads, shuts
        down), so only that spacing guarantees two reads ``gap`` apart.  The last look (None:
        the lease is free)."""
        end = time.monotonic() + gap
        while True:
            await asyncio.sleep(max(0.0, min(LOOK_EVERY_S, end - time.monotonic())))
            started = time.monotonic()
            last = (await self.lease.inspect()).holder
            if last is None or (last.entity, last.cookie) != (first.entity, first.cookie):
                return last
            if moved(first, last) or started >= end:
                return last

    async def take_over(self, holder: Locker) -> None:
        """The stopped holder's lease client is blocklisted (confirmed): it can never renew
        again, so break its lock and take the lease at once."""
        await self.lease.break_lock(holder)
        await self._take_now(f"took over from {holder.cookie} (fenced)")

    async def wait_for_lapse(self, holder: Locker) -> None:
        """The holder's fence could not be confirmed: take the lease only once its lock has
        lapsed in Ceph (bounded by the fence step's timeout)."""
        s = self.settings
        log.warning("lease_waiting_for_expiry", holder=holder.cookie, expiration=holder.expiration)
        while True:
            try:
                await self._take_now(f"took over from {holder.cookie} (its lock lapsed)")
                return
            except LeaseHeldByPeer:
                await asyncio.sleep(s.lease_renew_interval_s)

    async def _take_now(self, why: str) -> None:
        await self.lease.acquire()
        self._export()
        self.stale = None
        self.peer = None
        log.warning("lease_acquired", object=self.settings.lease_object, reason=why)

    async def poll(self) -> tuple[Event, str]:
        """A refused standby's look at the lease (every renewal interval, while it keeps its
        fault): LEASE_CLAIM_BACK when the lease is free, or its holder's expiry did not move
        over the last two looks (it stopped renewing), or the partition healed (the peer's
        /status answers: MASTER holding the lease); else LEASE_PEER_RENEWS (keep waiting)."""
        try:
            holder = (await self.lease.inspect()).holder
        except LeaseError as exc:
            return Event.LEASE_PEER_RENEWS, f"cannot read the lease ({exc}): keep waiting"
        if holder is None:
            return Event.LEASE_CLAIM_BACK, "the lease is free"
        self._polled = [*self._polled[-2:], holder.expiration]
        if len(self._polled) == 3 and len(set(self._polled)) == 1:
            return Event.LEASE_CLAIM_BACK, f"{holder.cookie} stopped renewing"
        if await self._peer_serves_holding_the_lease():
            return Event.LEASE_CLAIM_BACK, "partition healed: the peer is MASTER with the lease"
        return Event.LEASE_PEER_RENEWS, f"{holder.cookie} renews"

    async def _peer_serves_holding_the_lease(self) -> bool:
        s = self.settings
        if not s.peer_http_url:
            return False
        timeout = min(s.peer_timeout_s, s.lease_renew_interval_s)
        try:
            status = await peer_status(s.peer_http_url, timeout)
        except PeerUnreachable:
            return False
        lease = status.get("lease")
        held = isinstance(lease, dict) and lease.get("held") is True
        return status.get("state") == "MASTER" and held

    async def renew(self) -> tuple[Event, str]:
        """One renewal, as the event the machine gets."""
        s = self.settings
        try:
            held = await self.lease.acquire()
            self._export()
        except LeaseHeldByPeer as exc:
            return Event.LEASE_LOST, str(exc)
        except LeaseError as exc:
            return Event.LEASE_UNREACHABLE, str(exc)
        took = time.monotonic() - held.renewed_at
        if took > s.lease_renew_interval_s:
            return Event.LEASE_UNREACHABLE, f"renewal answered after {took:.2f} s (too late)"
        return Event.LEASE_RENEWED, f"renewed in {took * 1000:.0f} ms"

    async def release(self) -> None:
        """End of a clean demotion: give the lease up so the peer need not wait for it."""
        try:
            await self.lease.release()
            self._export()
            log.info("lease_released", object=self.settings.lease_object)
        except LeaseError as exc:
            log.warning("lease_release_failed", error=str(exc))
