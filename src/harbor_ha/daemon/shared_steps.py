"""The shared mode's four steps: mount (and verify), start, stop, unmount.  The driver bounds
each by its timeout; each is idempotent (run again after a crash or a cancel, it finds what is
already done and goes on).

No fsck and no mkfs here, ever: a shared filesystem is checked and formatted by its own
servers, never by one of its clients (docs/design.md, the shared mode's rules).
"""

from __future__ import annotations

import structlog

from harbor_ha.machine import Step
from harbor_ha.settings import Settings

from .ports import ComposePort, HarborProbePort, SharedFilesystemPort
from .pulse import Pulse
from .steps import StepError, up_until_serving

log = structlog.get_logger("harbor_ha.steps")


class SharedSteps:
    """Runs the shared mode's steps.  Owns Harbor's health as the start step saw it (True
    once serving, None once the stop step ran)."""

    def __init__(
        self,
        settings: Settings,
        *,
        fs: SharedFilesystemPort,
        compose: ComposePort,
        harbor: HarborProbePort,
        wake: Pulse,
    ) -> None:
        self._s = settings
        self._fs = fs
        self._compose = compose
        self._harbor = harbor
        self._wake = wake
        self.harbor_healthy: bool | None = None

    def timeout(self, step: Step) -> float:
        s = self._s
        return {
            Step.MOUNT: s.mount_timeout_s + s.probe_timeout_s,  # the mount, then one statfs
            Step.START: s.start_timeout_s,
            Step.STOP: s.stop_timeout_s,
            Step.UNMOUNT: s.unmount_timeout_s,
        }[step]

    async def run(self, step: Step) -> None:
        await {
            Step.MOUNT: self.mount,
            Step.START: self.start,
            Step.STOP: self.stop,
            Step.UNMOUNT: self.unmount,
        }[step]()

    async def mount(self) -> None:
        """Mount the shared filesystem and verify it (type and source in mountinfo,
        read-write, answering); the object-storage variant mounts nothing."""
        await self._fs.mount(self._s.mount_timeout_s)

    async def start(self) -> None:
        """Harbor starts only on the verified mount (safety rule 5), and is done when it
        serves through this node's own proxy."""
        if self._fs.mounts and not self._fs.verified():
            found, why = self._fs.problem()
            raise StepError(f"refusing to start Harbor: {why or found}")
        await up_until_serving(self._compose, self._harbor, self._wake, self._s.start_timeout_s)
        self.harbor_healthy = True

    async def stop(self) -> None:
        """compose down, not stop: Harbor's services have `restart: always`, and a stopped
        container comes back when dockerd restarts, maybe before the mount."""
        self.harbor_healthy = None
        await self._compose.down(self._s.stop_timeout_s)

    async def unmount(self) -> None:
        """Unmount the shared filesystem (staged; a mount that is not the configured one is
        refused, never unmounted) and guard the bare mountpoint."""
        await self._fs.unmount(self._s.unmount_timeout_s, self._s.unmount_term_grace_s)
