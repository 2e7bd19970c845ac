"""The peer's /status over the network (its read-only HTTP listener), with a timeout: a peer
that is down or partitioned is an answer ("unreachable: ..."), never a hang or a crash."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from harbor_ha.peer import PeerUnreachable, peer_status

__all__ = ["PeerUnreachable", "peer_status", "serves", "wait_until_serving"]


def serves(status: dict[str, Any]) -> bool:
    """What `switchover --wait` waits for: the node is MASTER and Harbor healthy there."""
    return status.get("state") == "MASTER" and status.get("harbor_healthy") is True


async def wait_until_serving(
    url: str, *, timeout_s: float, request_timeout_s: float, interval_s: float = 1.0
) -> tuple[bool, str]:
    """Poll the peer's /status until it serves or ``timeout_s`` passes: (served, last seen)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while True:
        try:
            status = await peer_status(url, min(request_timeout_s, timeout_s))
        except PeerUnreachable as exc:
            last = f"unreachable: {exc}"
        else:
            if serves(status):
                return True, f"{status.get('node')} is MASTER and Harbor is healthy there"
            last = f"{status.get('node')} is {status.get('state')}"
        left = deadline - time.monotonic()
        if left <= 0:
            return False, last
        await asyncio.sleep(min(interval_s, left))
