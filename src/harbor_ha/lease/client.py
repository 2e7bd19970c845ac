"""The daemon's side of the lease agent: a supervised child process spoken to in JSON lines.

Every request has a timeout on the asyncio side (the agent's own Ceph timeouts are set
below it, so a healthy agent answers first).  A request that times out, or an agent that
died, kills the agent's process group; the next request starts a new agent (a new Ceph
client instance: see :mod:`harbor_ha.lease.lease` for what that means for the lock).
Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from .errors import LeaseError, LeaseTimeout, classify

log = structlog.get_logger("harbor_ha.lease")

AGENT_PATH = Path(__file__).with_name("agent.py")
SYSTEM_PYTHON = "/usr/bin/python3"
"""The interpreter that has Debian's python3-rados (the venv's does not)."""


@dataclass(frozen=True)
class AgentConfig:
    conf: Path | None
    mon_host: str | None
    keyring: Path | None
    user: str
    pool: str
    op_timeout_s: float  # the agent's rados_osd_op_timeout / rados_mon_op_timeout
    request_timeout_s: float  # asyncio side, > op_timeout_s
    python: str = SYSTEM_PYTHON

    def argv(self) -> Sequence[str]:
        return (self.python, "-u", str(AGENT_PATH))


class AgentClient:
    """One agent at a time; requests are serialised (the lease does one thing at a time)."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self.instance: str | None = None  # the connected agent's client.<global id>
        self.starts = 0  # agents started so far (restarts = starts - 1)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def ensure(self) -> None:
        """Start and connect an agent if none runs (so a timed call excludes the start)."""
        async with self._lock:
            if not self.alive or self.instance is None:
                await self._start()

    async def request(
        self, op: str, *, timeout_s: float | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Send one request (starting and connecting an agent first if none runs).

        ``timeout_s`` (default: the config's request timeout) bounds this request, the wait
        for an earlier one included; a request that times out kills the agent as usual."""
        limit = self.config.request_timeout_s if timeout_s is None else timeout_s
        deadline = asyncio.get_running_loop().time() + limit
        try:
            async with asyncio.timeout(limit):
                await self._lock.acquire()
        except TimeoutError:
            raise LeaseTimeout(op, limit) from None
        loop = asyncio.get_running_loop()
        try:
            if not self.alive or self.instance is None:
                # the start (its connect waits on the monitors) is part of this request's
                # bound: a caller with a short bound (the failsafe's probe of a frozen Ceph)
                # must get its answer in time, not the connect's default timeout later
                await self._start(max(deadline - loop.time(), 0.001))
            return await self._ask(op, timeout_s=max(deadline - loop.time(), 0.001), **fields)
        finally:
            self._lock.release()

    async def _start(self, timeout_s: float | None = None) -> None:
        """Start an agent and connect it, within ``timeout_s`` (default: the config's request
        timeout); one that does not connect in time is killed (LeaseTimeout)."""
        await self._kill()
        cfg = self.config
        self._proc = await asyncio.create_subprocess_exec(
            *cfg.argv(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self.starts += 1
        answer = await self._ask(
            "connect",
            timeout_s=timeout_s,
            conf=str(cfg.conf or ""),
            mon_host=cfg.mon_host or "",
            keyring=str(cfg.keyring or ""),
            user=cfg.user,
            pool=cfg.pool,
            op_timeout_s=cfg.op_timeout_s,
        )
        self.instance = str(answer["instance"])
        log.info("lease agent connected", instance=self.instance, pid=self._proc.pid)

    async def _ask(
        self, op: str, *, timeout_s: float | None = None, **fields: Any
    ) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        rid = next(self._ids)
        line = json.dumps({"id": rid, "op": op, **fields}).encode() + b"\n"
        limit = self.config.request_timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit):
                proc.stdin.write(line)
                await proc.stdin.drain()
                while True:
                    raw = await proc.stdout.readline()
                    if not raw:
                        raise LeaseError("agent", f"the lease agent exited during {op}")
                    answer: dict[str, Any] = json.loads(raw)
                    if answer.get("id") == rid:
                        break
        except TimeoutError:
            await self._kill()
            raise LeaseTimeout(op, limit) from None
        except (LeaseError, OSError, ValueError) as exc:
            await self._kill()
            if isinstance(exc, LeaseError):
                raise
            raise LeaseError("agent", f"the lease agent failed during {op}: {exc}") from exc
        if not answer.get("ok"):
            if answer.get("error") in ("not_connected", "blocklisted"):
                await self._kill()  # the next request starts a new client (a new address)
            raise classify(op, str(answer.get("error")), str(answer.get("message", "")))
        return answer

    async def _kill(self) -> None:
        proc, self._proc, self.instance = self._proc, None, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        log.info("lease agent stopped", pid=proc.pid, returncode=proc.returncode)

    async def close(self) -> None:
        async with self._lock:
            await self._kill()


def system_python_has_rados(python: str = SYSTEM_PYTHON) -> bool:
    """Whether ``python`` can import rados (preflight; synchronous, for the CLI's checks)."""
    import subprocess

    try:
        res = subprocess.run(
            [python, "-c", "import rados"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0
