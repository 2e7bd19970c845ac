"""The command lines of the rbd and ceph CLIs (pure: built from the settings alone).

Every command carries the common arguments: ``--id USER``, ``-m MON_HOST`` (if
set), ``-c CONF`` (if set) and ``--keyring PATH`` (``settings.ceph_keyring``).
The key itself never appears in an argv.
"""

from __future__ import annotations

from harbor_ha.settings import Settings


def common_args(settings: Settings) -> list[str]:
    """--id, -m, -c and --keyring as configured (same for rbd and ceph)."""
    args = ["--id", settings.ceph_user]
    if settings.ceph_mon_host:
        args += ["-m", settings.ceph_mon_host]
    if settings.ceph_conf is not None:
        args += ["-c", str(settings.ceph_conf)]
    if settings.ceph_keyring is not None:
        args += ["--keyring", str(settings.ceph_keyring)]
    return args


def rbd_argv(settings: Settings, *args: str) -> list[str]:
    """``rbd <common args> args...``."""
    return [settings.rbd_bin, *common_args(settings), *args]


def ceph_argv(settings: Settings, *args: str) -> list[str]:
    """``ceph <common args> args...``."""
    return [settings.ceph_bin, *common_args(settings), *args]
