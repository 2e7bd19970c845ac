"""The eight steps, each a short sequence of adapter calls.  The driver bounds each by its timeout.

Every step is idempotent: run again after a crash or a cancel, it finds what
is already done and goes on (safety rule 8).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from harbor_ha.machine import Event, Step
from harbor_ha.metrics import Metrics
from harbor_ha.settings import Settings

from .leasing import Leasing, StepOutcome
from .ports import CephPort, ComposePort, FilesystemPort, HarborProbePort
from .pulse import Pulse

if TYPE_CHECKING:
    from .shared_steps import SharedSteps

log = structlog.get_logger("harbor_ha.steps")

VIP_CONFIRM_S = 1.0
"""How long the fence step waits for the VIP to show on the interface before refusing to fence.
keepalived adds its VIPs before it writes MASTER to the notify FIFO, so a real MASTER line
finds the VIP at once; a replayed or stray line (the FIFO can replay, docs/design.md) does
not."""

HEALTH_POLL_S = 0.25
"""How often the start step re-checks Harbor while waiting for it to serve (also woken by
events)."""


class StepError(Exception):
    """A step cannot go on; the message says why (logged, and in /status)."""


async def up_until_serving(
    compose: ComposePort, harbor: HarborProbePort, wake: Pulse, timeout_s: float
) -> None:
    """``compose up``, then wait until Harbor serves through this node's own proxy (core's
    ping, the registry's /v2/) with its containers up (the driver bounds the wait)."""
    started = time.monotonic()
    await compose.up(timeout_s)
    while True:
        # Mark BEFORE the check: an event arriving during a (slow) check must trigger the
        # next check at once, not cost a full HEALTH_POLL_S (measured by bench/failover.py:
        # up to 1 s between the last container healthy and MASTER).
        mark = wake.mark()
        report = await harbor.serving()
        if report.healthy:
            log.info("harbor_serving", duration_s=round(time.monotonic() - started, 3))
            return
        await wake.wait(mark, HEALTH_POLL_S)


