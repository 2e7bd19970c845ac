"""The staged unmount (safety rule 6): plain, TERM the users, KILL the users, retry to the end.

Idempotent (nothing mounted = success); guards the bare directory after success;
raises :class:`UnmountFailed` if the mountpoint is still mounted when the whole
timeout is spent.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from harbor_ha.filesystem.errors import FilesystemError
from harbor_ha.filesystem.guard import guard
from harbor_ha.filesystem.mounted import mount_at
from harbor_ha.filesystem.users import scan_mount_users, signal_users
from harbor_ha.runner import CommandError, CommandResult, Runner
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.filesystem")

UMOUNT_BUSY_POLL_S = 0.05
"""Poll period while waiting for signalled users to exit (a condition poll, not a timed wait)."""
KILL_RETRY_PAUSE_S = 0.1
"""Pause between KILL-and-umount retries once every stage has run."""


@dataclass
class UnmountOutcome:
    """What unmount did: umount attempts, PIDs signalled, and how long it took."""

    attempts: int = 0
    already_unmounted: bool = False
    termed: list[int] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    duration_s: float = 0.0
    stages: list[str] = field(default_factory=list)


class UnmountFailed(FilesystemError):
    """The mountpoint is still mounted after every stage and the whole timeout."""

    def __init__(self, message: str, outcome: UnmountOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


async def _umount_once(
    runner: Runner, settings: Settings, mountpoint: Path, timeout_s: float
) -> CommandResult | None:
    argv = [settings.umount_bin, str(mountpoint)]
    try:
        return await runner.run(argv, timeout_s=max(timeout_s, 0.1))
    except CommandError as exc:
        log.warning("umount_attempt_failed", mountpoint=str(mountpoint), error=str(exc))
        return None


async def _wait_gone(mountpoint: Path, pids: list[int], limit_s: float) -> None:
    """Poll until none of ``pids`` still uses the mount, at most ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while pids and await scan_mount_users(mountpoint, pids, deadline - time.monotonic()):
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(UMOUNT_BUSY_POLL_S)


async def unmount(
    runner: Runner, settings: Settings, mountpoint: Path, timeout_s: float, term_grace_s: float
) -> UnmountOutcome:
    """Unmount ``mountpoint``: plain, then TERM the users, then KILL them; retry to the end."""
    mp = mountpoint
    started = time.monotonic()
    deadline = started + timeout_s
    outcome = UnmountOutcome()
    if mount_at(mp) is None:
        outcome.already_unmounted = True
        log.info("unmount_already", mountpoint=str(mp))
        await guard(runner, settings, mp)
        return outcome
    stage = "plain"
    while True:
        outcome.attempts += 1
        outcome.stages.append(stage)
        # Each attempt is bounded by command_timeout_s so a hanging umount
        # still leaves time for the TERM/KILL stages.
        bound = min(deadline - time.monotonic(), settings.command_timeout_s)
        result = await _umount_once(runner, settings, mp, bound)
        if mount_at(mp) is None:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            outcome.duration_s = time.monotonic() - started
            detail = result.output_tail().strip()[-300:] if result is not None else "timed out"
            log.error(
                "unmount_failed",
                mountpoint=str(mp),
                attempts=outcome.attempts,
                termed=outcome.termed,
                killed=outcome.killed,
                error=detail,
            )
            raise UnmountFailed(
                f"{mp} still mounted after {outcome.attempts} attempts in "
                f"{outcome.duration_s:.1f} s: {detail}",
                outcome,
            )
        users = await scan_mount_users(mp, None, remaining)
        if stage == "plain":
            sent = signal_users(mp, users, signal.SIGTERM)
            outcome.termed.extend(sent)
            await _wait_gone(mp, sent, min(term_grace_s, remaining))
            stage = "term"
        else:
            sent = signal_users(mp, users, signal.SIGKILL)
            outcome.killed.extend(p for p in sent if p not in outcome.killed)
            if sent:
                await _wait_gone(mp, sent, min(term_grace_s, remaining))
            else:
                await asyncio.sleep(min(KILL_RETRY_PAUSE_S, remaining))
            stage = "kill"
    outcome.duration_s = time.monotonic() - started
    log.info(
        "unmounted",
        mountpoint=str(mp),
        attempts=outcome.attempts,
        termed=outcome.termed,
        killed=outcome.killed,
        duration_s=round(outcome.duration_s, 3),
    )
    await guard(runner, settings, mp)
    return outcome
