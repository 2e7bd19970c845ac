"""The small health component of the lab's Harbor-like stack (stdlib only: it runs on the image's
Debian python3).

``harbor_core.py serve``          Harbor core's health API on :8080: ``/api/v2.0/health``
                                  answers ``{"status": ..., "components": [...]}`` (sorted by
                                  name) from real checks (PostgreSQL: pg_isready; Redis: PING;
                                  registry: GET /; the stand-ins: GET of Harbor's path), each
                                  component but core a periodic checker as in Harbor's core: first
                                  check when core starts, then every 10 s, "unknown status" until
                                  the first check ends; ``/api/v2.0/ping`` answers ``Pong``;
                                  the replication API (registries, replication policies and
                                  executions: lab/harbor_api.py, kept in REPLICATION_STORE on
                                  the data volume, account ``admin`` with HARBOR_ADMIN_PASSWORD)
                                  and ``POST /service/notifications`` (distribution's push
                                  events), replicating with skopeo (replicator.py).
``harbor_core.py standin PORT``   a light stand-in (portal, jobservice, registryctl,
                                  trivy-adapter): 200 on any GET on :PORT.
``harbor_core.py check URL``      a Docker healthcheck: exit 0 when GET URL answers 200.
``harbor_core.py syslog PORT``    harbor-log: a syslog receiver on PORT (TCP, one thread
                                  per connection: Docker's syslog driver keeps one connection
                                  per container); the lines go to stdout.
``harbor_core.py listening PORT`` harbor-log's healthcheck: exit 0 when 127.0.0.1:PORT accepts.

Like the busybox shape, a file ``/control/unhealthy-<service>`` marks that component unhealthy
at that component's next periodic check (core's own component at once: core is no periodic
checker in Harbor) and ``/control/node-name`` is reported as ``served_by`` (the lab's client tells
nodes apart).  ``POSTGRESQL_ADDRESS`` / ``REDIS_ADDRESS`` (and ``PGPORT`` / ``REDIS_PORT``) in
core's environment point its checks at an external PostgreSQL and Redis.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from lab.harbor_api import ReplicationApi, json_body
from lab.registry_stack.replicator import Replicator

CONTROL = Path("/control")
CHECK_TIMEOUT_S = 1.0
ADDRESSES = {
    "registry": "172.30.250.11",
    "registryctl": "172.30.250.12",
    "postgresql": "172.30.250.13",
    "portal": "172.30.250.15",
    "jobservice": "172.30.250.16",
    "redis": "172.30.250.17",
    "trivy-adapter": "172.30.250.19",
}
"""Each service's fixed address on the harbor network (docker-compose.yml.tmpl): core reaches
them by address, not through Docker's DNS (a stopped service's name goes to Docker's upstream
resolvers, none reachable from a lab netns, and the lookup stalls)."""
for _service in ADDRESSES:  # an external one (the shared lab's PostgreSQL and Redis)
    ADDRESSES[_service] = os.environ.get(
        f"{_service.upper().replace('-', '_')}_ADDRESS", ADDRESSES[_service]
    )
HTTP_PORT = 8080
"""Where core and each light stand-in answer, in its own container (Harbor's port)."""


CHECK_PERIOD_S = 10.0
REPLICATION_STORE = Path("/data/harbor-ha-lab-replication.json")
"""Where core keeps registries, policies and executions (Harbor: in PostgreSQL)."""
NOTIFICATIONS = "/service/notifications"
"""Distribution's notification endpoint on core (images/registry/config.yml), as Harbor's."""
"""Harbor core's period for every component checker but core's own."""


def _http_ok(url: str) -> str | None:
    """None when GET ``url`` answers 200, else the error (worded as Harbor core's checker)."""
    try:
        with urllib.request.urlopen(url, timeout=CHECK_TIMEOUT_S) as resp:
            return None if resp.status == 200 else f"received unexpected status code: {resp.status}"
    except urllib.error.HTTPError as e:
        return f"received unexpected status code: {e.code}"
    except (OSError, http.client.HTTPException) as e:
        return f"failed to check health: {e}"


def check_database() -> str | None:
    port = os.environ.get("PGPORT", "5432")
    host = ADDRESSES["postgresql"]
    argv = ["pg_isready", "-q", "-h", host, "-p", port, "-U", "postgres", "-t", "1"]
    try:
        res = subprocess.run(argv, capture_output=True, timeout=CHECK_TIMEOUT_S + 1, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if res.returncode == 0:
        return None
    return f'failed to run SQL "SELECT 1": pg_isready exit {res.returncode}'


def check_redis() -> str | None:
    port = int(os.environ.get("REDIS_PORT", "6379"))
    try:
        with socket.create_connection((ADDRESSES["redis"], port), timeout=CHECK_TIMEOUT_S) as s:
            s.sendall(b"PING\r\n")
            answer = s.recv(64)
    except OSError as e:
        return str(e)
    return None if answer.startswith(b"+PONG") else f"PING answered {answer!r}"


def check_registry() -> str | None:
    return _http_ok(f"http://{ADDRESSES['registry']}:5000/")


def _standin(service: str, path: str) -> Callable[[], str | None]:
    return lambda: _http_ok(f"http://{ADDRESSES[service]}:{HTTP_PORT}{path}")


CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
    "jobservice": _standin("jobservice", "/api/v1/stats"),
    "portal": _standin("portal", "/"),
    "redis": check_redis,
    "registry": check_registry,
    "registryctl": _standin("registryctl", "/api/health"),
    "trivy": _standin("trivy-adapter", "/probe/healthy"),
}
"""Harbor's periodic components (``database`` is the postgresql service, ``trivy`` the
trivy-adapter) -> check, with the path Harbor's core GETs."""

SWITCH_NAMES = {"database": "postgresql", "trivy": "trivy-adapter"}
"""Component -> compose service, for the unhealthy switches (as in the busybox shape)."""


def _switched(name: str) -> str | None:
    switch = CONTROL / f"unhealthy-{SWITCH_NAMES.get(name, name)}"
    return f"lab: {switch.name}" if switch.exists() else None


class PeriodicChecker:
    """One component's checker as in Harbor's core: "unknown status" until its first check
    ends; checks when started, then every ``period_s``; a GET reads the last result."""

    def __init__(self, name: str, check: Callable[[], str | None], period_s: float) -> None:
        self.name = name
        self._check = check
        self._period = period_s
        self._lock = threading.Lock()
        self._error: str | None = "unknown status"

    def start(self) -> None:
        threading.Thread(target=self._loop, name=f"check-{self.name}", daemon=True).start()

    def _loop(self) -> None:
        next_at = time.monotonic()
        while True:
            error = _switched(self.name) or self._check()
            with self._lock:
                self._error = error
            next_at += self._period
            time.sleep(max(0.0, next_at - time.monotonic()))

    def error(self) -> str | None:
        with self._lock:
            return self._error


CHECKERS: dict[str, PeriodicChecker] = {}
"""The running periodic checkers (started by ``serve``)."""


def start_checkers(period_s: float = CHECK_PERIOD_S) -> None:
    for name, check in CHECKS.items():
        CHECKERS[name] = PeriodicChecker(name, check, period_s)
        CHECKERS[name].start()


def health() -> dict[str, object]:
    """Harbor core's health document, from the checkers' last results (core: always healthy,
    unless its switch is on)."""
    errors = {"core": _switched("core")}
    errors.update({name: c.error() for name, c in CHECKERS.items()})
    components: list[dict[str, str]] = []
    for name, error in sorted(errors.items()):
        item = {"name": name, "status": "healthy" if error is None else "unhealthy"}
        if error is not None:
            item["error"] = error
        components.append(item)
    overall = all(c["status"] == "healthy" for c in components)
    doc: dict[str, object] = {
        "status": "healthy" if overall else "unhealthy",
        "components": components,
    }
    with contextlib.suppress(OSError):
        doc["served_by"] = (CONTROL / "node-name").read_text().strip()
    return doc


REPLICATION: list[tuple[ReplicationApi, Replicator]] = []
"""The replication API and its replicator (set up by ``serve``; empty: 404 on its paths)."""


def start_replication(store: Path = REPLICATION_STORE) -> None:
    password = os.environ.get("HARBOR_ADMIN_PASSWORD", "Harbor12345")
    api = ReplicationApi({"admin": password}, store=store, keep_requests=False)
    api.load()
    replicator = Replicator(api)
    api.runner, api.ping = replicator.run, replicator.reachable
    REPLICATION.append((api, replicator))


class CoreHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/api/v2.0/health":
            # Compact, as Harbor core's Go encoder writes it ({"status":"healthy",...}).
            body = json.dumps(health(), separators=(",", ":")).encode()
            self._answer(200, body, "application/json")
        elif self.path == "/api/v2.0/ping":
            self._answer(200, b"Pong", "text/plain")
        else:
            self._replication()

    def do_POST(self) -> None:
        self._replication()

    def _replication(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not REPLICATION:
            self._answer(404, b"not found", "text/plain")
            return
        api, replicator = REPLICATION[0]
        body = json_body(raw)
        if (self.command, self.path) == ("POST", NOTIFICATIONS):
            replicator.notified(body)
            self._answer(200, b"", "text/plain")
            return
        status, data, headers = api.respond(
            self.command, self.path, body, self.headers.get("Authorization")
        )
        self._answer(status, data, headers.pop("Content-Type"), headers)

    def _answer(
        self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


class StandinHandler(CoreHandler):
    def do_GET(self) -> None:
        self._answer(200, b"ok", "text/plain")


class SyslogHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            sys.stdout.write(line.decode(errors="replace"))
            sys.stdout.flush()


def syslog(port: int) -> None:
    server = socketserver.ThreadingTCPServer(("0.0.0.0", port), SyslogHandler)
    server.daemon_threads = True
    server.serve_forever()


def listening(port: int) -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CHECK_TIMEOUT_S):
            return None
    except OSError as e:
        return str(e)


def serve(port: int, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), handler)
    server.daemon_threads = True
    server.serve_forever()


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        start_checkers()
        start_replication()
        serve(HTTP_PORT, CoreHandler)
    elif argv[:1] == ["standin"] and len(argv) == 2:
        serve(int(argv[1]), StandinHandler)
    elif argv[:1] == ["syslog"] and len(argv) == 2:
        syslog(int(argv[1]))
    elif argv[:1] in (["check"], ["listening"]) and len(argv) == 2:
        error = _http_ok(argv[1]) if argv[0] == "check" else listening(int(argv[1]))
        if error is not None:
            print(error, file=sys.stderr)
            return 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
