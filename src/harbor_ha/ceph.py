"""Ceph adapter: the RBD image, its watchers, fencing by blocklist, and the block device.

Everything goes through the ``rbd`` and ``ceph`` CLIs (``--format json``), via
the injected :class:`~harbor_ha.runner.Runner`, each with a timeout.  Every
command carries the common arguments: ``--id USER``, ``-m MON_HOST`` (if set),
``-c CONF`` (if set) and ``--keyring PATH`` (``settings.ceph_keyring``, else the
keyring the daemon wrote once at start with :func:`write_keyring` from
``settings.ceph_user_key``).  The key itself never appears in an argv.

Safety rule 1 (DESIGN.md): fence before map.  :meth:`Ceph.fence` blocklists
every other watcher of the image by its exact ``IP:PORT/NONCE`` address (never
a bare IP: on a shared host that would fence every client), with
``settings.blocklist_expire_s``, and waits until those watchers are gone; then
:meth:`Ceph.map` maps with ``-o exclusive``.

There is NO blocklist removal in this module, on purpose: the product never
runs ``ceph osd blocklist rm``.  The predecessor removed its entry right after
mounting, so a paused old master could write again (two ext4 mounts, data
corruption).  Entries lapse by themselves after ``blocklist_expire_s``.  Note
that the documented caps (``allow command "osd blocklist"``) would let the user
run ``rm``: the guarantee is this code, pinned by a test that records every argv.

:meth:`Ceph.check_access` (the preflight) proves that the user may really add
blocklist entries by adding one for ``192.0.2.1:0/1`` (RFC 5737 TEST-NET-1: no
Ceph client can have that address) with a 60 s expiry; this is harmless and
the entry lapses by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from harbor_ha.runner import CommandError, CommandNotFound, CommandResult, CommandTimeout, Runner
from harbor_ha.settings import Settings

log = structlog.get_logger(__name__)

ACCESS_PROBE_ADDRESS = "192.0.2.1:0/1"
"""Blocklisted by check_access() to prove the `add` permission: TEST-NET-1, never a client."""
ACCESS_PROBE_EXPIRE_S = 60
FENCE_POLL_S = 0.25
"""Period of the `rbd status` poll while waiting for fenced watchers to disappear."""

_ADDRESS = re.compile(r"^(?:v[12]:)?(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d+/\d+$")


# ------------------------------------------------------------------ errors
class CephError(Exception):
    """Base of the Ceph adapter's errors."""


class CephUnreachable(CephError):
    """No monitor answered within the timeout (or the cluster connection failed)."""


class CephPermissionDenied(CephError):
    """The Ceph user lacks a capability (or its key is wrong)."""


class ImageNotFound(CephError):
    """The pool or the image does not exist."""


class CephBlocklisted(CephError):
    """This client is blocklisted (EBLOCKLISTED / ESHUTDOWN): it must stop and unmap."""


class FenceError(CephError):
    """Fencing could not be completed (bad address, or watchers still present at the deadline)."""


class DeviceBusy(CephError):
    """The device is in use (EBUSY, 16): krbd refuses a plain unmap of a mounted /dev/rbdN."""


class MapFailed(CephError):
    """`rbd device map` failed or its result could not be verified."""


class LockHeld(MapFailed):
    """The map failed because a live peer holds the image's exclusive lock.

    krbd answers a ``-o exclusive`` map (and, since 6.1, a plain rw map) of an
    image whose lock a live client holds with EROFS (30) after ~2 s; its kernel
    log says "peer will not release lock".  The peer must be fenced first.
    """


class UnmapFailed(CephError):
    """The image is still mapped after unmap and forced unmap."""


# ------------------------------------------------------------------- types
@dataclass(frozen=True)
class Watcher:
    """One watcher of the image, as `rbd status` reports it."""

    address: str
    client: int | str
    cookie: int


