"""What is on the device: a bounded read probe and blkid (safety rule 3's first half).

``probe_filesystem`` tells "no filesystem" (blkid exit 2 AND the device reads
fine) from "I/O error" (blkid also exits 2 when it cannot read: the predecessor
then ran mkfs and destroyed the registry).
"""

from __future__ import annotations

import structlog

from harbor_ha.filesystem.direct_read import DirectReader
from harbor_ha.filesystem.errors import DeviceIOError, ProbeError
from harbor_ha.runner import CommandError, Runner
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.filesystem")


def parse_blkid_export(text: str) -> dict[str, str]:
    """``blkid -o export`` output (KEY=value lines) as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


async def read_probe(reader: DirectReader, device: str, timeout_s: float) -> bool | None:
    """One O_DIRECT read of the first 4 KiB: True read, False an error, None no answer within
    ``timeout_s`` (the read waits on Ceph: it does not answer this node; a fenced krbd client
    gets an error at once instead), or an earlier read still blocked."""
    ok, why = await reader.read(device, timeout_s)
    if ok is None:
        log.warning("read_probe_failed", device=device, error=why, answered=False)
    elif not ok:
        log.warning("read_probe_failed", device=device, error=why)
    return ok


async def probe_filesystem(
    runner: Runner, settings: Settings, device: str, reader: DirectReader | None = None
) -> str | None:
    """The filesystem type on ``device``; None only when blkid finds nothing AND it reads fine.

    Raises DeviceIOError when the device cannot be read (blkid exits 2 on I/O
    errors too), ProbeError on an answer that is neither a filesystem nor empty.
    """
    timeout_s = settings.command_timeout_s
    argv = [settings.blkid_bin, "-p", "-o", "export", device]
    try:
        result = await runner.run(argv, timeout_s=timeout_s)
    except CommandError as exc:
        raise ProbeError(f"blkid of {device}: {exc}") from exc
    if result.returncode == 0:
        values = parse_blkid_export(result.stdout)
        fstype = values.get("TYPE")
        if fstype:
            log.info("probe_filesystem", device=device, fstype=fstype)
            return fstype
        raise ProbeError(f"{device} holds no filesystem but is not empty: {values}")
    readable = await read_probe(reader or DirectReader(), device, timeout_s)
    if not readable:
        log.error("probe_device_unreadable", device=device, blkid_rc=result.returncode)
        raise DeviceIOError(f"{device} cannot be read (blkid exit {result.returncode})")
    if result.returncode == 2:
        log.info("probe_filesystem", device=device, fstype=None)
        return None
    raise ProbeError(f"blkid of {device} exit {result.returncode}: {result.stderr.strip()[-300:]}")
