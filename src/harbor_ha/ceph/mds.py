"""The CephFS MDS's sessions: the ones from one address, and their eviction
(``ceph tell mds.NAME:0 session ls`` / ``client evict id=N``, each bounded by
``command_timeout_s``).  Evicting a session blocklists its client (Ceph's default): the
client can no longer write, and the MDS hands the capabilities it held to the others."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from harbor_ha.ceph.argv import ceph_argv
from harbor_ha.ceph.errors import CephError, CephUnreachable
from harbor_ha.runner import CommandError, CommandTimeout, Runner
from harbor_ha.settings import Settings


def _session_list(session_ls: str) -> list[object]:
    """``session ls``'s JSON: a list (CephError otherwise)."""
    try:
        sessions = json.loads(session_ls)
    except ValueError as exc:
        raise CephError(f"session ls: not JSON: {session_ls[:200]!r}") from exc
    if not isinstance(sessions, list):
        raise CephError(f"session ls: not a list: {session_ls[:200]!r}")
    return sessions


def sessions_from(session_ls: str, host: str) -> list[int]:
    """The ids of the sessions in ``session ls``'s JSON whose client address is ``host``
    (``inst`` is ``client.4123 v1:10.0.0.13:0/3271``, or without ``v1:``)."""
    sessions = _session_list(session_ls)
    own = re.compile(rf"(^|[\s:/\[]){re.escape(host)}\]?:\d+/")
    return [
        int(s["id"])
        for s in sessions
        if isinstance(s, dict) and "id" in s and own.search(str(s.get("inst", "")))
    ]


async def _tell(runner: Runner, settings: Settings, *args: str) -> str:
    argv: Sequence[str] = ceph_argv(settings, "tell", f"mds.{settings.cephfs_name}:0", *args)
    try:
        result = await runner.run(argv, timeout_s=settings.command_timeout_s)
    except CommandTimeout as exc:
        raise CephUnreachable(
            f"{' '.join(args[:2])}: no answer within {settings.command_timeout_s:g} s"
        ) from exc
    except CommandError as exc:
        raise CephError(str(exc)) from exc
    if not result.ok:
        raise CephError(f"{' '.join(args[:2])}: {result.output_tail(300).strip()}")
    return result.stdout


async def evict_sessions_from(runner: Runner, settings: Settings, host: str) -> list[int]:
    """Evict every session of the filesystem whose client address is ``host``; their ids
    (empty: none from there). CephError when the MDS refuses or does not answer."""
    ids = sessions_from(await _tell(runner, settings, "session", "ls", "--format", "json"), host)
    for sid in ids:
        await _tell(runner, settings, "client", "evict", f"id={sid}")
    return ids


async def mds_sessions_readable(runner: Runner, settings: Settings) -> int:
    """How many sessions the MDS lists to this node's Ceph user (``session ls``, read-only):
    the eviction's access, checked. CephError when it refuses or does not answer."""
    return len(_session_list(await _tell(runner, settings, "session", "ls", "--format", "json")))
