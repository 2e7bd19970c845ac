"""The preflight's proof that the Ceph user may do what a promotion needs.

:func:`check_access` proves that the user may really add blocklist entries by
adding one for ``192.0.2.1:0/1`` (RFC 5737 TEST-NET-1: no Ceph client can have
that address) with a 60 s expiry; this is harmless and the entry lapses by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from harbor_ha.ceph.errors import CephError, CephUnreachable, ImageNotFound
from harbor_ha.settings import Settings

if TYPE_CHECKING:
    from harbor_ha.ceph.adapter import Ceph

log = structlog.get_logger("harbor_ha.ceph")

ACCESS_PROBE_ADDRESS = "192.0.2.1:0/1"
"""Blocklisted by check_access() to prove the `add` permission: TEST-NET-1, never a client."""
ACCESS_PROBE_EXPIRE_S = 60


async def check_access(ceph: Ceph, settings: Settings) -> list[str]:
    """Every problem that would stop a promotion, as human-readable lines (empty: all good).

    Checks: Ceph reachable; image exists and has exclusive-lock; its status
    (watchers) readable; `ceph osd blocklist ls` allowed; and `add` allowed,
    proven by blocklisting the harmless TEST-NET-1 address 192.0.2.1:0/1
    for 60 s (never a real client).
    """
    image = settings.image_spec
    problems: list[str] = []
    try:
        info = await ceph.image_info()
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
            await ceph.watchers()
        except CephError as exc:
            problems.append(f"cannot read the status (watchers) of {image}: {exc}")
    caps_hint = "mon caps need 'profile rbd, allow command \"osd blocklist\"'"
    try:
        await ceph.blocklist_ls()
    except CephUnreachable as exc:
        problems.append(f"Ceph unreachable: {exc}")
        return problems
    except CephError as exc:
        problems.append(f"user client.{settings.ceph_user} cannot list the blocklist: {exc}")
    try:
        await ceph.blocklist_add(ACCESS_PROBE_ADDRESS, ACCESS_PROBE_EXPIRE_S)
    except CephError as exc:
        problems.append(
            f"user client.{settings.ceph_user} cannot add blocklist entries ({caps_hint}): {exc}"
        )
    for p in problems:
        log.warning("ceph_access_problem", problem=p)
    if not problems:
        log.info("ceph_access_ok", image=image, user=settings.ceph_user)
    return problems
