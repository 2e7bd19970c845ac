"""The lease agent: one long-lived Ceph client, run by ``/usr/bin/python3`` (not the venv).

A cls_lock locker is the client *instance* (``client.<global id>``, new per connection)
plus the cookie, so only a client that lives as long as the daemon can renew the lock it
took.  Debian's librados binding (python3-rados) exists only for the system Python, so
the daemon runs this file as a child process (:mod:`harbor_ha.lease.client`) and talks
to it in JSON lines over stdin/stdout.  Standard library and ``rados`` only: this file
is executed by path and imports nothing from harbor_ha.

Requests (one JSON object a line, answered in order, each with its ``id``):

- ``{"op": "connect", "conf", "keyring", "user", "pool", "op_timeout_s"}``: connect
  with ``rados_osd_op_timeout``/``rados_mon_op_timeout`` set, so no call blocks longer;
  answers ``{"instance": "client.4123"}``.
- ``{"op": "unlock", "object", "name", "cookie"}``: release the lock (``absent`` if not
  held).
- ``{"op": "exec", "object", "cls", "method", "input"}``: a class call (cls_lock's
  ``lock``, ``get_info`` or ``break_lock``: take or renew the lock (another locker's live
  lock answers ``busy``), read the holder, break a locker), input and answer
  ``{"output"}`` in base64 (the encoding is :mod:`harbor_ha.lease.wire`'s).
- ``{"op": "mon", "command"}``: a monitor command (``osd blocklist ls``: the fence step's
  confirmation of a stopped holder's blocklist entry), answers ``{"output"}``.
- ``{"op": "mon_all", "commands"}``: several monitor commands sent at once, one thread
  each (the fence's ``osd blocklist add`` entries: the monitor commits changes that arrive
  together in one proposal, while one sent after another's commit waits for the next
  proposal, ``paxos_propose_interval``: 1 s by default); answers ``{"outputs"}`` in the
  commands' order, or the first failure.

Answers: ``{"id", "ok": true, ...}`` or ``{"id", "ok": false, "error": KIND, "message"}``
with KIND one of busy, absent, timeout, denied, blocklisted, not_connected, failed.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
from typing import Any

import rados  # type: ignore[import-not-found,unused-ignore]


class MonError(Exception):
    """A monitor command answered an error code."""

    def __init__(self, code: int, status: str) -> None:
        super().__init__(f"mon command: error {code}: {status}")
        self.kind = "denied" if code in (-1, -13) else "timeout" if code == -110 else "failed"


def _kind(exc: Exception) -> str:
    if isinstance(exc, MonError):
        return exc.kind
    if isinstance(exc, rados.ConnectionShutdown):  # ESHUTDOWN: this client is blocklisted
        return "blocklisted"
    if isinstance(exc, rados.ObjectBusy):
        return "busy"
    if isinstance(exc, rados.ObjectNotFound):
        return "absent"
    if isinstance(exc, (rados.TimedOut, rados.InterruptedOrTimeoutError)):
        return "timeout"
    if isinstance(exc, (rados.PermissionError, rados.PermissionDeniedError)):
        return "denied"
    return "failed"


class Agent:
    def __init__(self) -> None:
        self.cluster: Any = None
        self.ioctx: Any = None

    def connect(self, req: dict[str, Any]) -> dict[str, Any]:
        timeout = str(int(req["op_timeout_s"]))
        conf = {
            "rados_osd_op_timeout": timeout,
            "rados_mon_op_timeout": timeout,
            "client_mount_timeout": timeout,
        }
        if req.get("keyring"):
            conf["keyring"] = req["keyring"]
        if req.get("mon_host"):
            conf["mon_host"] = req["mon_host"]
        cluster = rados.Rados(conffile=req.get("conf") or "", rados_id=req["user"], conf=conf)
        cluster.connect(timeout=int(req["op_timeout_s"]))
        self.ioctx = cluster.open_ioctx(req["pool"])
        self.cluster = cluster
        return {"instance": f"client.{cluster.get_instance_id()}"}

    def unlock(self, req: dict[str, Any]) -> dict[str, Any]:
        self.ioctx.unlock(req["object"], req["name"], req["cookie"])
        return {}

    def exec(self, req: dict[str, Any]) -> dict[str, Any]:
        data = base64.b64decode(req["input"])
        _ret, out = self.ioctx.execute(req["object"], req["cls"], req["method"], data, 65536)
        return {"output": base64.b64encode(bytes(out or b"")).decode()}

    def mon(self, req: dict[str, Any]) -> dict[str, Any]:
        code, out, status = self.cluster.mon_command(json.dumps(req["command"]), b"")
        if code < 0:
            raise MonError(code, status)
        return {"output": bytes(out or b"").decode(errors="replace")}

    def mon_all(self, req: dict[str, Any]) -> dict[str, Any]:
        commands = list(req["commands"])
        results: list[dict[str, Any] | Exception] = [RuntimeError("no answer")] * len(commands)

        def one(i: int, command: dict[str, Any]) -> None:
            try:
                results[i] = self.mon({"command": command})
            except Exception as exc:
                results[i] = exc

        # librados is thread-safe and the binding drops the GIL in the call; each call is
        # bounded by rados_mon_op_timeout, so every join ends.
        threads = [
            threading.Thread(target=one, args=(i, c), daemon=True) for i, c in enumerate(commands)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outputs = []
        for r in results:
            if isinstance(r, Exception):
                raise r
            outputs.append(r["output"])
        return {"outputs": outputs}

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "connect":
            return self.connect(req)
        if self.ioctx is None:
            raise RuntimeError("not connected")
        if op == "unlock":
            return self.unlock(req)
        if op == "exec":
            return self.exec(req)
        if op == "mon":
            return self.mon(req)
        if op == "mon_all":
            return self.mon_all(req)
        raise ValueError(f"unknown op {op!r}")


def main() -> None:
    agent = Agent()
    for line in sys.stdin:
        if not line.strip():
            continue
        req: dict[str, Any] = {}
        try:
            req = json.loads(line)
            answer = {"id": req.get("id"), "ok": True, **agent.handle(req)}
        except Exception as exc:  # every failure is an answer; the agent keeps serving
            kind = "not_connected" if agent.ioctx is None and req.get("op") != "connect" else None
            answer = {
                "id": req.get("id"),
                "ok": False,
                "error": kind or _kind(exc),
                "message": f"{type(exc).__name__}: {exc}",
            }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