class Steps:
    """Runs one step by name.  Owns two facts: the device of the current mapping, and Harbor's
    health as the start step saw it (True once healthy, None once the stop step ran)."""

    def __init__(
        self,
        settings: Settings,
        *,
        ceph: CephPort,
        fs: FilesystemPort,
        compose: ComposePort,
        harbor: HarborProbePort,
        metrics: Metrics,
        wake: Pulse,
        leasing: Leasing,
        vip_present: Callable[[], Awaitable[bool]] | None = None,
        shared: SharedSteps | None = None,
    ) -> None:
        self._shared = shared  # the shared mode: its steps run instead (daemon/shared_steps)
        self._vip_present = vip_present
        self._s = settings
        self._ceph = ceph
        self._fs = fs
        self._compose = compose
        self._harbor = harbor
        self._metrics = metrics
        self._wake = wake
        self._leasing = leasing
        self._device: str | None = None
        self._harbor_healthy: bool | None = None

    # ------------------------------------------------------------- views
    @property
    def device(self) -> str | None:
        """The mapped device, as the map step (or reconcile, via ``adopt``) found it."""
        return self._device

    @property
    def harbor_healthy(self) -> bool | None:
        if self._shared is not None:
            return self._shared.harbor_healthy
        return self._harbor_healthy

    def lease_view(self) -> dict[str, object]:
        """The lease as this node knows it (the lease step's and the renewals' owner)."""
        return self._leasing.view()

    def adopt(self, device: str | None) -> None:
        """Reconcile found the image mapped at ``device`` (or not mapped)."""
        self._device = device

    def timeout(self, step: Step) -> float:
        if self._shared is not None:
            return self._shared.timeout(step)
        s = self._s
        return {
            Step.LEASE: self._leasing.timeout_s(),
            Step.FENCE: s.fence_timeout_s,
            Step.MAP: s.map_timeout_s,
            Step.MOUNT: s.fsck_timeout_s + s.mount_timeout_s,
            Step.START: s.start_timeout_s,
            Step.STOP: s.stop_timeout_s,
            Step.UNMOUNT: s.unmount_timeout_s,
            Step.UNMAP: s.unmap_timeout_s,
        }[step]

    async def run(self, step: Step) -> None:
        if self._shared is not None:
            await self._shared.run(step)
            return
        await {
            Step.LEASE: self._leasing.take,
            Step.FENCE: self.fence,
            Step.MAP: self.map,
            Step.MOUNT: self.mount,
            Step.START: self.start,
            Step.STOP: self.stop,
            Step.UNMOUNT: self.unmount,
            Step.UNMAP: self.unmap,
        }[step]()

    # ---------------------------------------------------------- promotion
    async def fence(self) -> None:
        """Safety rule 1: blocklist every other watcher of the image before mapping it.

        Only while this node holds the VIP: a MASTER line without the VIP (replayed by the
        FIFO, or stray) must not fence a peer that is serving."""
        if self._vip_present is not None and not await self._vip_confirmed():
            self._metrics.fencing_actions.labels("refused").inc()
            raise StepError(
                f"VIP {self._s.vip} not on {self._s.interface} after {VIP_CONFIRM_S:g} s: "
                "refusing to fence the peer on a keepalived line alone"
            )
        holder = self._leasing.stale
        add = self._leasing.lease.blocklist_add  # through the lease agent (CLI if it fails)
        if holder is None:
            last = self._leasing.last_holder()
            also = (last.address,) if last is not None and last.address else ()
            self._count(await self._fenced(self._ceph.fence(also=also, add=add)))
            return
        # The lease step found a holder that stopped renewing: fence its lease client with
        # the image's watchers; once that is confirmed it can never renew, so its lock is
        # broken and the lease taken at once.  Unconfirmed: fence the watchers, wait for the
        # holder's lock to lapse (docs/design.md, "The lease").
        try:
            listed = self._leasing.lease.blocklisted
            self._count(await self._ceph.fence(also=(holder.address,), listed=listed, add=add))
        except Exception as exc:
            self._metrics.fencing_actions.labels("failed").inc()
            log.warning("lease_holder_fence_unconfirmed", address=holder.address, error=str(exc))
            self._count(await self._fenced(self._ceph.fence(add=add)))
            await self._leasing.wait_for_lapse(holder)
        else:
            await self._leasing.take_over(holder)
        raise StepOutcome(Event.LEASE_TAKEN, f"fenced {holder.cookie} and took its lease")

    async def _fenced(self, fencing: Awaitable[list[str]]) -> list[str]:
        try:
            return await fencing
        except Exception:
            self._metrics.fencing_actions.labels("failed").inc()
            raise

    def _count(self, fenced: list[str]) -> None:
        self._metrics.fencing_actions.labels("added").inc(len(fenced))

    async def _vip_confirmed(self) -> bool:
        assert self._vip_present is not None
        deadline = time.monotonic() + VIP_CONFIRM_S
        while True:
            try:
                if await self._vip_present():
                    return True
            except Exception as exc:  # cannot tell: do not fence on a guess
                log.warning("fence_vip_check_failed", error=str(exc))
            if time.monotonic() >= deadline:
                log.warning("fence_refused_no_vip", vip=self._s.vip, interface=self._s.interface)
                return False
            await asyncio.sleep(0.1)

    async def map(self) -> None:
        device = await self._ceph.map(self._s.map_timeout_s)
        self._device = device
        log.info("mapped", device=device, image=self._s.image_spec)

    async def _mapped_device(self) -> str:
        device = self._device or await self._ceph.device_for_image()
        if device is None:
            raise StepError(f"image {self._s.image_spec} is not mapped on this node")
        self._device = device
        return device

    async def mount(self) -> None:
        device = await self._mapped_device()
        if self._fs.is_mounted_from(device):
            log.info("already_mounted", device=device, mountpoint=str(self._s.mountpoint))
            return
        fstype = await self._fs.probe_filesystem(device)
        if fstype is None:
            raise StepError(
                f"{device} holds no filesystem; refusing to format it (safety rule 3): "
                "an operator formats a new image with `harbor-ha format`"
            )
        if fstype != self._s.fs_type:
            raise StepError(f"{device} holds {fstype}, expected {self._s.fs_type}")
        await self._fs.guard()
        await self._fs.fsck(device, self._s.fsck_timeout_s)  # raises on exit >= 4
        await self._fs.mount(device, self._s.mount_timeout_s)
        if not self._fs.is_mounted_from(device):
            raise StepError(f"{self._s.mountpoint} is not mounted from {device} after mount")

    async def start(self) -> None:
        """Safety rule 5: Harbor starts only on the verified mount.  Done when Harbor serves
        through this node's own proxy (core's ping, the registry's /v2/) with its containers
        up: not when Docker's 30 s healthcheck cadence reports them healthy."""
        device = await self._mapped_device()
        if not self._fs.is_mounted_from(device):
            raise StepError(
                f"refusing to start Harbor: {self._s.mountpoint} is not mounted from {device}"
            )
        await up_until_serving(self._compose, self._harbor, self._wake, self._s.start_timeout_s)
        self._harbor_healthy = True

    # ----------------------------------------------------------- demotion
    async def stop(self) -> None:
        """compose down, not stop: Harbor's services have `restart: always`, and a stopped
        container comes back when dockerd restarts, on a node without the data mount."""
        self._harbor_healthy = None
        await self._compose.down(self._s.stop_timeout_s)

    async def unmount(self) -> None:
        await self._fs.unmount(self._s.unmount_timeout_s, self._s.unmount_term_grace_s)

    async def unmap(self) -> None:
        await self._ceph.unmap(self._s.unmap_timeout_s)
        self._device = None
        log.info("unmapped", image=self._s.image_spec)
        await self._leasing.release()
