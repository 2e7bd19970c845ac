"""What the lease looks like: parsing ``rados lock info --format json`` (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Locker:
    entity: str  # client.<global id>: the Ceph client instance that holds it
    cookie: str  # harbor-ha:<node name>: which node
    description: str
    expiration: float | None  # Ceph's wall-clock expiry (epoch s); None: no duration
    address: str


@dataclass(frozen=True)
class LeaseInfo:
    """The lock on the lease object as Ceph reports it (no lockers: the lease is free)."""

    lockers: tuple[Locker, ...]

    @property
    def holder(self) -> Locker | None:
        return self.lockers[0] if self.lockers else None


def parse_expiration(text: str) -> float | None:
    """utime_t as the rados CLI prints it: an ISO time, or 0.000000 for no expiry."""
    text = text.strip()
    if not text or text.startswith("0.0"):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        pass
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None


def parse_lock_info(stdout: str) -> LeaseInfo:
    """``rados lock info OBJ NAME --format json``; raises ValueError on other output."""
    data = json.loads(stdout)
    if not isinstance(data, dict):
        raise ValueError(f"lock info: not an object: {stdout[:200]!r}")
    lockers = []
    for item in data.get("lockers", []):
        lockers.append(
            Locker(
                entity=str(item.get("name", "")),
                cookie=str(item.get("cookie", "")),
                description=str(item.get("description", "")),
                expiration=parse_expiration(str(item.get("expiration", ""))),
                address=str(item.get("addr", "")),
            )
        )
    return LeaseInfo(tuple(lockers))
