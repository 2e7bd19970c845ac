"""The guest side of the command channel: run commands for the host, answer on virtio-serial.

Runs inside the VM (started by stage2.sh), standard library only.  Why this
channel: a virtio-serial port is a plain byte pipe that exists from boot,
needs no network (so it keeps working while a test cuts the VM from the lab
bridge), no ssh keys and no daemon in the guest beyond this file.  The
protocol is one JSON object per line:

    host -> guest  {"id": N, "argv": [...], "timeout": S, "stdin": "..."|null, "cwd": ...|null}
    guest -> host  {"id": N, "rc": RC, "stdout": "...", "stderr": "...", "duration": S,
                    "timed_out": bool, "unreaped": bool}

Each request runs in its own thread, so a command stuck in the kernel (D
state) does not stop the others.  On timeout the command's process group is
killed; a process that cannot die (D state) is reported ``unreaped`` after a
short wait instead of blocking the answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

PORT_NAME = "harbor.agent"
KILL_WAIT_S = 2.0


def find_port() -> str:
    for entry in Path("/sys/class/virtio-ports").iterdir():
        if (entry / "name").read_text().strip() == PORT_NAME:
            return f"/dev/{entry.name}"
    raise SystemExit(f"agent: no virtio port named {PORT_NAME}")


class Agent:
    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        with self._lock:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]

    def handle(self, request: dict[str, Any]) -> None:
        started = time.monotonic()
        reply: dict[str, Any] = {"id": request.get("id"), "timed_out": False, "unreaped": False}
        stdin = request.get("stdin")
        try:
            proc = subprocess.Popen(
                request["argv"],
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=request.get("cwd"),
                env={**os.environ, **request.get("env", {})},
                start_new_session=True,
            )
        except OSError as exc:
            reply.update(rc=127, stdout="", stderr=f"agent: cannot run: {exc}", duration=0.0)
            self.send(reply)
            return
        try:
            out, err = proc.communicate(
                stdin.encode() if stdin is not None else None, timeout=float(request["timeout"])
            )
        except subprocess.TimeoutExpired:
            reply["timed_out"] = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                out, err = proc.communicate(timeout=KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                reply["unreaped"] = True
                out, err = b"", b""
        reply.update(
            rc=proc.returncode if proc.returncode is not None else -9,
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            duration=time.monotonic() - started,
        )
        self.send(reply)

    def serve(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._fd, 65536)
            if not chunk:  # host not connected: the port reads EOF until it is
                time.sleep(0.2)
                continue
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    request = json.loads(line)
                except ValueError:
                    continue
                threading.Thread(target=self.handle, args=(request,), daemon=True).start()


def main() -> None:
    fd = os.open(find_port(), os.O_RDWR)
    Agent(fd).serve()


if __name__ == "__main__":
    main()
