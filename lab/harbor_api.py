"""The part of Harbor's v2.0 REST API that harbor-ha's replicated pair uses, as the lab's
stand-in for Harbor core (stdlib only, so the lab's core image can run it too): registries,
replication policies and executions, in memory, behind basic auth.

Shapes follow Harbor's swagger (api/v2.0/swagger.yaml): 201 with ``Location`` on create, 409
when the name exists, 400 on a body Harbor would refuse, 401 without valid credentials, lists
paged by ``page``/``page_size`` (executions newest first); ``GET /api/v2.0/ping`` answers 200
``Pong`` (text/plain) without credentials, as Harbor's core does.

Alone (the unit and integration tests' loopback stand-in) it replicates nothing: a manual
execution is recorded as Succeed at once.  The registry stack's core
(lab/registry_stack/harbor_core.py) runs the same object with a ``runner`` that copies the
images (lab/registry_stack/replicator.py: an execution is InProgress until the copies end) and
a ``store`` file, so what was made survives a restart of core."""

from __future__ import annotations

import base64
import datetime
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/api/v2.0"
Answer = tuple[int, Any, dict[str, str]]
Runner = Callable[[dict[str, Any], dict[str, Any]], None]
"""Starts a run of (policy, execution) in the background; it ends with ``finish``."""
KEEP_EXECUTIONS = 1000
"""Executions kept in a ``store`` file (the oldest go first; Harbor keeps them all)."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class ReplicationApi:
    """Harbor's registries, policies and executions of one Harbor, in memory."""

    users: dict[str, str]
    registries: list[dict[str, Any]] = field(default_factory=list)
    policies: list[dict[str, Any]] = field(default_factory=list)
    executions: list[dict[str, Any]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    """Registry id -> the access secret it was created with (never answered, as Harbor)."""
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    runner: Runner | None = None
    """None: a manual execution is Succeed at once; else InProgress, and ``runner`` runs it."""
    store: Path | None = None
    """A JSON file the registries, policies and executions are kept in (None: memory only)."""
    keep_requests: bool = True
    """Record every request in ``requests`` (what the tests read; core does not)."""
    ping: Callable[[dict[str, Any]], str | None] | None = None
    """``POST /registries/ping``'s check of a registry: None when reachable, else why."""
    _next: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _id(self) -> int:
        self._next += 1
        return self._next - 1

    # ----------------------------------------------------------- the store
    def load(self) -> None:
        """Read ``store`` (if it exists).  An execution still InProgress there was cut by a
        restart of core: it is recorded Failed."""
        if self.store is None or not self.store.exists():
            return
        data = json.loads(self.store.read_text())
        with self._lock:
            self.registries = list(data.get("registries", []))
            self.policies = list(data.get("policies", []))
            self.executions = list(data.get("executions", []))
            self.secrets = dict(data.get("secrets", {}))
            self._next = int(data.get("next", 1))
            for ex in self.executions:
                if ex["status"] == "InProgress":
                    ex.update(status="Failed", status_text="core restarted during the run",
                              end_time=_now(), in_progress=0)  # fmt: skip
            self._save()

    def _save(self) -> None:
        """Write ``store`` (lock held): a new file renamed over the old one."""
        if self.store is None:
            return
        del self.executions[:-KEEP_EXECUTIONS]
        data = {
            "registries": self.registries, "policies": self.policies,
            "executions": self.executions, "secrets": self.secrets, "next": self._next,
        }  # fmt: skip
        tmp = self.store.with_suffix(".tmp")
        # 0600: it holds the endpoints' secrets (Harbor encrypts them with its secretkey)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.store)

    # ------------------------------------------------- what a runner calls
    def event_policies(self) -> list[dict[str, Any]]:
        """The enabled event-based policies (copies)."""
        with self._lock:
            return [
                json.loads(json.dumps(p)) for p in self.policies
                if p.get("enabled", True) and (p.get("trigger") or {}).get("type") == "event_based"
            ]  # fmt: skip

    def secret(self, registry_id: int) -> str:
        """The access secret a registry endpoint was created with ('' if none)."""
        with self._lock:
            return self.secrets.get(str(registry_id), "")

    def begin(self, policy_id: int, trigger: str) -> dict[str, Any]:
        """Record a new execution, InProgress; returns a copy."""
        with self._lock:
            ex = self._execution(policy_id, trigger, "InProgress")
            self._save()
            return dict(ex)

    def finish(self, execution_id: int, *, total: int, failed: int, text: str = "") -> None:
        """End an execution: Succeed when nothing failed, else Failed."""
        with self._lock:
            for ex in self.executions:
                if ex["id"] == execution_id:
                    ex.update(status="Failed" if failed else "Succeed", status_text=text,
                              end_time=_now(), total=total, failed=failed,
                              succeed=max(0, total - failed), in_progress=0)  # fmt: skip
            self._save()

    def _execution(self, policy_id: int, trigger: str, status: str) -> dict[str, Any]:
        done = status != "InProgress"
        ex = {"id": self._id(), "policy_id": policy_id, "status": status, "trigger": trigger,
              "start_time": _now(), "end_time": _now() if done else None, "status_text": "",
              "total": 0, "failed": 0, "succeed": 0, "in_progress": 0, "stopped": 0}  # fmt: skip
        self.executions.append(ex)
        return ex

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return self.users.get(user) == password

    def respond(
        self, method: str, target: str, body: Any, auth: str | None
    ) -> tuple[int, bytes, dict[str, str]]:
        """:meth:`handle` as HTTP sends it: (status, body bytes, headers with Content-Type;
        JSON unless the answer is raw bytes with its own)."""
        status, answer, headers = self.handle(method, target, body, auth)
        if isinstance(answer, bytes):
            data = answer
        else:
            data = b"" if answer is None else json.dumps(answer).encode()
        return status, data, {"Content-Type": "application/json", **headers}

    def handle(self, method: str, target: str, body: Any, auth: str | None) -> Answer:
        """One request: (status, JSON body or raw bytes, headers)."""
        with self._lock:
            if self.keep_requests:
                self.requests.append((method, target, body))
            if (method, urlsplit(target).path) == ("GET", f"{API}/ping"):
                return 200, b"Pong", {"Content-Type": "text/plain; charset=utf-8"}
            if not self.authorized(auth):
                return 401, {"errors": [{"code": "UNAUTHORIZED"}]}, {}
            parts = urlsplit(target)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            path = parts.path.removeprefix(API)
            route = {
                ("GET", "/registries"): lambda: self._page(self.registries, query),
                ("POST", "/registries"): lambda: self._create_registry(body),
                ("GET", "/replication/policies"): lambda: self._page(self.policies, query),
                ("POST", "/replication/policies"): lambda: self._create_policy(body),
                ("GET", "/replication/executions"): lambda: self._executions(query),
                ("POST", "/replication/executions"): lambda: self._start(body),
                ("POST", "/registries/ping"): lambda: self._ping(body),
            }.get((method, path))
            if route is None:
                return 404, {"errors": [{"code": "NOT_FOUND"}]}, {}
            return route()

    @staticmethod
    def _page(items: list[dict[str, Any]], query: dict[str, str]) -> Answer:
        size = int(query.get("page_size", "10"))
        page = int(query.get("page", "1"))
        chunk = items[(page - 1) * size : page * size]
        return 200, chunk, {"X-Total-Count": str(len(items))}

    def _create_registry(self, body: Any) -> Answer:
        if not isinstance(body, dict) or not body.get("name") or not body.get("url"):
            return 400, {"errors": [{"code": "BAD_REQUEST"}]}, {}
        if any(r["name"] == body["name"] for r in self.registries):
            return 409, {"errors": [{"code": "CONFLICT"}]}, {}
        cred = dict(body.get("credential") or {})
        secret = cred.pop("access_secret", None)  # Harbor never returns the secret
        reg = {
            "id": self._id(), "name": body["name"], "url": body["url"],
            "type": body.get("type", "harbor"), "insecure": bool(body.get("insecure")),
            "description": body.get("description", ""), "credential": cred,
            "status": "healthy", "creation_time": _now(), "update_time": _now(),
        }  # fmt: skip
        self.registries.append(reg)
        if secret:
            self.secrets[str(reg["id"])] = str(secret)
        self._save()
        return 201, None, {"Location": f"{API}/registries/{reg['id']}"}

    def _create_policy(self, body: Any) -> Answer:
        if not isinstance(body, dict) or not body.get("name"):
            return 400, {"errors": [{"code": "BAD_REQUEST"}]}, {}
        dest = (body.get("dest_registry") or {}).get("id")
        registry = next((r for r in self.registries if r["id"] == dest), None)
        if registry is None:
            return 400, {"errors": [{"code": "BAD_REQUEST", "message": "no such registry"}]}, {}
        if any(p["name"] == body["name"] for p in self.policies):
            return 409, {"errors": [{"code": "CONFLICT"}]}, {}
        policy = {**body, "id": self._id(), "dest_registry": registry,
                  "creation_time": _now(), "update_time": _now()}  # fmt: skip
        self.policies.append(policy)
        self._save()
        return 201, None, {"Location": f"{API}/replication/policies/{policy['id']}"}

    def _executions(self, query: dict[str, str]) -> Answer:
        pid = int(query.get("policy_id", "0"))
        mine = [e for e in reversed(self.executions) if not pid or e["policy_id"] == pid]
        return self._page(mine, query)

    def _start(self, body: Any) -> Answer:
        pid = (body or {}).get("policy_id")
        if not any(p["id"] == pid for p in self.policies):
            return 400, {"errors": [{"code": "BAD_REQUEST"}]}, {}
        policy = next(p for p in self.policies if p["id"] == pid)
        status = "Succeed" if self.runner is None else "InProgress"
        ex = self._execution(policy["id"], "manual", status)
        self._save()
        if self.runner is not None:
            self.runner(json.loads(json.dumps(policy)), dict(ex))
        return 201, None, {"Location": f"{API}/replication/executions/{ex['id']}"}

    def _ping(self, body: Any) -> Answer:
        rid = (body or {}).get("id") if isinstance(body, dict) else None
        registry = next((r for r in self.registries if r["id"] == rid), None)
        if registry is None:
            return 400, {"errors": [{"code": "BAD_REQUEST"}]}, {}
        why = None if self.ping is None else self.ping(registry)
        if why is not None:
            return 400, {"errors": [{"code": "BAD_REQUEST", "message": why}]}, {}
        return 200, None, {}


def json_body(raw: bytes) -> Any:
    """A request's body as the API reads it: JSON, None when empty, "not JSON" otherwise
    (which every route refuses as Harbor does, 400)."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return "not JSON"


def serve(api: ReplicationApi, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve ``api`` over plain HTTP on host:port in a daemon thread (``shutdown()`` stops
    it); the bound port is ``server.server_address[1]``."""

    class Handler(BaseHTTPRequestHandler):
        def _do(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            status, data, headers = api.respond(
                self.command, self.path, json_body(raw), self.headers.get("Authorization")
            )
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _do

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
