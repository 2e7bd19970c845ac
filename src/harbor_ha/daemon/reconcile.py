"""Safety rule 8: at start, look at the node itself, never at a remembered state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from harbor_ha.machine import Facts

from .ports import CephPort, ComposePort, FilesystemPort, SharedFilesystemPort

log = structlog.get_logger("harbor_ha.daemon")


@dataclass(frozen=True)
class Observed:
    facts: Facts
    device: str | None  # the image's device if mapped here (handed to the steps, its owner)


async def observe(
    *,
    vip_present: Callable[[], Awaitable[bool]],
    ceph: CephPort,
    fs: FilesystemPort,
    compose: ComposePort,
    occupied: Callable[[], bool],
    lease_peer: Callable[[], Awaitable[bool]],
    promised_s: float = 0.0,
) -> Observed:
    """``occupied()``: is anything at all mounted at the mountpoint (ours or foreign);
    ``lease_peer()``: does another node hold the lease (the machine never adopts MASTER then);
    ``promised_s``: what is left of a failsafe promise given before this start."""
    try:
        vip = await vip_present()
    except Exception as exc:
        log.warning("reconcile_vip_unknown", error=str(exc))
        vip = False
    device = await ceph.device_for_image()
    mounted = device is not None and fs.is_mounted_from(device)
    try:
        # Only the data-bearing services count: a warm standby runs the stateless ones.
        running = bool(await compose.running_data_containers())
    except Exception as exc:
        log.warning("reconcile_containers_unknown", error=str(exc))
        running = False
    peer = await lease_peer()
    facts = Facts(
        vip=vip,
        mapped=device is not None,
        mounted=mounted,
        harbor_running=running,
        mount_foreign=occupied() and not mounted,
        lease_peer=peer,
        promised_s=promised_s,
    )
    log.info(
        "reconcile_facts",
        vip=vip,
        device=device,
        mounted=mounted,
        harbor_running=running,
        mount_foreign=facts.mount_foreign,
        lease_peer=peer,
        promised_s=round(promised_s, 3),
    )
    return Observed(facts, device)


async def observe_replicated(
    *,
    vip_present: Callable[[], Awaitable[bool]],
    compose: ComposePort,
    peer_state: Callable[[], Awaitable[str | None]],
) -> Observed:
    """The replicated mode's facts: the VIP, whether Harbor runs here (any container of the
    project: both nodes run the whole Harbor) and whether the peer says it is MASTER
    (``peer_state``: its /status, bounded; None when it does not answer).  No image, no
    lease, no mount."""
    try:
        vip = await vip_present()
    except Exception as exc:
        log.warning("reconcile_vip_unknown", error=str(exc))
        vip = False
    try:
        running = bool(await compose.running_containers())
    except Exception as exc:
        log.warning("reconcile_containers_unknown", error=str(exc))
        running = False
    peer = await peer_state()
    facts = Facts(vip=vip, mapped=False, mounted=False, harbor_running=running,
                  peer_master=peer == "MASTER")  # fmt: skip
    log.info("reconcile_facts", mode="replicated", vip=vip, harbor_running=running, peer_state=peer)
    return Observed(facts, None)


async def observe_shared(*, fs: SharedFilesystemPort, compose: ComposePort) -> Observed:
    """The shared mode's facts: the configured filesystem mounted here (mountinfo: type and
    source; always, for the object-storage variant), something else mounted there, Harbor's
    containers running.  No VIP, no image, no lease."""
    found, _why = fs.problem()
    mounted = found == "OURS" or not fs.mounts
    try:
        running = bool(await compose.running_containers())
    except Exception as exc:
        log.warning("reconcile_containers_unknown", error=str(exc))
        running = False
    facts = Facts(vip=False, mapped=False, mounted=mounted, harbor_running=running,
                  mount_foreign=found in ("FOREIGN", "READ_ONLY"))  # fmt: skip
    log.info("reconcile_facts", mode="shared", mount=found, harbor_running=running)
    return Observed(facts, None)
