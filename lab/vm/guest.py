"""The host side of the command channel (see agent.py for the protocol and why).

:class:`Guest` connects to the qemu chardev socket of the VM's virtio-serial
port and runs commands in the guest: :meth:`Guest.run` waits for the answer,
:meth:`Guest.start` returns a :class:`Pending` to wait on later (a writer left
hanging while the test does something else).  Every command carries a timeout
the guest enforces; the host waits that long plus a margin, then raises.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST_MARGIN_S = 15.0
"""Extra host-side wait beyond the guest's own timeout (the guest kills, then answers)."""


class GuestError(RuntimeError):
    """The guest did not answer (VM dead, agent gone, or past the host's wait)."""


@dataclass(frozen=True)
class GuestResult:
    """What one command in the guest did."""

    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    unreaped: bool

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def check(self) -> GuestResult:
        if not self.ok:
            raise GuestError(
                f"guest {' '.join(self.argv)}: rc {self.rc} timed_out={self.timed_out}: "
                f"{(self.stderr or self.stdout).strip()[-800:]}"
            )
        return self


class Pending:
    """A command started in the guest; :meth:`wait` for its result."""

    def __init__(self, argv: Sequence[str], timeout_s: float) -> None:
        self.argv = tuple(argv)
        self.timeout_s = timeout_s
        self.started = time.monotonic()
        self._done = threading.Event()
        self._reply: dict[str, Any] = {}

    def deliver(self, reply: dict[str, Any]) -> None:
        self._reply = reply
        self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, wait_s: float | None = None) -> GuestResult:
        limit = wait_s if wait_s is not None else self.timeout_s + HOST_MARGIN_S
        if not self._done.wait(max(limit - (time.monotonic() - self.started), 0.0)):
            raise GuestError(f"guest {' '.join(self.argv)}: no answer within {limit:g} s")
        r = self._reply
        return GuestResult(
            argv=self.argv,
            rc=int(r.get("rc", -1)),
            stdout=str(r.get("stdout", "")),
            stderr=str(r.get("stderr", "")),
            duration_s=float(r.get("duration", 0.0)),
            timed_out=bool(r.get("timed_out", False)),
            unreaped=bool(r.get("unreaped", False)),
        )


class Guest:
    """One VM's command channel (connect once; thread-safe)."""

    def __init__(self, socket_path: Path, connect_timeout_s: float = 30.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                self._sock.connect(str(socket_path))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise GuestError(f"cannot connect to {socket_path}") from None
                time.sleep(0.1)
        self._ids = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="vm-guest-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    reply = json.loads(line)
                except ValueError:
                    continue
                with self._lock:
                    pending = self._pending.pop(int(reply.get("id", -1)), None)
                if pending is not None:
                    pending.deliver(reply)

    def start(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        stdin: str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Pending:
        """Send one command; its answer arrives in the returned Pending."""
        request_id = next(self._ids)
        pending = Pending(argv, timeout_s)
        request = {
            "id": request_id,
            "argv": list(argv),
            "timeout": timeout_s,
            "stdin": stdin,
            "cwd": cwd,
            "env": dict(env or {}),
        }
        with self._lock:
            self._pending[request_id] = pending
            self._sock.sendall((json.dumps(request) + "\n").encode())
        return pending

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        stdin: str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> GuestResult:
        """Run one command in the guest and wait for its result."""
        return self.start(argv, timeout_s=timeout_s, stdin=stdin, cwd=cwd, env=env).wait()

    def wait_ready(self, timeout_s: float) -> float:
        """Ping (``true``) until the agent answers; the seconds it took."""
        started = time.monotonic()
        while True:
            ping = self.start(["true"], timeout_s=5.0)
            with contextlib.suppress(GuestError):
                if ping.wait(1.0).ok:
                    return time.monotonic() - started
            with self._lock:
                self._pending = {k: v for k, v in self._pending.items() if v is not ping}
            if time.monotonic() - started > timeout_s:
                raise GuestError(f"guest agent not ready within {timeout_s:g} s")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
