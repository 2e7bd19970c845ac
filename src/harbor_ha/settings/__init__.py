"""The one settings object, built once at the edge (the CLI) and passed in.

Every field is set by ``HARBOR_HA_<FIELD>`` in the environment or the env file;
the predecessor's variable names (HARBOR_VIP, CEPH_MON_HOST, ...) are accepted
too, nothing else (:mod:`harbor_ha.settings.naming`).  The env file is read with
systemd's EnvironmentFile= grammar (:mod:`.envfile`).  Nothing here reads
``os.environ``: the CLI passes it in.

The fields are declared once each, grouped by subsystem: node and keepalived
(:mod:`.node`), Ceph and the filesystem (:mod:`.storage`), compose and the probes
(:mod:`.harbor`), timeouts and behaviour (:mod:`.timing`), the lease (:mod:`.lease`), the
replicated mode's watch of replication (:mod:`.replication`), HTTP, files and logs
(:mod:`.service`), the cluster's nodes, Harbor's files and the load balancer's checks
(:mod:`.cluster`); :mod:`.model` joins them into :class:`Settings` with the
rules across fields, and :mod:`.loading` builds it with clear errors.
"""

from harbor_ha.settings.envfile import (
    EnvFile,
    EnvFileError,
    parse_env_bytes,
    parse_env_text,
    read_env_file,
)
from harbor_ha.settings.loading import SettingsError, load_settings
from harbor_ha.settings.model import Settings
from harbor_ha.settings.naming import ENV_PREFIX, LEGACY_NAMES, env_name, env_names
from harbor_ha.settings.units import CommandLine, Seconds

__all__ = [
    "ENV_PREFIX",
    "LEGACY_NAMES",
    "CommandLine",
    "EnvFile",
    "EnvFileError",
    "Seconds",
    "Settings",
    "SettingsError",
    "env_name",
    "env_names",
    "load_settings",
    "parse_env_bytes",
    "parse_env_text",
    "read_env_file",
]
