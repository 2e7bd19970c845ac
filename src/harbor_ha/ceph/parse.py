"""What the rbd and ceph CLIs print, parsed (pure: no I/O).

``rbd status``, ``rbd device list`` and ``ceph osd blocklist ls`` (all JSON),
the device ``rbd device map`` prints, exact client addresses, and a failed
command's stderr mapped to a named error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from harbor_ha.ceph.errors import (
    CephBlocklisted,
    CephError,
    CephPermissionDenied,
    CephUnreachable,
    DeviceBusy,
    ImageNotFound,
)
from harbor_ha.runner import CommandResult

_ADDRESS = re.compile(r"^(?:v[12]:)?(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d+/\d+$")


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


def parse_watchers(text: str) -> list[Watcher]:
    """Parse `rbd status --format json`: {"watchers": [{address, client, cookie}, ...]}."""
    data = loads_json(text, "rbd status")
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


def parse_lock_owners(text: str) -> list[str]:
    """Parse `rbd lock ls --format json`: the addresses of the image's lockers (the
    exclusive lock's owner: a client that maps the image holds it, with or without a watch)."""
    data = loads_json(text, "rbd lock ls")
    if isinstance(data, dict):  # {"locker id": {...}} in older releases
        data = list(data.values())
    if not isinstance(data, list):
        raise CephError(f"rbd lock ls: unexpected JSON: {text[:200]!r}")
    out = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("address"), str):
            raise CephError(f"rbd lock ls: bad locker entry {item!r}")
        out.append(item["address"])
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
    data = loads_json(text, "rbd device list")
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


def loads_json(text: str, what: str) -> Any:
    """``text`` as JSON; CephError naming ``what`` when it is not JSON."""
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


def lock_held(message: str) -> bool:
    """krbd's answer to a map while a live peer holds the lock: EROFS (30)."""
    text = message.lower()
    return "(30)" in text or "read-only file system" in text


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


def parse_image_info(text: str, what: str) -> dict[str, Any]:
    """Parse `rbd info --format json`: one JSON object (features, size, ...)."""
    data = loads_json(text, what)
    if not isinstance(data, dict):
        raise CephError(f"{what}: unexpected JSON: {text[:200]!r}")
    return data


def parse_mapped_device(text: str) -> str:
    """The device `rbd device map` printed: its last non-empty line ("" if none)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
