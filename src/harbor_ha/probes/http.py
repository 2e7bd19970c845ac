"""TCP connect probe and Harbor's health API probe (``GET /api/v2.0/health``).

Harbor answers the health API with HTTP 200 whatever its state: the verdict is the JSON
``status`` (healthy|unhealthy) and each of ``components`` [{name, status, error?}].  The
certificate is not verified (Harbor's is usually self-signed; we probe this node, not a name).
Neither probe raises on network, TLS, HTTP or JSON errors: they are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from harbor_ha.settings import Settings

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class ProbeResult:
    """One TCP probe."""

    ok: bool
    reason: str
    duration_s: float


@dataclass(frozen=True)
class HealthReport:
    """Harbor's health API as seen by one probe."""

    ok: bool
    status: str
    """Harbor's overall status ("healthy"/"unhealthy"), or "error" if the API did not answer."""
    components: dict[str, str] = field(default_factory=dict)
    """component name -> status ("healthy"/"unhealthy"/...)."""
    reason: str = ""


async def tcp_probe(host: str, port: int, timeout_s: float) -> ProbeResult:
    """Can a TCP connection to host:port be opened within timeout_s?"""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            _reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return ProbeResult(False, f"tcp {host}:{port}: timeout after {timeout_s:g} s",
                           time.monotonic() - started)  # fmt: skip
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        return ProbeResult(False, f"tcp {host}:{port}: {why}",
                           time.monotonic() - started)  # fmt: skip
    duration = time.monotonic() - started
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(timeout_s):
            await writer.wait_closed()
    return ProbeResult(True, f"tcp {host}:{port}: open", duration)


def parse_health(body: bytes | str) -> HealthReport:
    """Interpret the body of Harbor's ``/api/v2.0/health`` (pure)."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return HealthReport(False, "error", {}, f"health API: invalid JSON: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("status"), str):
        return HealthReport(False, "error", {}, "health API: no 'status' string in the JSON")
    status: str = data["status"]
    components: dict[str, str] = {}
    errors: dict[str, str] = {}
    raw = data.get("components", [])
    if not isinstance(raw, list):
        return HealthReport(False, "error", {}, "health API: 'components' is not a list")
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        name = item["name"]
        components[name] = str(item.get("status", "unknown"))
        if item.get("error"):
            errors[name] = str(item["error"])
    bad = sorted(n for n, s in components.items() if s != "healthy")
    ok = status == "healthy" and not bad
    if ok:
        reason = "healthy"
    elif bad:
        parts = [f"{n} {components[n]}" + (f" ({errors[n][:120]})" if n in errors else "")
                 for n in bad]  # fmt: skip
        reason = f"harbor {status}: " + ", ".join(parts)
    else:
        reason = f"harbor {status}"
    return HealthReport(ok, status, components, reason)


def base_url(settings: Settings) -> str:
    """``scheme://probe_host:https_port``: this node's own proxy."""
    host = settings.probe_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{settings.health_scheme}://{host}:{settings.https_port}"


def health_url(settings: Settings) -> str:
    return base_url(settings) + settings.health_path


async def health_probe(settings: Settings) -> HealthReport:
    """``GET {scheme}://{probe_host}:{https_port}{health_path}`` within probe_timeout_s, on a
    connection of its own (one-shot callers; the daemon keeps one: :class:`HealthProbe`)."""
    probe = HealthProbe(settings)
    try:
        return await probe.check()
    finally:
        await probe.close()


PING_PATH = "/api/v2.0/ping"
"""Core's liveness answer (200 ``Pong``, no dependency checked), reached through the proxy:
proves TLS on the proxy, nginx, and core's HTTP server."""

REGISTRY_PATH = "/v2/"
"""The registry's API version check, reached through the proxy: 401 from distribution behind
Harbor's token auth (200 from a registry without auth); a 5xx is nginx not reaching it."""

REGISTRY_ANSWERS = frozenset({200, 401})


@dataclass(frozen=True)
class ServeReport:
    """Does Harbor serve a client through this node's own proxy (the pull/push path's ends)."""

    ok: bool
    reason: str
    answers: dict[str, str] = field(default_factory=dict)
    """path -> what it answered ("200", "HTTP 502", "timeout", ...)."""


class HealthProbe:
    """Harbor's HTTP probes on one kept-alive connection: the health API (:meth:`check`) and
    the serving check (:meth:`serves`).  The daemon probes every probe_interval_s, and a new
    TLS handshake each time was most of the master's idle CPU.  Any error drops the session
    (the next probe connects afresh).  A kept connection the server closed in between is
    retried once on a new one by aiohttp itself (GET is idempotent), within the same
    probe_timeout_s: the verdict is the one a fresh connection gives (pinned by a test)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            keep = max(15.0, 3 * self._settings.probe_interval_s)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(keepalive_timeout=keep, ssl=False)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def check(self) -> HealthReport:
        """``GET {scheme}://{probe_host}:{https_port}{health_path}`` within probe_timeout_s."""
        timeout = self._settings.probe_timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await self._get()
        except TimeoutError:
            await self.close()
            return HealthReport(False, "error", {}, f"health API: timeout after {timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            await self.close()
            return HealthReport(False, "error", {}, f"health API: {type(exc).__name__}: {exc}")

    async def _get(self) -> HealthReport:
        session = self._client()
        url = health_url(self._settings)
        async with session.get(url, allow_redirects=False) as resp:
            body = await read_body(resp)
            status = resp.status
        if status != 200:
            return HealthReport(False, "error", {}, f"health API: HTTP {status}")
        return parse_health(body)

    async def serves(self) -> ServeReport:
        """Through this node's own proxy (TLS on https_port, as a client reaches it): core's
        ping answers 200 and the registry's ``/v2/`` answers 401 (or 200), both within
        probe_timeout_s.  A TCP accept is not enough: Docker's published port accepts before
        nginx listens."""
        timeout = self._settings.probe_timeout_s
        try:
            async with asyncio.timeout(timeout):
                ping, registry = await asyncio.gather(
                    self._status(PING_PATH), self._status(REGISTRY_PATH)
                )
        except TimeoutError:
            await self.close()
            return ServeReport(False, f"serving: no answer within {timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            await self.close()
            return ServeReport(False, f"serving: {type(exc).__name__}: {exc}")
        return judge_serving(ping, registry)

    async def _status(self, path: str) -> int:
        session = self._client()
        async with session.get(base_url(self._settings) + path, allow_redirects=False) as resp:
            await resp.content.read(MAX_BODY_BYTES)
            return resp.status


async def read_body(resp: aiohttp.ClientResponse) -> bytes:
    """The whole body up to MAX_BODY_BYTES: ``content.read(n)`` returns what has arrived so
    far, and a body written in several pieces (a CGI's printf calls, chunked encoding) would
    be cut at the first."""
    body = bytearray()
    while len(body) < MAX_BODY_BYTES:
        chunk = await resp.content.read(MAX_BODY_BYTES - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def judge_serving(ping: int, registry: int) -> ServeReport:
    """The serving verdict from the two answers' HTTP statuses (pure)."""
    answers = {PING_PATH: str(ping), REGISTRY_PATH: str(registry)}
    bad = []
    if ping != 200:
        bad.append(f"{PING_PATH} answered {ping} (core not reached)")
    if registry not in REGISTRY_ANSWERS:
        bad.append(f"{REGISTRY_PATH} answered {registry} (registry not reached)")
    if bad:
        return ServeReport(False, "serving: " + ", ".join(bad), answers)
    return ServeReport(True, f"serving: ping {ping}, registry {registry}", answers)
