"""Which environment variables set a field: the one alias mechanism of the settings.

Every field ``name`` is set by ``HARBOR_HA_<NAME>``, by its own name (any case:
the environment is read case-insensitively) and, for the few fields the bash
predecessor had, by the predecessor's variable.  The product's own name wins
when both are set (AliasChoices: the first choice present is taken).
"""

from __future__ import annotations

from pydantic import AliasChoices

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


def env_aliases(field: str) -> AliasChoices:
    """The validation alias of ``field`` (the model's alias generator): product name, field
    name, legacy name, in that order of precedence."""
    choices = [ENV_PREFIX + field.upper(), field]
    if field in LEGACY_NAMES:
        choices.append(LEGACY_NAMES[field])
    return AliasChoices(*choices)


def env_names(field: str) -> list[str]:
    """The environment variable names that set ``field`` (for error messages)."""
    names = [ENV_PREFIX + field.upper()]
    if field in LEGACY_NAMES:
        names.append(LEGACY_NAMES[field])
    return names
