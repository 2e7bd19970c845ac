"""The daemon's use of the lease: the lease step, the renewal and the release.

The machine decides when (LEASING's step, the RENEW timer, the end of a clean demotion);
this module does the I/O and says what happened as an event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from harbor_ha.lease import Held, LeaseError, LeaseHeldByPeer, LeaseInfo, Locker, cookie_of
from harbor_ha.machine import Event, Node
from harbor_ha.machine.verdicts import (
    CLAIM_BACK_LOOKS,
    lease_step_verdict,
    peer_poll_verdict,
    poll_verdict,
)
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
    async def renew(self) -> Held: ...
    async def blocklisted(self) -> list[str]: ...
    async def blocklist_add(self, addresses: Sequence[str], expire_s: int) -> None: ...
    async def inspect(self, timeout_s: float | None = None) -> LeaseInfo: ...
    async def break_lock(self, holder: Locker) -> None: ...
    async def release(self) -> None: ...
    async def close(self) -> None: ...


def renewed(first: Locker | None, last: Locker | None) -> bool:
    """The holder renewed between two looks: the same locker, and Ceph's expiry of its lock
    is another one.  Any change counts, not only a later expiry: each renewal writes a new
    expiry, and one earlier than the last is still a renewal (an OSD clock stepped back; a
    client that sent an inexact duration, as python3-rados's ``lock_exclusive`` does, see
    :mod:`harbor_ha.lease.wire`).  Taking such a renewal for a stopped holder fences a live
    master."""
    return (
        same_locker(first, last)
        and first is not None
        and last is not None
        and first.expiration is not None
        and last.expiration is not None
        and last.expiration != first.expiration
    )


def unchanged(a: Locker | None, b: Locker | None) -> bool:
    """Two looks saw the same lock: the same locker and the same expiry (no renewal between)."""
    return (
        a is not None
        and b is not None
        and (a.entity, a.cookie, a.expiration) == (b.entity, b.cookie, b.expiration)
    )


def same_locker(a: Locker | None, b: Locker | None) -> bool:
    return a is not None and b is not None and (a.entity, a.cookie) == (b.entity, b.cookie)


@dataclass(frozen=True)
class Look:
    """One read of the lease: what it saw, and when the request started and ended (monotonic).
    Ceph answered somewhere between the two."""

    holder: Locker | None
    started: float
    ended: float


class StepOutcome(Exception):
    """A step ends with a classified outcome, a refusal (LEASE_HELD_BY_PEER) or a success the
    machine tells apart (LEASE_TAKEN): the driver posts ``event`` if the step declares it
    (``machine.OUTCOMES``), else STEP_FAILED."""

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
    _since: Look | None = None  # the earliest look that saw what the latest look saw
    _latest: Look | None = None
    node: Callable[[], Node] | None = None  # the machine's node (the driver's), once wired

    def __post_init__(self) -> None:
        self.metrics.lease_held.set_function(lambda: 1.0 if self.holds() else 0.0)

    def holds(self) -> bool:
        """This node holds the lease: the machine says so (past the lease step, renewing: not
        after LEASE_LOST, not FENCED_SELF or BACKUP) and its last renewal is
        younger than the lease's duration on the monotonic clock (read at each scrape; a
        wall-clock step changes nothing)."""
        held = self.lease.held
        if held is None or time.monotonic() >= held.renewed_at + held.duration_s:
            return False
        return self.node is None or self.node().holds_lease

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
        """The lease step.  Free: take it (STEP_DONE).  Held by the peer: judge from Ceph's
        expiry of its lock, over two looks one renewal interval (+ lease_stale_margin_s)
        apart, whether it renews.  The earlier look may be one the standby made while BACKUP
        (``watch``): the step then waits only for the rest of that gap.  It changed: the holder
        renews; a holder that demotes cleanly (its /status) -> StepOutcome(
        LEASE_HOLDER_DEMOTING) (the machine runs the step again until it releases), any other
        -> StepOutcome(LEASE_HELD_BY_PEER); it is never fenced.  It did not: the holder
        stopped renewing -> StepOutcome(LEASE_STALE): the fence step blocklists that holder's
        lease client with the image's watchers, then breaks its lock and takes it
        (``take_over``).  A success is kept only if Ceph answered within one interval (see
        Policy.lease_deadline_s); a slow answer is retried (it renewed our lock)."""
        s = self.settings
        self.stale = None
        gap = s.lease_renew_interval_s + s.lease_stale_margin_s
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
            before = self._latest
            now = await self._look()
            if now.holder is None:
                continue  # released between the two calls: take it
            first = self._since
            if (
                before is not None
                and renewed(before.holder, now.holder)
                and now.started - before.ended <= gap
            ):
                first = before  # a renewal since a look less than a gap ago counts at once
            assert first is not None
            last = await self._watch(first, now, gap)
            if not same_locker(first.holder, last):
                continue  # released or taken by another locker meanwhile: look again
            assert last is not None and first.holder is not None
            self.peer = last.cookie
            self._polled = [last.expiration]
            if renewed(first.holder, last):
                await self._refuse(last)
            self.stale = last
            log.warning(
                "lease_holder_stopped_renewing", object=s.lease_object, holder=last.cookie,
                entity=last.entity, address=last.address, expiration=last.expiration,
                reason=f"expiry unchanged over {gap:g} s",
                looked_for_s=round(time.monotonic() - first.ended, 3),
            )  # fmt: skip
            raise StepOutcome(Event.LEASE_STALE, f"{last.cookie} stopped renewing the lease")

    async def _refuse(self, holder: Locker) -> None:
        """The holder renews: never fence it.  The machine says what its state means
        (``lease_step_verdict``): demoting cleanly, or holding."""
        s = self.settings
        state = await self._peer_state()
        if lease_step_verdict(True, state) is Event.LEASE_HOLDER_DEMOTING:
            log.info("lease_holder_demoting", object=s.lease_object, holder=holder.cookie,
                     peer_state=state, reason="it renews until it releases: wait")  # fmt: skip
            raise StepOutcome(
                Event.LEASE_HOLDER_DEMOTING, f"{holder.cookie} renews the lease and is {state}"
            )
        log.warning("lease_held_by_peer", object=s.lease_object, holder=holder.cookie,
                    reason="its expiry changed: it renews")  # fmt: skip
        raise StepOutcome(
            Event.LEASE_HELD_BY_PEER, f"{holder.cookie} holds the lease and renews it"
        )

    async def _look(self) -> Look:
        """Read the lease and remember the look (the earliest look of a run of looks that saw
        the same lock is what a later stale judgment counts from)."""
        started = time.monotonic()
        holder = (await self.lease.inspect()).holder
        look = Look(holder, started, time.monotonic())
        if self._latest is None or not unchanged(self._latest.holder, holder):
            self._since = look
        self._latest = look
        return look

    def last_holder(self) -> Locker | None:
        """Another node's lease client as the last look saw it (the fence step blocklists it
        too: a holder whose lock lapsed may only be paused); None: none seen, or ours."""
        holder = self._latest.holder if self._latest is not None else None
        if holder is None or holder.cookie == cookie_of(self.settings.node_name):
            return None
        return holder

    async def watch(self) -> None:
        """A standby's look at the lease while BACKUP (the WATCH timer): remembered only, so
        that a promotion's lease step can count from it.  Tells the machine nothing."""
        try:
            await self._look()
        except LeaseError as exc:
            log.debug("lease_watch_failed", error=str(exc))

    async def _watch(self, first: Look, last: Look, gap: float) -> Locker | None:
        """Look at the holder every LOOK_EVERY_S from ``last`` on; stop at the first look
        where it renewed or changed since ``first`` (a live holder is known sooner: the
        refused node gives the VIP up sooner), or at the first look *started* ``gap`` after
        ``first`` *ended*: a look reads Ceph somewhere between its start and its end, so only
        that spacing guarantees two reads ``gap`` apart.  ``first`` may be a look made long
        ago (the standby's watch): the same lock seen since then was not renewed since then.
        The last look's holder (None: the lease is free)."""
        end = first.ended + gap
        while True:
            holder = last.holder
            if not same_locker(first.holder, holder) or renewed(first.holder, holder):
                return holder
            if last.started >= end:
                return holder
            await asyncio.sleep(max(0.0, min(LOOK_EVERY_S, end - time.monotonic())))
            last = await self._look()

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
            holder = (await self._look()).holder
        except LeaseError as exc:
            return Event.LEASE_PEER_RENEWS, f"cannot read the lease ({exc}): keep waiting"
        if holder is not None:
            self._polled = [*self._polled[-(CLAIM_BACK_LOOKS - 1) :], holder.expiration]
        event, why = poll_verdict(holder is None, self._polled)
        if event is None:  # only the holder's own state can tell (one HTTP call, bounded)
            event, why = peer_poll_verdict(await self._peer_state())
        return event, why if holder is None else f"{holder.cookie}: {why}"

    async def _peer_state(self) -> str | None:
        """The peer's state from its /status (``peer_http_url``), when it holds the lease;
        None: no URL, no answer in time, or the peer does not hold the lease."""
        s = self.settings
        if not s.peer_url:
            return None
        timeout = min(s.peer_timeout_s, s.lease_renew_interval_s)
        try:
            status = await peer_status(s.peer_url, timeout)
        except PeerUnreachable:
            return None
        if status.get("node") == s.node_name:
            log.error(
                "peer_same_node_name", node=s.node_name, peer=s.peer_url,
                reason="both nodes share the lease's cookie: its /status is not trusted",
            )  # fmt: skip
            return None
        lease = status.get("lease")
        held = isinstance(lease, dict) and lease.get("held") is True
        state = status.get("state")
        return state if held and isinstance(state, str) else None

    async def peer_holds(self) -> bool:
        """Reconcile's fact: another node's cookie holds the lease (one read, bounded by the
        lease's op timeout).  A read that fails is no such fact (False, logged): the first
        renewal and the deadline then bound a claim made without it."""
        try:
            info = await self.lease.inspect(self.settings.lease_op_timeout_s)
        except LeaseError as exc:
            log.warning("reconcile_lease_unknown", error=str(exc))
            return False
        holder = info.holder
        if holder is None or holder.cookie == cookie_of(self.settings.node_name):
            return False
        self.peer = holder.cookie
        return True

    async def renew(self) -> tuple[Event, str] | None:
        """One renewal, as the event the machine gets (None: the lease was released meanwhile,
        at the end of a clean demotion: nothing to tell)."""
        s = self.settings
        try:
            held = await self.lease.renew()
            self._export()
        except LeaseHeldByPeer as exc:
            return Event.LEASE_LOST, str(exc)
        except LeaseError as exc:
            if exc.kind == "released":
                return None
            if exc.kind == "blocklisted":  # a peer fenced this lease client: it is lost
                return Event.LEASE_LOST, str(exc)
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
