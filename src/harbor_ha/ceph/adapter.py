"""The Ceph adapter the daemon holds: the image, its watchers, fencing, the block device.

Everything goes through the ``rbd`` and ``ceph`` CLIs (``--format json``), via
the injected :class:`~harbor_ha.runner.Runner`, each with a timeout; the
command lines are built in :mod:`harbor_ha.ceph.argv` and the outputs parsed in
:mod:`harbor_ha.ceph.parse`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import structlog

from harbor_ha.ceph import argv
from harbor_ha.ceph.access import check_access
from harbor_ha.ceph.errors import (
    CephError,
    CephUnreachable,
    DeviceBusy,
    FenceError,
    LockHeld,
    MapFailed,
    UnmapFailed,
)
from harbor_ha.ceph.parse import (
    MappedDevice,
    Watcher,
    classify,
    is_client_address,
    lock_held,
    parse_blocklist,
    parse_device_list,
    parse_image_info,
    parse_lock_owners,
    parse_mapped_device,
    parse_watchers,
)
from harbor_ha.runner import CommandError, CommandNotFound, CommandTimeout, Runner
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.ceph")

FENCE_POLL_S = 0.25
"""Period of the `rbd status` poll while waiting for fenced watchers to disappear."""


class Ceph:
    """The image ``settings.ceph_pool/settings.ceph_image`` and this node's view of it."""

    def __init__(self, settings: Settings, runner: Runner) -> None:
        self._s = settings
        self._runner = runner
        if settings.ceph_keyring is None and settings.ceph_user_key is not None:
            raise CephError(
                "ceph_user_key is set: write_keyring() and set ceph_keyring to its path"
            )

    # ---------------------------------------------------------- argv
    def common_args(self) -> list[str]:
        """--id, -m, -c and --keyring as configured (same for rbd and ceph)."""
        return argv.common_args(self._s)

    def rbd_argv(self, *args: str) -> list[str]:
        return argv.rbd_argv(self._s, *args)

    def ceph_argv(self, *args: str) -> list[str]:
        return argv.ceph_argv(self._s, *args)

    async def _run(self, argv: Sequence[str], what: str, timeout_s: float | None) -> str:
        timeout = timeout_s if timeout_s is not None else self._s.command_timeout_s
        try:
            result = await self._runner.run(argv, timeout_s=timeout)
        except CommandTimeout as exc:
            raise CephUnreachable(f"{what}: no answer within {timeout:g} s") from exc
        except CommandNotFound as exc:
            raise CephError(f"{what}: {exc}") from exc
        except CommandError as exc:
            raise CephError(f"{what}: {exc}") from exc
        if not result.ok:
            raise classify(result, what)
        return result.stdout

    # ---------------------------------------------------------- image
    async def image_info(self, *, timeout_s: float | None = None) -> dict[str, Any]:
        """`rbd info POOL/IMAGE --format json` as a dict (features, size, ...)."""
        what = f"rbd info {self._s.image_spec}"
        out = await self._run(
            self.rbd_argv("info", self._s.image_spec, "--format", "json"), what, timeout_s
        )
        return parse_image_info(out, what)

    async def watchers(self, *, timeout_s: float | None = None) -> list[Watcher]:
        """Current watchers of the image (`rbd status --format json`)."""
        what = f"rbd status {self._s.image_spec}"
        out = await self._run(
            self.rbd_argv("status", self._s.image_spec, "--format", "json"), what, timeout_s
        )
        return parse_watchers(out)

    async def lock_owners(self, *, timeout_s: float | None = None) -> list[str]:
        """Addresses owning the image's exclusive lock (`rbd lock ls --format json`)."""
        what = f"rbd lock ls {self._s.image_spec}"
        out = await self._run(
            self.rbd_argv("lock", "ls", self._s.image_spec, "--format", "json"), what, timeout_s
        )
        return parse_lock_owners(out)

    # ---------------------------------------------------------- blocklist
    async def blocklist_add(
        self, address: str, expire_s: int, *, timeout_s: float | None = None
    ) -> None:
        """`ceph osd blocklist add ADDRESS EXPIRE_S` (exact client address only)."""
        if not is_client_address(address):
            raise FenceError(f"refusing to blocklist {address!r}: not an exact IP:PORT/NONCE")
        await self._run(
            self.ceph_argv("osd", "blocklist", "add", address, str(int(expire_s))),
            f"ceph osd blocklist add {address}",
            timeout_s,
        )

    async def blocklist_ls(self, *, timeout_s: float | None = None) -> list[str]:
        """Addresses currently blocklisted (`ceph osd blocklist ls -f json`)."""
        out = await self._run(
            self.ceph_argv("osd", "blocklist", "ls", "-f", "json"),
            "ceph osd blocklist ls",
            timeout_s,
        )
        return parse_blocklist(out)

    async def fence(
        self,
        *,
        exclude: Collection[str] = (),
        also: Collection[str] = (),
        listed: Callable[[], Awaitable[list[str]]] | None = None,
        add: Callable[[Sequence[str], int], Awaitable[None]] | None = None,
        timeout_s: float | None = None,
    ) -> list[str]:
        """Blocklist every watcher of the image not in ``exclude``; wait until they are gone.
        The owner of the image's exclusive lock is blocklisted too, watching or not: an OSD
        drops a silent client's watch after ~30 s, and a fence that runs later must still
        cut the client that holds the image (krbd's own lock break would blocklist it only
        with Ceph's default expiry).  ``also``: more client addresses to blocklist (a
        stopped lease holder's client, the last lease holder seen).  Those and the lock's
        owner are confirmed in the blocklist before this returns (``listed``: what lists it, by
        default ``ceph osd blocklist ls``; the lease step passes its agent's monitor call).
        ``add``: what adds the entries, all in one call (the fence step passes its lease
        agent's monitor calls, sent at once: one monitor commit for all, instead of a `ceph`
        process each); if it fails, every entry is added once more with ``ceph osd blocklist
        add`` (a new Ceph session; an entry added twice only has its expiry renewed).

        Returns the fenced addresses (empty: nobody else watched the image).
        Bounded by ``timeout_s`` (default settings.fence_timeout_s) in total;
        raises FenceError if the watchers are still there at the deadline.
        """
        total = timeout_s if timeout_s is not None else self._s.fence_timeout_s
        deadline = time.monotonic() + total
        image = self._s.image_spec
        current, owners = await asyncio.gather(
            self.watchers(timeout_s=self._left(deadline)),
            self.lock_owners(timeout_s=self._left(deadline)),
        )
        targets: list[str] = []
        for w in current:
            if w.address in exclude:
                log.info("fence_skip_excluded", image=image, address=w.address)
                continue
            if not is_client_address(w.address):
                raise FenceError(f"watcher address {w.address!r} of {image} is not IP:PORT/NONCE")
            if w.address not in targets:
                targets.append(w.address)
        owned = [a for a in owners if a not in targets and a not in exclude]
        for address in owned:
            if not is_client_address(address):
                raise FenceError(f"lock owner address {address!r} of {image} is not IP:PORT/NONCE")
        extra = [a for a in dict.fromkeys([*owned, *also]) if a not in targets]
        for address in extra:
            if not is_client_address(address):
                raise FenceError(f"lease holder address {address!r} is not IP:PORT/NONCE")
        if not targets and not extra:
            log.info("fence_nothing", image=image, watchers=len(current))
            return []
        # Each commit of the monitor's takes the entries that arrived for it: add them all
        # at once, or the second waits for the next proposal (paxos_propose_interval).
        await self._add_all([*targets, *extra], deadline, add)
        for address in (*targets, *extra):
            log.warning(
                "fenced", image=image, address=address, expire_s=self._s.blocklist_expire_s,
                what="watcher" if address in targets
                else "lock owner" if address in owned else "lease holder",
            )  # fmt: skip
        # The extra addresses' confirmation runs beside the wait for the watchers to go (two
        # CLI processes at once instead of one after the other, ~0.3 s less on a failover).
        confirm = asyncio.create_task(self._confirm_blocklisted(extra, deadline, listed))
        try:
            await self._watchers_gone(targets, deadline, total)
        except BaseException:
            confirm.cancel()
            await asyncio.wait({confirm})
            raise
        await confirm  # its FenceError, if the holder's address is not in the blocklist
        log.info("fence_done", image=image, fenced=[*targets, *extra])
        return [*targets, *extra]

    async def _add_all(
        self,
        addresses: Sequence[str],
        deadline: float,
        add: Callable[[Sequence[str], int], Awaitable[None]] | None,
    ) -> None:
        """Blocklist ``addresses`` (their form checked by ``fence``) through ``add``, or the
        CLI (one process each, all at once)."""
        expire = self._s.blocklist_expire_s
        if add is not None:
            try:
                async with asyncio.timeout(self._left(deadline)):
                    await add(addresses, expire)
                return
            except Exception as exc:  # the CLI tries once more, through a new Ceph session
                log.warning(
                    "blocklist_add_retry_cli", addresses=list(addresses),
                    error=str(exc) or repr(exc),
                )  # fmt: skip
        await asyncio.gather(
            *(self.blocklist_add(a, expire, timeout_s=self._left(deadline)) for a in addresses)
        )

    async def _confirm_blocklisted(
        self,
        addresses: list[str],
        deadline: float,
        listed: Callable[[], Awaitable[list[str]]] | None,
    ) -> None:
        if not addresses:
            return
        if listed is None:
            seen = set(await self.blocklist_ls(timeout_s=self._left(deadline)))
        else:
            async with asyncio.timeout(self._left(deadline)):
                seen = set(await listed())
        missing = [a for a in addresses if a not in seen]
        if missing:
            raise FenceError(f"blocklisted {missing} not in the blocklist")

    async def _watchers_gone(self, targets: list[str], deadline: float, total: float) -> None:
        image = self._s.image_spec
        while True:
            remaining = {w.address for w in await self.watchers(timeout_s=self._left(deadline))}
            still = [a for a in targets if a in remaining]
            if not still:
                return
            if time.monotonic() + FENCE_POLL_S >= deadline:
                raise FenceError(
                    f"blocklisted watchers {still} of {image} still present after {total:g} s"
                )
            await asyncio.sleep(FENCE_POLL_S)

    @staticmethod
    def _left(deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FenceError("fence deadline passed")
        return left

    # ---------------------------------------------------------- devices
    async def mapped(self, *, timeout_s: float | None = None) -> list[MappedDevice]:
        """Every RBD device mapped on this node (`rbd device list --format json`)."""
        out = await self._run(
            self.rbd_argv("device", "list", "--format", "json"), "rbd device list", timeout_s
        )
        return parse_device_list(out)

    async def device_for_image(self, *, timeout_s: float | None = None) -> str | None:
        """The /dev path our image (no snapshot) is mapped at on this node, or None."""
        devices = await self._image_devices(timeout_s=timeout_s)
        if len(devices) > 1:
            log.warning(
                "image_mapped_twice", image=self._s.image_spec, devices=[d.device for d in devices]
            )
        return devices[0].device if devices else None

    async def _image_devices(self, *, timeout_s: float | None = None) -> list[MappedDevice]:
        return [
            d
            for d in await self.mapped(timeout_s=timeout_s)
            if d.pool == self._s.ceph_pool
            and d.name == self._s.ceph_image
            and d.namespace == ""
            and d.snap in ("-", "")
        ]

    def map_options(self) -> str:
        """``exclusive`` plus settings.rbd_map_options (default osd_request_timeout=60,noshare)."""
        extra = self._s.rbd_map_options.strip(",")
        return f"exclusive,{extra}" if extra else "exclusive"

    async def map(self, timeout_s: float) -> str:
        """Map the image with the exclusive lock (and rbd_map_options); idempotent.

        Returns the /dev path."""
        deadline = time.monotonic() + timeout_s
        image = self._s.image_spec
        existing = await self.device_for_image(timeout_s=_remaining(deadline, "map", MapFailed))
        if existing is not None:
            log.info("map_already_mapped", image=image, device=existing)
            return existing
        what = f"rbd device map {image}"
        try:
            out = await self._run(
                self.rbd_argv("device", "map", "-o", self.map_options(), image),
                what,
                _remaining(deadline, "map", MapFailed),
            )
        except CephError as exc:
            if type(exc) is CephError and lock_held(str(exc)):
                log.warning("map_lock_held", image=image, error=str(exc))
                raise LockHeld(
                    f"{exc} (a live peer holds the exclusive lock: fence it before mapping)"
                ) from exc
            if type(exc) is CephError:
                raise MapFailed(str(exc)) from exc
            raise
        device = parse_mapped_device(out)
        verified = await self.device_for_image(timeout_s=_remaining(deadline, "map", MapFailed))
        if not device.startswith("/dev/") or verified != device:
            raise MapFailed(
                f"{what}: printed {device!r} but rbd device list shows {verified!r} for {image}"
            )
        log.info("mapped", image=image, device=device)
        return device

    async def unmap(self, timeout_s: float) -> None:
        """Unmap every device of the image (then with -o force); idempotent.

        Raises UnmapFailed if the image is still mapped afterwards, or if that cannot be
        verified (the demotion must then end FENCED_SELF, never claim a clean node).
        """
        deadline = time.monotonic() + timeout_s
        image = self._s.image_spec
        devices = await self._image_devices(timeout_s=_remaining(deadline, "unmap", UnmapFailed))
        if not devices:
            log.info("unmap_not_mapped", image=image)
            return
        for dev in devices:
            try:
                await self._run(
                    self.rbd_argv("device", "unmap", dev.device),
                    f"rbd device unmap {dev.device}",
                    _remaining(deadline, "unmap", UnmapFailed),
                )
                log.info("unmapped", image=image, device=dev.device)
                continue
            except CephError as exc:
                log.warning(
                    "unmap_failed_forcing",
                    image=image,
                    device=dev.device,
                    reason="busy" if isinstance(exc, DeviceBusy) else type(exc).__name__,
                    error=str(exc),
                )
            try:
                await self._run(
                    self.rbd_argv("device", "unmap", "-o", "force", dev.device),
                    f"rbd device unmap -o force {dev.device}",
                    _remaining(deadline, "unmap", UnmapFailed),
                )
                log.warning("unmapped_forced", image=image, device=dev.device)
            except CephError as exc:
                log.error("unmap_force_failed", image=image, device=dev.device, error=str(exc))
        try:
            left = await self._image_devices(timeout_s=max(deadline - time.monotonic(), 1.0))
        except CephError as exc:  # e.g. the device list timed out after a forced unmap hung
            raise UnmapFailed(f"{image}: cannot verify the unmap: {exc}") from exc
        if left:
            raise UnmapFailed(f"{image} still mapped at {[d.device for d in left]}")

    # ---------------------------------------------------------- preflight
    async def check_access(self) -> list[str]:
        """Preflight: every problem that would stop a promotion (see :func:`access.check_access`).

        Empty list = all good.
        """
        return await check_access(self, self._s)


def _remaining(deadline: float, what: str, error: type[CephError] = CephUnreachable) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise error(f"{what}: step timeout exhausted")
    return left
