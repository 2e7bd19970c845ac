"""The adapter the daemon holds: the image's filesystem at ``settings.mountpoint``.

Every command goes through the injected runner; the work is in the modules it
binds together (probe, mkfs, fsck, guard, unmount); mounting itself is here.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from harbor_ha.filesystem import fsck as fsck_module
from harbor_ha.filesystem import guard as guard_module
from harbor_ha.filesystem import mkfs, probe
from harbor_ha.filesystem import unmount as unmount_module
from harbor_ha.filesystem.direct_read import DirectReader
from harbor_ha.filesystem.errors import FilesystemError, MountError
from harbor_ha.filesystem.fsck import FsckOutcome
from harbor_ha.filesystem.mounted import (
    device_numbers,
    is_mounted_from,
    is_read_only,
    mount_at,
    read_mountinfo,
)
from harbor_ha.filesystem.mountinfo import normalize
from harbor_ha.filesystem.unmount import UnmountOutcome
from harbor_ha.runner import CommandError, Runner
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.filesystem")


class Filesystem:
    """The image's filesystem at ``settings.mountpoint``; every command through ``runner``."""

    def __init__(self, settings: Settings, runner: Runner) -> None:
        self._settings = settings
        self._runner = runner
        self._reader = DirectReader()
        self.mountpoint = Path(normalize(settings.mountpoint))

    # ----------------------------------------------------------- queries
    def is_mounted_from(self, device: str) -> bool:
        """Is ``device`` mounted at the mountpoint? (:func:`mounted.is_mounted_from`)."""
        return is_mounted_from(self.mountpoint, device)

    def is_read_only(self) -> bool:
        return is_read_only(self.mountpoint)

    def is_guarded(self) -> bool | None:
        """Is the bare mountpoint immutable? (see :func:`guard.is_guarded`)."""
        return guard_module.is_guarded(self.mountpoint)

    # ------------------------------------------------------------ probes
    async def read_probe(self, device: str, timeout_s: float) -> bool | None:
        """One O_DIRECT read of the first 4 KiB; False on an error, None on no answer."""
        return await probe.read_probe(self._reader, device, timeout_s)

    async def probe_filesystem(self, device: str) -> str | None:
        """The filesystem type on ``device`` (see :func:`probe.probe_filesystem`)."""
        return await probe.probe_filesystem(self._runner, self._settings, device, self._reader)

    # ------------------------------------------------------- format, fsck
    async def format_new(self, device: str, *, confirm: bool) -> None:
        """mkfs -t FS_TYPE on a device that reads fine and holds no filesystem (operator only)."""
        await mkfs.format_new(self._runner, self._settings, device, confirm=confirm)

    async def fsck(self, device: str, timeout_s: float) -> FsckOutcome:
        """``fsck -t FS_TYPE -p DEV``; 0-3 -> FsckOutcome, >= 4 or timeout -> FsckFailed."""
        return await fsck_module.run_fsck(self._runner, self._settings, device, timeout_s)

    # ------------------------------------------------------------- mount
    async def mount(self, device: str, timeout_s: float) -> None:
        """Mount ``device`` read-write at the mountpoint (idempotent), verified via mountinfo."""
        mp = self.mountpoint
        top = mount_at(mp)
        if top is not None:
            if is_mounted_from(mp, device, [top]):
                if top.read_only:
                    raise MountError(f"{device} is mounted at {mp} but read-only")
                log.info("mount_already", device=device, mountpoint=str(mp))
                return
            raise MountError(
                f"{mp} is already mounted from {top.source} ({top.major}:{top.minor}), not {device}"
            )
        try:
            device_numbers(device)
        except FilesystemError as exc:
            raise MountError(str(exc)) from exc
        try:
            mp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MountError(f"cannot create mountpoint {mp}: {exc.strerror}") from exc
        await self.guard()
        s = self._settings
        argv = [s.mount_bin, "-t", s.fs_type, "-o", s.mount_options, device, str(mp)]
        try:
            result = await self._runner.run(argv, timeout_s=timeout_s)
        except CommandError as exc:
            log.error("mount_failed", device=device, error=str(exc))
            raise MountError(f"mount {device} at {mp}: {exc}") from exc
        if not result.ok:
            tail = result.output_tail()
            log.error("mount_failed", device=device, rc=result.returncode, output=tail)
            raise MountError(f"mount {device} at {mp} exit {result.returncode}: {tail}")
        infos = read_mountinfo()
        if not is_mounted_from(mp, device, infos):
            raise MountError(f"mount {device} at {mp} exited 0 but mountinfo does not show it")
        if is_read_only(mp, infos):
            raise MountError(f"{device} mounted at {mp} read-only")
        log.info(
            "mounted",
            device=device,
            mountpoint=str(mp),
            duration_s=round(result.duration_s, 3),
        )

    # ------------------------------------------------------ guard, unmount
    async def guard(self) -> None:
        """chattr +i the bare mountpoint while nothing is mounted on it (see :mod:`guard`)."""
        await guard_module.guard(self._runner, self._settings, self.mountpoint)

    async def unmount(self, timeout_s: float, term_grace_s: float) -> UnmountOutcome:
        """Unmount the mountpoint: plain, then TERM the users, then KILL them; retry to the end.

        Idempotent (nothing mounted = success).  Guards the bare directory
        after success.  Raises UnmountFailed if still mounted after timeout_s.
        """
        return await unmount_module.unmount(
            self._runner, self._settings, self.mountpoint, timeout_s, term_grace_s
        )
