"""What the driver's observations mean, as data: the adapters report facts, these tables and
pure functions say which event the facts are.  No I/O.

- The storage probe of an rbd MASTER reports what it found (``StorageFinding``);
  ``STORAGE_EVENT`` says which event each finding is: no answer from a read is STORAGE_STUCK
  (Ceph does not answer this node: the failsafe may hold), every error is STORAGE_LOST.
- The lease step found a holder: ``lease_step_verdict`` (renewed or not, and the holder's
  state from its /status).
- A refused standby's poll of the lease: ``poll_verdict`` (the lease free, the holder's
  expiries, the holder's state).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from .states import DEMOTING, Event, State


class StorageFinding(enum.StrEnum):
    """What the rbd MASTER's storage probe found, checked in this order."""

    OK = "ok"
    NO_DEVICE = "no mapped device recorded"
    NOT_MOUNTED = "the mountpoint is no longer mounted from the device"
    READ_ONLY = "the mountpoint went read-only (I/O errors: fenced?)"
    NO_ANSWER = "no answer from a read of the device in time"
    UNREADABLE = "the device is not readable (blocklisted or lock lost)"


STORAGE_EVENT: dict[StorageFinding, Event | None] = {
    StorageFinding.OK: None,
    StorageFinding.NO_DEVICE: Event.STORAGE_LOST,
    StorageFinding.NOT_MOUNTED: Event.STORAGE_LOST,
    StorageFinding.READ_ONLY: Event.STORAGE_LOST,
    # No error, no answer: Ceph does not answer this node (a partition, a frozen cluster).
    # Not a lost image: while the peer's failsafe promise holds, the MASTER keeps serving.
    StorageFinding.NO_ANSWER: Event.STORAGE_STUCK,
    StorageFinding.UNREADABLE: Event.STORAGE_LOST,
}
"""The event each storage finding is (None: healthy)."""


class SharedFinding(enum.StrEnum):
    """What the shared mode's storage probe found on a SERVING node, checked in this order
    (the object-storage variant has no mount: the registry component judges its storage)."""

    OK = "ok"
    NOT_MOUNTED = "the shared filesystem is no longer mounted at the mountpoint"
    FOREIGN = "another filesystem is mounted at the mountpoint"
    READ_ONLY = "the shared filesystem went read-only"
    ERROR = "the shared filesystem answers with an error (a dead ceph-fuse: ENOTCONN)"
    NO_ANSWER = "no answer from the shared filesystem in time (a hung server or MDS)"


SHARED_STORAGE_EVENT: dict[SharedFinding, Event | None] = {
    SharedFinding.OK: None,
    SharedFinding.NOT_MOUNTED: Event.STORAGE_LOST,
    SharedFinding.FOREIGN: Event.STORAGE_LOST,
    SharedFinding.READ_ONLY: Event.STORAGE_LOST,
    SharedFinding.ERROR: Event.STORAGE_LOST,
    # No error, no answer: both drain the node (no failsafe in this mode); the event says why.
    SharedFinding.NO_ANSWER: Event.STORAGE_STUCK,
}
"""The event each shared storage finding is (None: healthy)."""

DEMOTING_NAMES = frozenset(str(s) for s in DEMOTING)
CLAIM_BACK_LOOKS = 3
"""A refused standby's polls that must see the holder's expiry unchanged before it judges
that the holder stopped renewing (one renewal interval apart: two intervals without a
renewal, where a live holder renews every interval)."""


def lease_step_verdict(renewed: bool, peer_state: str | None) -> Event:
    """The lease step found the lease held by another node.  It did not renew over the
    judgment's gap: LEASE_STALE (the fence step fences it).  It renews: never fence it; a
    holder whose /status says it is demoting (one of the DEMOTING states, holding the lease)
    releases it soon: LEASE_HOLDER_DEMOTING (wait); any other: LEASE_HELD_BY_PEER."""
    if not renewed:
        return Event.LEASE_STALE
    if peer_state in DEMOTING_NAMES:
        return Event.LEASE_HOLDER_DEMOTING
    return Event.LEASE_HELD_BY_PEER


def poll_verdict(free: bool, expiries: Sequence[float | None]) -> tuple[Event | None, str]:
    """A refused standby's poll, from the lease alone: LEASE_CLAIM_BACK when the lease is
    free or the holder's expiry did not move over the last CLAIM_BACK_LOOKS polls; None when
    only the holder's own state can tell (``peer_poll_verdict``)."""
    if free:
        return Event.LEASE_CLAIM_BACK, "the lease is free"
    last = list(expiries)[-CLAIM_BACK_LOOKS:]
    if len(last) == CLAIM_BACK_LOOKS and len(set(last)) == 1:
        return Event.LEASE_CLAIM_BACK, "the holder stopped renewing"
    return None, ""


def peer_poll_verdict(peer_state: str | None) -> tuple[Event, str]:
    """The holder renews: the partition healed if its /status answers MASTER holding the
    lease (LEASE_CLAIM_BACK: the fault clears, keepalived may elect this node as standby
    again); otherwise keep waiting (LEASE_PEER_RENEWS)."""
    if peer_state == State.MASTER:
        return Event.LEASE_CLAIM_BACK, "partition healed: the peer is MASTER with the lease"
    return Event.LEASE_PEER_RENEWS, "the holder renews"
