"""Which environment variables set a field, and what an unknown one was meant to be.

Every field ``name`` is set by ``HARBOR_HA_<NAME>`` (exactly that spelling: the environment
is case-sensitive) and, for the eight fields the bash predecessor had, by the predecessor's
variable.  Nothing else: a field's bare name (``VIP``, ``LOG_LEVEL``, ``DOCKER_HOST``) is
not read, so the many unrelated variables of a process environment cannot set anything.
The product's own name wins when both are set.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

ENV_PREFIX = "HARBOR_HA_"

LEGACY_NAMES: dict[str, str] = {
    "vip": "HARBOR_VIP",
    "ceph_mon_host": "CEPH_MON_HOST",
    "ceph_user": "CEPH_USER",
    "ceph_user_key": "CEPH_USER_KEY",
    "ceph_pool": "CEPH_POOL_NAME",
    "ceph_image": "CEPH_IMAGE_NAME",
    "keepalived_role": "KEEPALIVED_ROLE",
    "interface": "INTERFACE",
}
"""The predecessor's variable names, by field."""


def env_name(field: str) -> str:
    """The product's variable for ``field``: ``HARBOR_HA_<FIELD>``."""
    return ENV_PREFIX + field.upper()


def env_names(field: str) -> list[str]:
    """The variables that set ``field``, in order of precedence (product name, legacy name)."""
    names = [env_name(field)]
    if field in LEGACY_NAMES:
        names.append(LEGACY_NAMES[field])
    return names


def known_names(fields: Iterable[str]) -> dict[str, str]:
    """Every variable that sets one of ``fields``, mapped to its field."""
    return {name: field for field in fields for name in env_names(field)}


def suggestion(key: str, known: Iterable[str]) -> str | None:
    """The known variable ``key`` most likely meant: the prefixed form of a bare field name
    (``VIP`` -> ``HARBOR_HA_VIP``), else the closest spelling (difflib), else None."""
    names = list(known)
    upper = key.upper()
    for candidate in (upper, ENV_PREFIX + upper):
        if candidate in names and candidate != key:
            return candidate
    close = difflib.get_close_matches(upper, names, n=1, cutoff=0.6)
    return close[0] if close else None
