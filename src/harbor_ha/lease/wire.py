"""cls_lock's own messages, for the agent's ``exec`` (pure): take or renew the lock, read
it, break a locker.

python3-rados (16.2) has ``Ioctx.lock_exclusive``/``unlock`` but no ``list_lockers`` or
``break_lock`` (librados has ``rados_list_lockers``, without the expiry; the binding does
not expose it).  What the ``rados`` CLI does for ``lock info`` and ``lock break`` is a
class call: ``exec lock.get_info`` and ``exec lock.break_lock`` on the object, with Ceph's
own encoding (``src/cls/lock/cls_lock_ops.h``, ``cls_lock_types.h``).  The agent makes
the same calls with ``Ioctx.execute`` on its long-lived client, so a look costs one OSD
round trip instead of a process; this module encodes their inputs and decodes the answer.

The lock itself is taken and renewed the same way, not with the binding's
``Ioctx.lock_exclusive``: that one fills a ``struct timeval`` for the duration and leaves its
``tv_usec`` uninitialised (python3-rados 16.2), so Ceph got ``duration + garbage``
microseconds: expiries 0-4.3 s past the duration, different at each renewal and so not
monotonic (measured on the lab's cluster, 2026-12-02: a renewal 0.3 s after another could
expire 4.6 s *earlier*).  A standby comparing two expiries took such a renewal for a stopped
holder and fenced a live master (the CI failure of the partition row).  ``lock_input``
sends the duration as an exact ``utime_t``.

Ceph's encoding, little-endian: a versioned struct is ``u8 version, u8 compat, u32 length``
then its fields; a string is ``u32 length`` then its bytes; a map is ``u32 count`` then its
pairs; ``entity_name_t`` is ``u8 type, i64 num``; ``utime_t`` is ``u32 sec, u32 nsec``.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from .view import LeaseInfo, Locker

ENTITY_TYPES = {1: "mon", 2: "mds", 4: "osd", 8: "client", 16: "mgr"}
_ENTITY_CODE = {name: code for code, name in ENTITY_TYPES.items()}
AF_INET, AF_INET6 = 2, 10


def _struct(payload: bytes) -> bytes:
    return struct.pack("<BBI", 1, 1, len(payload)) + payload


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<I", len(raw)) + raw


LOCK_EXCLUSIVE = 1  # ClsLockType::EXCLUSIVE
LOCK_FLAG_MAY_RENEW = 1  # the same locker renews; a free lock is taken; another's: EBUSY


def _entity(entity: str) -> bytes:
    kind, _, num = entity.partition(".")
    if kind not in _ENTITY_CODE or not num.isdigit():
        raise ValueError(f"not an entity name: {entity!r}")
    return struct.pack("<Bq", _ENTITY_CODE[kind], int(num))


def lock_input(name: str, cookie: str, description: str, duration_s: int) -> bytes:
    """cls_lock_lock_op: name, type (exclusive), cookie, tag (none), description, duration
    (utime_t: whole seconds, 0 ns), flags (MAY_RENEW)."""
    if duration_s <= 0:
        raise ValueError(f"a lease lock needs a positive duration, not {duration_s}")
    payload = (
        _string(name)
        + struct.pack("<B", LOCK_EXCLUSIVE)
        + _string(cookie)
        + _string("")
        + _string(description)
        + struct.pack("<II", duration_s, 0)
        + struct.pack("<B", LOCK_FLAG_MAY_RENEW)
    )
    return _struct(payload)


def get_info_input(name: str) -> bytes:
    """cls_lock_get_info_op: the lock's name."""
    return _struct(_string(name))


def break_lock_input(name: str, entity: str, cookie: str) -> bytes:
    """cls_lock_break_op: the lock's name, the locker's entity and cookie."""
    return _struct(_string(name) + _entity(entity) + _string(cookie))


@dataclass
class _Reader:
    data: bytes
    at: int = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError(f"truncated at byte {self.at} (+{n} of {len(self.data)})")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def u8(self) -> int:
        return self.unpack("<B")[0]

    def u32(self) -> int:
        return self.unpack("<I")[0]

    def string(self) -> str:
        return self.take(self.u32()).decode(errors="replace")

    def begin(self) -> int:
        """A versioned struct's header; the offset its fields end at."""
        _version, _compat, length = self.unpack("<BBI")
        end = self.at + length
        if end > len(self.data):
            raise ValueError(f"struct of {length} bytes at {self.at} overruns the answer")
        return end

    def entity(self) -> str:
        kind, num = self.unpack("<Bq")
        return f"{ENTITY_TYPES.get(kind, f'type{kind}')}.{num}"

    def address(self) -> str:
        """entity_addr_t in its legacy form ``IP:PORT/NONCE``, without the type (``v1:``):
        what ``rados lock info`` prints (``get_legacy_str``) and ``ceph osd blocklist``
        takes and lists."""
        if self.u8() == 0:  # legacy: u32 type (its first byte was the marker), nonce, 128 bytes
            self.take(3)
            nonce = self.u32()
            storage = self.take(128)
            family = struct.unpack(">H", storage[:2])[0]
            return _sockaddr(family, storage[2:], nonce)
        end = self.begin()
        _kind, nonce, length = self.unpack("<III")
        if length == 0:
            self.at = end
            return "-"
        family = self.unpack("<H")[0]
        data = self.take(length - 2)
        self.at = end
        return _sockaddr(family, data, nonce)


def _sockaddr(family: int, data: bytes, nonce: int) -> str:
    port = struct.unpack(">H", data[:2])[0]
    if family == AF_INET:
        host = str(ipaddress.IPv4Address(data[2:6]))
    elif family == AF_INET6:
        host = f"[{ipaddress.IPv6Address(data[6:22])}]"
    else:
        raise ValueError(f"address family {family} is not IPv4 or IPv6")
    return f"{host}:{port}/{nonce}"


def decode_get_info(answer: bytes) -> LeaseInfo:
    """cls_lock_get_info_reply: the lockers (entity, cookie -> expiry, address, description),
    the lock type and the tag.  Raises ValueError on anything else."""
    r = _Reader(answer)
    end = r.begin()
    lockers = []
    for _ in range(r.u32()):
        id_end = r.begin()
        entity = r.entity()
        cookie = r.string()
        r.at = id_end
        info_end = r.begin()
        sec, nsec = r.unpack("<II")
        address = r.address()
        description = r.string()
        r.at = info_end
        # Microseconds, as the CLI prints utime_t (the same value for the same lock).
        expiration = None if sec == 0 and nsec == 0 else sec + (nsec // 1000) / 1e6
        lockers.append(Locker(entity, cookie, description, expiration, address))
    r.at = end
    return LeaseInfo(tuple(lockers))
