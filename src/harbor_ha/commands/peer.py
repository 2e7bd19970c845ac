"""The peer's /status over the network (its read-only HTTP listener), with a timeout: a peer
that is down or partitioned is an answer ("unreachable: ..."), never a hang or a crash."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp


class PeerUnreachable(Exception):
    """The peer's /status could not be read (the message says why)."""


async def peer_status(url: str, timeout_s: float) -> dict[str, Any]:
    """GET <url>/status as JSON within ``timeout_s``."""
    target = url.rstrip("/") + "/status"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(target) as resp,
        ):
            if resp.status != 200:
                raise PeerUnreachable(f"{target}: HTTP {resp.status}")
            data = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise PeerUnreachable(f"{target}: {type(exc).__name__}: {exc}".rstrip(": ")) from exc
    if not isinstance(data, dict):
        raise PeerUnreachable(f"{target}: not a JSON object")
    return data


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
