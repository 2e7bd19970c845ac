"""Run external commands with a timeout; on timeout or cancellation kill the whole process group.

Every external command harbor-ha issues goes through a :class:`Runner`.  The
real one is :class:`ProcessRunner`; a fault-injecting runner (tests) can stand
in for it because adapters only know the :class:`Runner` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

log = structlog.get_logger("harbor_ha.runner")


@dataclass(frozen=True)
class CommandResult:
    """What one finished command did."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def output_tail(self, chars: int = 2000) -> str:
        """The last ``chars`` characters of stdout followed by stderr (for errors and logs)."""
        return (self.stdout + self.stderr)[-chars:]


class CommandError(Exception):
    """Base of the runner's errors; carries the argv."""

    def __init__(self, argv: Sequence[str], message: str) -> None:
        super().__init__(f"{' '.join(argv)}: {message}")
        self.argv = tuple(argv)


class CommandTimeout(CommandError):
    """The command ran past its timeout; its process group was killed."""

    def __init__(
        self, argv: Sequence[str], timeout_s: float, *, uninterruptible: bool = False
    ) -> None:
        what = (
            "still in D state after SIGKILL (uninterruptible I/O: it cannot return until the "
            "I/O does)"
            if uninterruptible
            else "process group killed"
        )
        super().__init__(argv, f"timed out after {timeout_s:g} s ({what})")
        self.timeout_s = timeout_s
        self.uninterruptible = uninterruptible


class CommandNotFound(CommandError):
    """The executable does not exist or is not executable."""


class CommandFailed(CommandError):
    """The command exited non-zero (raised only with ``check=True``)."""

    def __init__(self, result: CommandResult) -> None:
        detail = (result.stderr.strip() or result.stdout.strip())[-500:]
        super().__init__(result.argv, f"exit {result.returncode}: {detail}")
        self.result = result


class Runner(Protocol):
    """Runs one external command to completion, bounded by ``timeout_s``."""

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        input_data: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = False,
    ) -> CommandResult: ...


Observer = Callable[[CommandResult], None]

KILL_WAIT_S = 5.0
"""How long to wait for a killed process to be reaped before giving up on it
(a process in D state cannot die; we must not hang on it)."""


def _killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


_REAPING: set[asyncio.Task[int]] = set()
"""Background reapers of cancelled commands (a reference keeps each task alive)."""


def _reap_later(proc: asyncio.subprocess.Process, done: Callable[[], object]) -> None:
    task = asyncio.get_running_loop().create_task(proc.wait(), name=f"reap-{proc.pid}")
    _REAPING.add(task)
    task.add_done_callback(_REAPING.discard)
    task.add_done_callback(lambda _t: done())


def process_state(pid: int) -> str | None:
    """The state letter of ``pid`` from /proc/PID/stat (``D`` = uninterruptible sleep), or
    None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "PID (COMM) S ...": COMM may hold spaces and parentheses; the state follows the last ")".
    rest = stat.rpartition(")")[2].split()
    return rest[0] if rest else None


class ProcessRunner:
    """The real runner: asyncio subprocess in its own session (= process group)."""

    def __init__(
        self, *, base_env: Mapping[str, str] | None = None, observer: Observer | None = None
    ) -> None:
        self._base_env = dict(base_env) if base_env is not None else None
        self._observer = observer
        self._running: dict[int, tuple[tuple[str, ...], asyncio.Task[object] | None]] = {}
        """pid -> (argv, the task that ran it) of every command not reaped yet (a killed one
        until its background reaper ends)."""

    def unfinished_here(self) -> list[str]:
        """The commands of the current task that were killed but not reaped yet, as
        ``ARGV [pid N, state S]`` ("killed at the bound" once it died); one in D state
        (uninterruptible sleep: SIGKILL cannot end it until its I/O returns, e.g. umount or
        rbd device unmap on a node cut from Ceph) says so.  What a step that timed out did
        not get back from, for its reason."""
        here = asyncio.current_task()
        out = []
        for pid, (argv, task) in list(self._running.items()):
            if task is not here:
                continue
            # None: already reaped by asyncio's child watcher (it died on the kill), but our
            # background reaper has not forgotten it yet.
            state = process_state(pid)
            what = {
                "D": "D state: uninterruptible I/O, SIGKILL cannot end it",
                "Z": "killed at the bound",
                None: "killed at the bound",
            }.get(state, f"state {state}")
            out.append(f"{' '.join(argv)} [pid {pid}, {what}]")
        return out

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        input_data: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = False,
    ) -> CommandResult:
        if not argv:
            raise ValueError("empty argv")
        full_env: dict[str, str] | None = None
        if self._base_env is not None or env is not None:
            full_env = dict(os.environ if self._base_env is None else self._base_env)
            full_env.update(env or {})
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE
                if input_data is not None
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=full_env,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise CommandNotFound(argv, f"cannot execute: {exc.strerror or exc}") from exc
        pid = proc.pid
        self._running[pid] = (tuple(argv), asyncio.current_task())
        try:
            out, err = await asyncio.wait_for(proc.communicate(input_data), timeout_s)
        except TimeoutError:
            await self._kill(proc)
            stuck = proc.returncode is None and process_state(pid) == "D"
            if proc.returncode is None:
                _reap_later(proc, lambda: self._running.pop(pid, None))
            else:
                self._running.pop(pid, None)
            log.warning("command_timeout", argv=list(argv), timeout_s=timeout_s, d_state=stuck)
            raise CommandTimeout(argv, timeout_s, uninterruptible=stuck) from None
        except asyncio.CancelledError:
            # No wait here: the canceller (a step at its bound) must not be held up by a
            # child that cannot die (D state on a node cut from Ceph); reap it in the background.
            _killpg(proc.pid)
            _reap_later(proc, lambda: self._running.pop(pid, None))
            log.info("command_cancelled", argv=list(argv))
            raise
        self._running.pop(pid, None)
        result = CommandResult(
            argv=tuple(argv),
            returncode=proc.returncode if proc.returncode is not None else -1,
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            duration_s=time.monotonic() - started,
        )
        log.debug(
            "command",
            argv=list(argv),
            rc=result.returncode,
            duration_ms=round(result.duration_s * 1000, 1),
        )
        if self._observer is not None:
            self._observer(result)
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    @staticmethod
    async def _kill(proc: asyncio.subprocess.Process) -> None:
        _killpg(proc.pid)
        # The group leader may already be gone while children live on: the
        # group id is still the leader's pid, so killpg above reached them.
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.shield(asyncio.wait_for(proc.wait(), KILL_WAIT_S))
