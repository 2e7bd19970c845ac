"""The daemon's use of the lease: the lease step, the renewal and the release.

The machine decides when (LEASING's step, the RENEW timer, the end of a clean demotion);
this module does the I/O and says what happened as an event.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

import structlog

from harbor_ha.lease import Held, LeaseError, LeaseHeldByPeer, LeaseInfo
from harbor_ha.machine import Event
from harbor_ha.metrics import Metrics
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.lease")


class LeasePort(Protocol):
    held: Held | None
    last_error: str | None

    async def acquire(self) -> Held: ...
    async def inspect(self) -> LeaseInfo: ...
    async def release(self) -> None: ...
    async def close(self) -> None: ...


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
    peer: str | None = None  # the live holder the last lease step found

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
        """The lease step's bound: a holder that does not renew has lapsed by then."""
        s = self.settings
        return s.lease_duration_s + 2 * s.lease_renew_interval_s + 2 * (s.lease_op_timeout_s + 1)

    async def take(self) -> None:
        """The lease step: take the lease; while another node holds it, tell a live holder
        from a dead one by Ceph's expiry of its lock.  The expiry moved forward between two
        looks: the holder renews -> StepRefused(LEASE_HELD_BY_PEER) at once (about one
        interval; it is never fenced).  It does not move: the holder stopped renewing, so
        retry every interval until its lock lapses and take it.  Bounded by one duration plus
        one interval past the last expiry seen (and by the step's timeout).
        A success is kept only if Ceph answered within one interval (see Policy.
        lease_deadline_s); a slow answer is retried (it renewed our lock)."""
        s = self.settings
        give_up = time.monotonic() + s.lease_duration_s + s.lease_renew_interval_s
        seen: float | None = None  # the holder's expiry at the last look
        while True:
            try:
                held = await self.lease.acquire()
                self._export()
                if time.monotonic() - held.renewed_at <= s.lease_renew_interval_s:
                    self.peer = None
                    log.info("lease_acquired", object=s.lease_object)
                    return
            except LeaseHeldByPeer as exc:
                expiry = await self._holder_expiry()
                renewing = seen is not None and expiry is not None and expiry > seen
                if expiry is not None:
                    seen = expiry
                    left = expiry - time.time()
                    give_up = max(give_up, time.monotonic() + left + s.lease_renew_interval_s)
                if renewing or time.monotonic() >= give_up:
                    self.peer = str(exc)
                    why = "its expiry moved: it renews" if renewing else "it did not lapse"
                    log.warning("lease_held_by_peer", object=s.lease_object, reason=why)
                    raise StepRefused(Event.LEASE_HELD_BY_PEER, f"{exc} ({why})") from exc
            await asyncio.sleep(s.lease_renew_interval_s)

    async def _holder_expiry(self) -> float | None:
        """Ceph's expiry of the holder's lock (None: unknown, no duration, or no answer)."""
        try:
            holder = (await self.lease.inspect()).holder
        except LeaseError:
            return None
        return holder.expiration if holder is not None else None

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
