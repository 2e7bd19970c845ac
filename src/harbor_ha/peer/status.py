"""The peer's /status over the network (its read-only HTTP listener), with a timeout: a peer
that is down or partitioned is an answer (PeerUnreachable), never a hang or a crash."""

from __future__ import annotations

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


async def peer_answers(url: str, timeout_s: float) -> bool:
    """Does the harbor-ha at ``url`` answer at all (any HTTP status of GET /serving, 503 of
    a draining node included) within ``timeout_s``?"""
    target = url.rstrip("/") + "/serving"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(target) as resp,
        ):
            await resp.read()
            return True
    except (aiohttp.ClientError, TimeoutError):
        return False
