"""The keyring file the daemon writes once at start, so the key never appears in an argv."""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from harbor_ha.ceph.errors import CephError
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.ceph")


def write_keyring(settings: Settings, path: Path) -> Path:
    """Write a 0600 keyring for client.<ceph_user> from settings.ceph_user_key; return path.

    The daemon calls this once at start (path under settings.runtime_dir) and
    sets ``settings.ceph_keyring`` to the path for :class:`Ceph`.  The file is
    created 0600 before the key is written, then atomically renamed into place.
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
