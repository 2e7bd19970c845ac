"""The only mkfs (safety rule 3): reached only by the operator's explicit format command.

It formats a device only with ``confirm=True``, only when the device reads fine
and holds no filesystem.  Nothing automatic ever calls it.
"""

from __future__ import annotations

import structlog

from harbor_ha.filesystem.errors import DeviceIOError, FormatFailed, FormatRefused, ProbeError
from harbor_ha.filesystem.probe import probe_filesystem
from harbor_ha.runner import CommandError, Runner
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.filesystem")


async def format_new(runner: Runner, settings: Settings, device: str, *, confirm: bool) -> None:
    """mkfs -t FS_TYPE on a device that reads fine and holds no filesystem (operator only)."""
    if confirm is not True:
        log.warning("format_refused", device=device, reason="not confirmed")
        raise FormatRefused(f"refusing to format {device}: not confirmed")
    try:
        existing = await probe_filesystem(runner, settings, device)
    except DeviceIOError as exc:
        log.error("format_refused", device=device, reason="unreadable")
        raise FormatRefused(f"refusing to format {device}: {exc}") from exc
    except ProbeError as exc:
        log.error("format_refused", device=device, reason="not empty")
        raise FormatRefused(f"refusing to format {device}: {exc}") from exc
    if existing is not None:
        log.error("format_refused", device=device, reason="has filesystem", fstype=existing)
        raise FormatRefused(f"refusing to format {device}: it already holds {existing}")
    argv = [settings.mkfs_bin, "-t", settings.fs_type, device]
    log.warning("format_start", device=device, fstype=settings.fs_type)
    try:
        result = await runner.run(argv, timeout_s=settings.format_timeout_s)
    except CommandError as exc:
        raise FormatFailed(f"mkfs of {device}: {exc}") from exc
    if not result.ok:
        raise FormatFailed(f"mkfs of {device} exit {result.returncode}: {result.output_tail()}")
    log.warning("format_done", device=device, duration_s=round(result.duration_s, 3))
