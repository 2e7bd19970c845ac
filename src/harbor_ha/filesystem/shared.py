"""The shared mode's filesystem at ``settings.mountpoint``: mount, verify, probe, unmount.

Every command goes through the injected runner with a timeout.  Verified means: the top-most
mount at exactly the mountpoint in /proc/self/mountinfo has the configured type and source
(:mod:`.shared_spec`), is read-write, and answers a statfs and a stat of its root within the
probe timeout.  While nothing is mounted, the bare directory is guarded (``chattr +i``,
:mod:`.guard`).  A mount that is not the configured one is never unmounted and never mounted
over.  Nothing here runs
fsck or mkfs: a shared filesystem is never checked or formatted by one of its clients.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from harbor_ha.filesystem import guard as guard_module
from harbor_ha.filesystem import unmount as unmount_module
from harbor_ha.filesystem.direct_read import DirectReader, statvfs_of
from harbor_ha.filesystem.errors import MountError
from harbor_ha.filesystem.mounted import mount_at
from harbor_ha.filesystem.mountinfo import normalize
from harbor_ha.filesystem.shared_spec import MountFinding, SharedSpec
from harbor_ha.filesystem.unmount import UnmountFailed, UnmountOutcome
from harbor_ha.runner import CommandError, Runner
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.filesystem")


def spec_of(settings: Settings) -> SharedSpec:
    return SharedSpec(
        fs_type=settings.shared_fs_type or "none",
        source=settings.shared_fs_source,
        options=settings.shared_fs_options,
        mountpoint=Path(normalize(settings.mountpoint)),
    )


class SharedFilesystem:
    """The configured shared filesystem at the mountpoint (or none: object storage)."""

    def __init__(self, settings: Settings, runner: Runner) -> None:
        self._s = settings
        self._runner = runner
        self.spec = spec_of(settings)
        self.mountpoint = self.spec.mountpoint
        self._statfs = DirectReader(statvfs_of)

    # ----------------------------------------------------------- queries
    @property
    def mounts(self) -> bool:
        """False for the object-storage variant (nothing to mount)."""
        return self.spec.mounts

    def problem(self) -> tuple[str, str]:
        """(the finding's name, why) of what is at the mountpoint; ("OURS", "") when verified."""
        found, why = self.finding()
        return found.name, why

    def finding(self) -> tuple[MountFinding, str]:
        """What is at the mountpoint now, from mountinfo alone."""
        return self.spec.finding(mount_at(self.mountpoint))

    def verified(self) -> bool:
        """The configured filesystem is mounted read-write at the mountpoint (mountinfo)."""
        return self.finding()[0] is MountFinding.OURS

    async def answers(self, timeout_s: float) -> tuple[bool | None, str]:
        """One statfs and one stat of the mounted filesystem's root: True answered, False an
        error (a dead ceph-fuse: ENOTCONN; a CephFS client evicted at the MDS: ENOENT), None
        no answer within ``timeout_s`` (a hung server)."""
        return await self._statfs.read(str(self.mountpoint), timeout_s)

    # ------------------------------------------------------------- mount
    async def mount(self, timeout_s: float) -> None:
        """Mount the configured filesystem (idempotent) and verify it: type and source in
        mountinfo, read-write, answering.  Raises MountError (nothing is unmounted here)."""
        spec = self.spec
        if not spec.mounts:
            log.info("mount_none", reason="object storage: nothing to mount")
            return
        found, why = self.finding()
        if found is MountFinding.NOT_MOUNTED:
            await self._mount(timeout_s)
            found, why = self.finding()
            if found is MountFinding.NOT_MOUNTED:
                raise MountError(f"mount of {spec.describe()} exited 0 but mountinfo has none")
        else:
            log.info("mount_already", mountpoint=str(self.mountpoint), finding=str(found))
        if found is not MountFinding.OURS:
            raise MountError(f"refusing {self.mountpoint}: {why}")
        ok, error = await self.answers(self._s.probe_timeout_s)
        if not ok:
            raise MountError(f"{spec.describe()} is mounted but does not answer: {error}")
        log.info("mount_verified", fs_type=spec.fs_type, source=spec.source,
                 mountpoint=str(self.mountpoint))  # fmt: skip

    async def _mount(self, timeout_s: float) -> None:
        s, mp = self._s, self.mountpoint
        try:
            mp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MountError(f"cannot create mountpoint {mp}: {exc.strerror}") from exc
        await self.guard()
        argv = self.spec.argv(
            mount_bin=s.mount_bin, ceph_fuse_bin=s.ceph_fuse_bin, ceph_user=s.ceph_user,
            ceph_conf=s.ceph_conf, ceph_keyring=s.ceph_keyring,
        )  # fmt: skip
        try:
            result = await self._runner.run(argv, timeout_s=timeout_s)
        except CommandError as exc:
            log.error("mount_failed", source=self.spec.source, error=str(exc))
            raise MountError(f"mount {self.spec.describe()}: {exc}") from exc
        if not result.ok:
            tail = result.output_tail().strip()[-500:]
            log.error("mount_failed", source=self.spec.source, rc=result.returncode, output=tail)
            raise MountError(f"mount {self.spec.describe()} exit {result.returncode}: {tail}")
        log.info("mounted", source=self.spec.source, mountpoint=str(mp),
                 duration_s=round(result.duration_s, 3))  # fmt: skip

    # ------------------------------------------------------ guard, unmount
    async def guard(self) -> None:
        """chattr +i the bare mountpoint while nothing is mounted on it (see :mod:`.guard`)."""
        await guard_module.guard(self._runner, self._s, self.mountpoint)

    async def unmount(self, timeout_s: float, term_grace_s: float) -> UnmountOutcome:
        """Unmount the configured filesystem, staged (:mod:`.unmount`); idempotent, guards
        the bare directory after.  A mount that is not the configured one is left alone:
        UnmountFailed (never unmount what this node did not mount)."""
        if not self.spec.mounts:
            return UnmountOutcome(already_unmounted=True)
        found, why = self.finding()
        if found is MountFinding.FOREIGN:
            raise UnmountFailed(f"refusing to unmount {self.mountpoint}: {why}", UnmountOutcome())
        return await unmount_module.unmount(
            self._runner, self._s, self.mountpoint, timeout_s, term_grace_s
        )
