"""The one settings object, built once at the edge (the CLI) and passed in.

Every field reads from the environment (prefix ``HARBOR_HA_``) and from an env
file; the predecessor's variable names (HARBOR_VIP, CEPH_MON_HOST, ...) are
accepted too (:mod:`harbor_ha.settings.naming`).  Nothing below this package
reads ``os.environ``.

The fields are declared once each, grouped by subsystem: node and keepalived
(:mod:`.node`), Ceph and the filesystem (:mod:`.storage`), compose and the probes
(:mod:`.harbor`), timeouts and behaviour (:mod:`.timing`), HTTP, files and logs
(:mod:`.service`); :mod:`.model` joins them into :class:`Settings` with the
rules across fields, and :mod:`.loading` builds it with clear errors.
"""

from harbor_ha.settings.loading import SettingsError, load_settings
from harbor_ha.settings.model import Settings
from harbor_ha.settings.naming import ENV_PREFIX, LEGACY_NAMES, env_aliases, env_names
from harbor_ha.settings.units import CommandLine, Seconds

__all__ = [
    "ENV_PREFIX",
    "LEGACY_NAMES",
    "CommandLine",
    "Seconds",
    "Settings",
    "SettingsError",
    "env_aliases",
    "env_names",
    "load_settings",
]
