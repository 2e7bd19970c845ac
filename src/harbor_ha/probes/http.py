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


def health_url(settings: Settings) -> str:
    host = settings.probe_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{settings.health_scheme}://{host}:{settings.https_port}{settings.health_path}"


async def health_probe(settings: Settings) -> HealthReport:
    """``GET {scheme}://{probe_host}:{https_port}{health_path}`` within probe_timeout_s."""
    url = health_url(settings)
    timeout = aiohttp.ClientTimeout(total=settings.probe_timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, ssl=False, allow_redirects=False) as resp,
        ):
            body = await resp.content.read(MAX_BODY_BYTES)
            if resp.status != 200:
                return HealthReport(False, "error", {}, f"health API: HTTP {resp.status}")
    except TimeoutError:
        return HealthReport(
            False, "error", {}, f"health API: timeout after {settings.probe_timeout_s:g} s"
        )
    except (aiohttp.ClientError, OSError) as exc:
        return HealthReport(False, "error", {}, f"health API: {type(exc).__name__}: {exc}")
    return parse_health(body)
