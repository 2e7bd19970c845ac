"""`harbor-ha check` for the lease: the agent runs, connects, and the caps allow the lock.

It takes and releases a lock on a probe object next to the lease (``<lease_object>.check``,
under the same name prefix, so the same caps cover it) with a 2 s duration: the live
lease is never touched.  It then reads the lease's holder, which needs only read caps.
"""

from __future__ import annotations

import time

from harbor_ha.runner import Runner
from harbor_ha.settings import Settings

from .client import system_python_has_rados
from .errors import LeaseError
from .lease import Lease


async def check_lease(settings: Settings, runner: Runner) -> tuple[list[str], list[str]]:
    """(problems, notes): problems block a takeover; notes say who holds the lease."""
    if not system_python_has_rados(settings.lease_agent_python):
        return [f"{settings.lease_agent_python} cannot import rados: install python3-rados"], []
    probe_settings = settings.model_copy(
        update={"lease_object": f"{settings.lease_object}.check", "lease_duration_s": 2}
    )
    probe, lease = Lease(probe_settings), Lease(settings)
    problems: list[str] = []
    notes: list[str] = []
    try:
        await probe.acquire()
        await probe.release()
        info = await lease.inspect()
    except LeaseError as exc:
        hint = (
            " (the user's osd caps must allow class-read/class-write on the lease object: "
            f"'allow rwx pool={settings.ceph_pool} object_prefix {settings.lease_object}')"
            if exc.kind == "denied"
            else ""
        )
        problems.append(f"{exc}{hint}")
        return problems, notes
    finally:
        await probe.close()
        await lease.close()
    holder = info.holder
    if holder is None:
        notes.append(f"lease {settings.lease_object}: free")
    else:
        left = (
            ""
            if holder.expiration is None
            else f", expires in {holder.expiration - time.time():.1f} s"
        )
        notes.append(
            f"lease {settings.lease_object}: held by {holder.cookie} ({holder.entity}{left})"
        )
    return problems, notes
