"""fsck: what its exit code means for a promotion (safety rule 4), and running it.

``fsck -t FS_TYPE -p DEV``.  For ext4 that is ``e2fsck -p`` (preen: fixes only
what is safe unattended, else exits 4).  For xfs, fsck.xfs deliberately does
nothing and exits 0: xfs replays its log at mount time, and ``xfs_repair -n``
on a crash-consistent fs with a dirty log reports false corruption, so an
automatic offline check would block every failover after a crash.  The
summary says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

import structlog

from harbor_ha.filesystem.errors import FsckFailed
from harbor_ha.runner import CommandError, Runner
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.filesystem")


class FsckVerdict(Enum):
    """What an fsck exit code means for the promotion (docs/design.md, safety rule 4)."""

    CLEAN = "clean"  # 0
    CORRECTED = "corrected"  # 1: errors fixed, go on
    REBOOT_ADVISED = "reboot_advised"  # bit 2 set: log a warning, go on
    FAILED = "failed"  # >= 4 (uncorrected, operational, usage, cancelled, library) or killed


def fsck_verdict(code: int) -> FsckVerdict:
    """Map an fsck(8) exit code (a bit mask) to a verdict; negative (signal) = FAILED."""
    if code < 0 or code >= 4:
        return FsckVerdict.FAILED
    if code & 2:
        return FsckVerdict.REBOOT_ADVISED
    if code & 1:
        return FsckVerdict.CORRECTED
    return FsckVerdict.CLEAN


@dataclass(frozen=True)
class FsckOutcome:
    """A finished, acceptable fsck (codes 0-3)."""

    code: int
    duration_s: float
    summary: str

    @property
    def verdict(self) -> FsckVerdict:
        return fsck_verdict(self.code)


def fsck_argv(settings: Settings, device: str) -> list[str]:
    """``fsck -t FS_TYPE -p DEV``."""
    return [settings.fsck_bin, "-t", settings.fs_type, "-p", device]


async def run_fsck(
    runner: Runner, settings: Settings, device: str, timeout_s: float
) -> FsckOutcome:
    """Run fsck on ``device``; 0-3 -> FsckOutcome, >= 4 or timeout -> FsckFailed."""
    started = time.monotonic()
    try:
        result = await runner.run(fsck_argv(settings, device), timeout_s=timeout_s)
    except CommandError as exc:
        log.error("fsck_failed", device=device, error=str(exc))
        raise FsckFailed(device, -1, str(exc)) from exc
    duration = time.monotonic() - started
    verdict = fsck_verdict(result.returncode)
    summary = (result.stdout.strip() + "\n" + result.stderr.strip()).strip()[-500:]
    if settings.fs_type == "xfs":
        summary = "xfs: no offline check (log replayed at mount). " + summary
    fields = {"device": device, "rc": result.returncode, "duration_s": round(duration, 3)}
    if verdict is FsckVerdict.FAILED:
        log.error("fsck_failed", **fields, output=result.output_tail()[-500:])
        raise FsckFailed(device, result.returncode, result.output_tail())
    if verdict is FsckVerdict.REBOOT_ADVISED:
        log.warning("fsck_reboot_advised", **fields, summary=summary)
    else:
        log.info("fsck_done", **fields, verdict=verdict.value)
    return FsckOutcome(code=result.returncode, duration_s=duration, summary=summary)
