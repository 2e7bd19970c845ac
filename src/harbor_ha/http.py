"""The HTTP faces of the daemon, served by aiohttp on the daemon's own loop.

- Read-only TCP listener (Prometheus, load balancers, operators):
  ``/metrics``, ``/status`` (JSON), and the checks, named and defined as Patroni's:
  ``/liveness`` (and its older name ``/health``: 200 while the daemon's loop ticks),
  ``/readiness`` (200 when the node is ready to serve its role: MASTER with Harbor
  healthy, or a BACKUP ready to take over), ``/primary`` (200 only when MASTER and Harbor
  healthy), ``/serving`` (200 only while this node serves: a MASTER, or a SERVING node of
  the shared mode, with Harbor healthy; a load balancer's per-node check).  The checks
  answer GET and HEAD with a JSON body and OPTIONS with the same
  status code and no body: HAProxy's ``option httpchk`` sends OPTIONS by default.
- Control listener on a Unix socket (root-only, 0600): the same read-only
  routes plus ``POST /control/<command>`` for notify, switchover, maintenance.
  Control is never exposed on TCP.

This module knows nothing of the daemon: it is handed callables.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ControlHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(Exception):
    """A control command that cannot be done now (answered 409 with the message)."""


@dataclass
class Endpoints:
    """What the HTTP routes read and call."""

    registry: CollectorRegistry
    alive: Callable[[], tuple[bool, str]]  # liveness: (ok, reason)
    primary: Callable[[], tuple[bool, str]]  # MASTER and Harbor healthy: (ok, reason)
    ready: Callable[[], tuple[bool, str]]  # ready to serve its role (Patroni's readiness)
    status: Callable[[], dict[str, Any]]
    control: ControlHandler | None = None
    serving: Callable[[], tuple[bool, str]] | None = None  # this node serves (default: primary)


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=str, indent=1) + "\n",
        status=status,
        content_type="application/json",
    )


Check = Callable[[], tuple[bool, str]]

CHECKS: tuple[tuple[str, str], ...] = (
    ("/health", "alive"),
    ("/liveness", "alive"),
    ("/readiness", "ready"),
    ("/primary", "primary"),
    ("/serving", "serving"),
)
"""Check routes and the Endpoints field each reads (the field name is the JSON key)."""


def _check_handler(check: Check, key: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        ok, reason = check()
        code = 200 if ok else 503
        if request.method == "OPTIONS":
            return web.Response(status=code)
        return _json({key: ok, "reason": reason}, code)

    return handler


def build_app(ep: Endpoints, *, with_control: bool) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(ep.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status(_: web.Request) -> web.Response:
        return _json(ep.status())

    async def control(request: web.Request) -> web.Response:
        assert ep.control is not None
        command = request.match_info["command"]
        try:
            args = await request.json() if request.can_read_body else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _json({"ok": False, "error": "body is not JSON"}, 400)
        if not isinstance(args, dict):
            return _json({"ok": False, "error": "body must be a JSON object"}, 400)
        try:
            result = await ep.control(command, args)
        except KeyError as exc:
            return _json({"ok": False, "error": f"unknown command {exc}"}, 404)
        except (ValueError, TypeError) as exc:
            return _json({"ok": False, "error": str(exc)}, 400)
        except ControlError as exc:
            return _json({"ok": False, "error": str(exc)}, 409)
        return _json({"ok": True, **result})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    for path, field in CHECKS:
        handler = _check_handler(getattr(ep, field) or ep.primary, field)
        app.router.add_get(path, handler)  # HEAD too (aiohttp: allow_head)
        app.router.add_route("OPTIONS", path, handler)
    app.router.add_get("/status", status)
    if with_control and ep.control is not None:
        app.router.add_post("/control/{command}", control)
    return app


class HttpServers:
    """Starts and stops the TCP listener and the control socket."""

    def __init__(self, ep: Endpoints, *, host: str, port: int, control_socket: Path) -> None:
        self._ep = ep
        self._host = host
        self._port = port
        self._socket = control_socket
        self._runners: list[web.AppRunner] = []
        self.bound_port: int | None = None

    async def start(self) -> None:
        public = web.AppRunner(build_app(self._ep, with_control=False), access_log=None)
        await public.setup()
        self._runners.append(public)
        site = web.TCPSite(public, self._host, self._port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port

        ctl = web.AppRunner(build_app(self._ep, with_control=True), access_log=None)
        await ctl.setup()
        self._runners.append(ctl)
        self._socket.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self._socket.unlink()
        old = os.umask(0o177)
        try:
            await web.UnixSite(ctl, str(self._socket)).start()
        finally:
            os.umask(old)

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        with contextlib.suppress(FileNotFoundError):
            self._socket.unlink()