@dataclass(frozen=True)
class MappedDevice:
    """One row of `rbd device list`."""

    id: str
    pool: str
    namespace: str
    name: str
    snap: str
    device: str


# ------------------------------------------------------------------ parsing
def parse_watchers(text: str) -> list[Watcher]:
    """Parse `rbd status --format json`: {"watchers": [{address, client, cookie}, ...]}."""
    data = _loads(text, "rbd status")
    if not isinstance(data, dict) or not isinstance(data.get("watchers", []), list):
        raise CephError(f"rbd status: unexpected JSON: {text[:200]!r}")
    out = []
    for item in data.get("watchers", []):
        try:
            out.append(
                Watcher(
                    address=str(item["address"]),
                    client=item["client"],
                    cookie=int(item["cookie"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CephError(f"rbd status: bad watcher entry {item!r}") from exc
    return out


def parse_blocklist(text: str) -> list[str]:
    """Parse `ceph osd blocklist ls -f json`.

    Pacific prints two JSON arrays back to back (``[...][...]``: the address
    entries, then the range entries); every ``addr`` of every array is returned.
    """
    decoder = json.JSONDecoder()
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise CephError(f"ceph osd blocklist ls: bad JSON at {pos}: {text[:200]!r}") from exc
        if not isinstance(value, list):
            raise CephError(f"ceph osd blocklist ls: expected arrays, got {value!r}")
        for item in value:
            if isinstance(item, dict) and "addr" in item:
                out.append(str(item["addr"]))
            elif isinstance(item, dict) and "range" in item:
                out.append(str(item["range"]))
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def parse_device_list(text: str) -> list[MappedDevice]:
    """Parse `rbd device list --format json`: [{id, pool, namespace, name, snap, device}]."""
    if not text.strip():
        return []
    data = _loads(text, "rbd device list")
    if not isinstance(data, list):
        raise CephError(f"rbd device list: unexpected JSON: {text[:200]!r}")
    out = []
    for item in data:
        try:
            out.append(
                MappedDevice(
                    id=str(item["id"]),
                    pool=str(item["pool"]),
                    namespace=str(item.get("namespace", "")),
                    name=str(item["name"]),
                    snap=str(item.get("snap", "-")),
                    device=str(item["device"]),
                )
            )
        except (KeyError, TypeError) as exc:
            raise CephError(f"rbd device list: bad entry {item!r}") from exc
    return out


def _loads(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CephError(f"{what}: not JSON: {text[:200]!r}") from exc


def is_client_address(address: str) -> bool:
    """True for an exact client address ``IP:PORT/NONCE`` with a non-zero nonce.

    A nonce of 0 (``IP:0/0``) is what Ceph makes of a bare IP: it matches every
    client on that host, so fencing must never use it.
    """
    if not _ADDRESS.match(address):
        return False
    return address.rsplit("/", 1)[1] != "0"


def classify(result: CommandResult, what: str) -> CephError:
    """Map a failed command's stderr/exit code to a named error with a clear message."""
    detail = (result.stderr.strip() or result.stdout.strip() or f"exit {result.returncode}")[-400:]
    text = detail.lower()
    msg = f"{what} failed: {detail}"
    if "(108)" in text or "blocklisted" in text or "blacklisted" in text:
        return CephBlocklisted(msg)
    if "(16)" in text or "device or resource busy" in text:
        return DeviceBusy(msg)
    if "no such file or directory" in text or "(2)" in text:
        return ImageNotFound(msg)
    if (
        "permission denied" in text
        or "access denied" in text
        or "eacces" in text
        or "operation not permitted" in text
        or "(13)" in text
        or "(1)" in text
    ):
        return CephPermissionDenied(msg)
    if "couldn't connect to the cluster" in text or "error connecting to the cluster" in text:
        # rbd exits with the errno: 13/1 = authentication refused, else not reachable.
        if result.returncode in (1, 13):
            return CephPermissionDenied(f"{msg} (authentication refused: check user and key)")
        return CephUnreachable(msg)
    if "timed out" in text or "(110)" in text or "connection refused" in text:
        return CephUnreachable(msg)
    return CephError(msg)


def write_keyring(settings: Settings, path: Path) -> Path:
    """Write a 0600 keyring for client.<ceph_user> from settings.ceph_user_key; return path.

    The daemon calls this once at start (path under settings.runtime_dir) and
    passes the path to :class:`Ceph`.  The file is created 0600 before the key
    is written, then atomically renamed into place.
    """
    if settings.ceph_user_key is None:
        raise CephError("ceph_user_key is not set: nothing to write")
    key = settings.ceph_user_key.get_secret_value().strip()
    if not key or any(c.isspace() for c in key):
        raise CephError("ceph_user_key is empty or contains whitespace")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, f"[client.{settings.ceph_user}]\n\tkey = {key}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    log.info("ceph_keyring_written", path=str(path), user=settings.ceph_user)
    return path


# ----------------------------------------------------------------- adapter
class Ceph:
    """The image ``settings.ceph_pool/settings.ceph_image`` and this node's view of it."""

    def __init__(self, settings: Settings, runner: Runner, *, keyring: Path | None = None) -> None:
        self._s = settings
        self._runner = runner
        self._keyring = settings.ceph_keyring or keyring
        if self._keyring is None and settings.ceph_user_key is not None:
            raise CephError("ceph_user_key is set: write_keyring() and pass its path as keyring")

    # ---------------------------------------------------------- argv
    def common_args(self) -> list[str]:
        """--id, -m, -c and --keyring as configured (same for rbd and ceph)."""
        args = ["--id", self._s.ceph_user]
        if self._s.ceph_mon_host:
            args += ["-m", self._s.ceph_mon_host]
        if self._s.ceph_conf is not None:
            args += ["-c", str(self._s.ceph_conf)]
        if self._keyring is not None:
            args += ["--keyring", str(self._keyring)]
        return args

    def rbd_argv(self, *args: str) -> list[str]:
        return [self._s.rbd_bin, *self.common_args(), *args]

    def ceph_argv(self, *args: str) -> list[str]:
        return [self._s.ceph_bin, *self.common_args(), *args]

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
        data = _loads(out, what)
        if not isinstance(data, dict):
            raise CephError(f"{what}: unexpected JSON: {out[:200]!r}")
        return data

    async def watchers(self, *, timeout_s: float | None = None) -> list[Watcher]:
        """Current watchers of the image (`rbd status --format json`)."""
        what = f"rbd status {self._s.image_spec}"
        out = await self._run(
            self.rbd_argv("status", self._s.image_spec, "--format", "json"), what, timeout_s
        )
        return parse_watchers(out)

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
        self, *, exclude: Collection[str] = (), timeout_s: float | None = None
    ) -> list[str]:
        """Blocklist every watcher of the image not in ``exclude``; wait until they are gone.

        Returns the fenced addresses (empty: nobody else watched the image).
        Bounded by ``timeout_s`` (default settings.fence_timeout_s) in total;
        raises FenceError if the watchers are still there at the deadline.
        """
        total = timeout_s if timeout_s is not None else self._s.fence_timeout_s
        deadline = time.monotonic() + total
        image = self._s.image_spec
        current = await self.watchers(timeout_s=self._left(deadline))
        targets: list[str] = []
        for w in current:
            if w.address in exclude:
                log.info("fence_skip_excluded", image=image, address=w.address)
                continue
            if not is_client_address(w.address):
                raise FenceError(f"watcher address {w.address!r} of {image} is not IP:PORT/NONCE")
            if w.address not in targets:
                targets.append(w.address)
        if not targets:
            log.info("fence_nothing", image=image, watchers=len(current))
            return []
        for address in targets:
            await self.blocklist_add(
                address, self._s.blocklist_expire_s, timeout_s=self._left(deadline)
            )
            log.warning(
                "fenced",
                image=image,
                address=address,
                expire_s=self._s.blocklist_expire_s,
            )
        while True:
            remaining = {w.address for w in await self.watchers(timeout_s=self._left(deadline))}
            still = [a for a in targets if a in remaining]
            if not still:
                log.info("fence_done", image=image, fenced=targets)
                return targets
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
            if type(exc) is CephError and _lock_held(str(exc)):
                log.warning("map_lock_held", image=image, error=str(exc))
                raise LockHeld(
                    f"{exc} (a live peer holds the exclusive lock: fence it before mapping)"
                ) from exc
            if type(exc) is CephError:
                raise MapFailed(str(exc)) from exc
            raise
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        device = lines[-1] if lines else ""
        verified = await self.device_for_image(timeout_s=_remaining(deadline, "map", MapFailed))
        if not device.startswith("/dev/") or verified != device:
            raise MapFailed(
                f"{what}: printed {device!r} but rbd device list shows {verified!r} for {image}"
            )
        log.info("mapped", image=image, device=device)
        return device

    async def unmap(self, timeout_s: float) -> None:
        """Unmap every device of the image (then with -o force); idempotent.

        Raises UnmapFailed if the image is still mapped afterwards.
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
        left = await self._image_devices(timeout_s=max(deadline - time.monotonic(), 1.0))
        if left:
            raise UnmapFailed(f"{image} still mapped at {[d.device for d in left]}")

    # ---------------------------------------------------------- preflight
    async def check_access(self) -> list[str]:
        """Preflight: every problem that would stop a promotion, as human-readable lines.

        Checks: Ceph reachable; image exists and has exclusive-lock; its status
        (watchers) readable; `ceph osd blocklist ls` allowed; and `add` allowed,
        proven by blocklisting the harmless TEST-NET-1 address 192.0.2.1:0/1
        for 60 s (never a real client).  Empty list = all good.
        """
        image = self._s.image_spec
        problems: list[str] = []
        try:
            info = await self.image_info()
        except CephUnreachable as exc:
            return [f"Ceph unreachable: {exc}"]
        except ImageNotFound as exc:
            problems.append(f"image {image} missing: {exc}")
        except CephError as exc:
            problems.append(f"cannot read image {image}: {exc}")
        else:
            features = info.get("features", [])
            if "exclusive-lock" not in features:
                problems.append(
                    f"image {image} lacks the exclusive-lock feature (has {features}): "
                    f"rbd feature enable {image} exclusive-lock"
                )
        if not any(p.startswith(f"image {image} missing") for p in problems):
            try:
                await self.watchers()
            except CephError as exc:
                problems.append(f"cannot read the status (watchers) of {image}: {exc}")
        caps_hint = "mon caps need 'profile rbd, allow command \"osd blocklist\"'"
        try:
            await self.blocklist_ls()
        except CephUnreachable as exc:
            problems.append(f"Ceph unreachable: {exc}")
            return problems
        except CephError as exc:
            problems.append(f"user client.{self._s.ceph_user} cannot list the blocklist: {exc}")
        try:
            await self.blocklist_add(ACCESS_PROBE_ADDRESS, ACCESS_PROBE_EXPIRE_S)
        except CephError as exc:
            problems.append(
                f"user client.{self._s.ceph_user} cannot add blocklist entries ({caps_hint}): {exc}"
            )
        for p in problems:
            log.warning("ceph_access_problem", problem=p)
        if not problems:
            log.info("ceph_access_ok", image=image, user=self._s.ceph_user)
        return problems


def _lock_held(message: str) -> bool:
    """krbd's answer to a map while a live peer holds the lock: EROFS (30)."""
    text = message.lower()
    return "(30)" in text or "read-only file system" in text


def _remaining(deadline: float, what: str, error: type[CephError] = CephUnreachable) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise error(f"{what}: step timeout exhausted")
    return left
