"""The CLI's client of the daemon's control socket (a Unix socket, 0600, never TCP)."""

from __future__ import annotations

from typing import Any

from harbor_ha.settings import Settings


class Unreachable(Exception):
    """The daemon does not answer on its control socket (not running, or no answer in time)."""


class Refused(Exception):
    """The daemon refused the command in its current state (HTTP 409, with the reason)."""


async def request(
    settings: Settings, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One request to the daemon's control socket, bounded by command_timeout_s."""
    import aiohttp

    sock = settings.control_socket_path
    if not sock.exists():
        raise Unreachable(f"no control socket at {sock}: is `harbor-ha run` running?")
    try:
        conn = aiohttp.UnixConnector(path=str(sock))
        timeout = aiohttp.ClientTimeout(total=settings.command_timeout_s)
        async with (
            aiohttp.ClientSession(connector=conn, timeout=timeout) as session,
            session.request(method, f"http://harbor-ha{path}", json=body) as resp,
        ):
            data: dict[str, Any] = await resp.json(content_type=None)
            if resp.status == 409:
                raise Refused(data.get("error", "refused"))
            if resp.status >= 400:
                raise ValueError(data.get("error", f"HTTP {resp.status}"))
            return data
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise Unreachable(f"control socket {sock}: {exc}") from exc
