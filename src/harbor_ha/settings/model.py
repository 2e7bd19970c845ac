"""The Settings model: every group of fields, the rules across them, derived values."""

from __future__ import annotations

import ipaddress
import shlex
from pathlib import Path
from typing import Any

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from harbor_ha.settings.cluster import ClusterNode, ClusterSettings
from harbor_ha.settings.harbor import ComposeSettings, ProbeSettings
from harbor_ha.settings.lease import LeaseSettings
from harbor_ha.settings.mode import Mode
from harbor_ha.settings.naming import env_name, env_names
from harbor_ha.settings.node import KeepalivedSettings, NodeSettings
from harbor_ha.settings.replication import ReplicationSettings
from harbor_ha.settings.service import ServiceSettings
from harbor_ha.settings.shared import SharedSettings
from harbor_ha.settings.storage import CephSettings, FilesystemSettings
from harbor_ha.settings.timing import BehaviourSettings, TimeoutSettings

REQUIRED_BY_MODE: dict[Mode, tuple[str, ...]] = {
    Mode.RBD: ("ceph_pool", "ceph_image"),
    Mode.SHARED: ("shared_fs_type",),
}
"""Fields without a default that only one mode needs (the replicated mode has no image; the
shared mode's filesystem; its source is required unless the type is none: ``_coherent``)."""


def required_in_mode(field: str, mode: Mode) -> str:
    """The problem line of a field its mode requires (the loader's own wording)."""
    return f"{' / '.join(env_names(field))}: required, not set (HARBOR_HA_MODE={mode})"


# The groups are listed last-first: pydantic collects the fields of the bases in reverse
# order, so the fields keep the order node, keepalived, ceph, filesystem, compose, probes,
# timeouts, behaviour, lease, replication, shared, service, cluster (the order of
# config/harbor-ha.env.example).
LEASE_WATCH_MIN_S = 0.1
"""The fastest derived lease watch: ten Ceph reads a second (with sub-second adverts the
VIP can arrive before any judgment could end, so faster buys little)."""
LEASE_WATCH_MAX_S = 1.0
"""The slowest derived lease watch (slow adverts): the watch also tells ``status`` who holds
the lease, which should not be older than a second."""


class Settings(
    ClusterSettings,
    ServiceSettings,
    SharedSettings,
    ReplicationSettings,
    LeaseSettings,
    BehaviourSettings,
    TimeoutSettings,
    ProbeSettings,
    ComposeSettings,
    FilesystemSettings,
    CephSettings,
    KeepalivedSettings,
    NodeSettings,
    BaseSettings,
):
    """All of harbor-ha's configuration.  Units are in the field names (``_s`` = seconds).

    A pydantic-settings model whose only source is its init arguments:
    :func:`harbor_ha.settings.load_settings` reads the environment and the env file through
    :class:`harbor_ha.settings.source.HarborHaSource` (systemd's env-file grammar, strict
    names) and hands the values in.  pydantic-settings' own environment and dotenv readers
    are switched off on purpose: they would accept names (bare field names, any case) and a
    file grammar (inline comments) that systemd does not, so ``harbor-ha check`` and the
    service would read one file differently.
    """

    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    # ------------------------------------------------------------ validators
    @field_validator("vip")
    @classmethod
    def _vip(cls, value: str) -> str:
        text = value.strip()
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError as exc:
            raise ValueError("not an IP address with optional /prefix") from exc
        return str(iface)

    @field_validator("vrrp_unicast_src_ip")
    @classmethod
    def _src_ip(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        return str(ipaddress.ip_address(value.strip()))

    @field_validator("vrrp_unicast_peers", mode="before")
    @classmethod
    def _peers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [p for p in value.replace(" ", ",").split(",") if p]
        if isinstance(value, list):
            for peer in value:
                ipaddress.ip_address(str(peer))
        return value

    @field_validator("harbor_data_services", "harbor_critical_components", mode="before")
    @classmethod
    def _data_services(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [p for p in value.replace(" ", ",").split(",") if p]
        return value

    @field_validator("compose_command", mode="before")
    @classmethod
    def _compose_command(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = shlex.split(value)
            if not parts:
                raise ValueError("empty command")
            return parts
        return value

    @field_validator(
        "interface",
        "vrrp_instance",
        "compose_project",
        "ceph_user",
        "node_name",
    )
    @classmethod
    def _token(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value) or any(c in value for c in "\"'{}/;"):
            raise ValueError("must be a non-empty name without spaces, quotes, braces or '/'")
        return value

    @field_validator("ceph_pool", "ceph_image")
    @classmethod
    def _ceph_name(cls, value: str) -> str:
        if value == "":  # unset: required in the rbd mode only (_coherent)
            return value
        return cls._token(value)

    @field_validator("mountpoint", "runtime_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute() or value == Path("/"):
            raise ValueError("must be an absolute path other than /")
        return value

    @field_validator("health_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        missing = [f for f in REQUIRED_BY_MODE.get(self.mode, ()) if getattr(self, f) == ""]
        if missing:
            raise ValueError("\n".join(required_in_mode(f, self.mode) for f in missing))
        shared = _shared_problems(self)
        if shared:
            raise ValueError("\n".join(shared))
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"{env_name('backoff_max_s')} ({self.backoff_max_s}) must be >= "
                f"{env_name('backoff_initial_s')} ({self.backoff_initial_s})"
            )
        deadline = self.lease_duration_s - self.lease_margin_s - self.lease_renew_interval_s
        if deadline <= self.lease_renew_interval_s:
            raise ValueError(
                f"{env_name('lease_duration_s')} ({self.lease_duration_s}) must exceed "
                f"{env_name('lease_margin_s')} + 2 x {env_name('lease_renew_interval_s')} "
                f"({self.lease_margin_s} + 2 x {self.lease_renew_interval_s}): the master "
                "must survive more than one slow renewal"
            )
        if self.failsafe_enabled and self.failsafe_request_timeout_s >= deadline:
            raise ValueError(
                f"{env_name('failsafe_request_timeout_s')} ({self.failsafe_request_timeout_s})"
                f" must be shorter than the lease deadline ({deadline:g} s): the answer must "
                "come before it"
            )
        self._cluster_coherent()
        if self.priority_file == self.fault_file:
            raise ValueError(
                f"{env_name('priority_file')} and {env_name('fault_file')} must differ "
                f"(both {self.priority_file})"
            )
        return self

    def _cluster_coherent(self) -> None:
        if not self.nodes:
            return
        names = [n.name for n in self.nodes]
        if len(self.nodes) < 2:
            raise ValueError(f"{env_name('nodes')} names one node ({names[0]}): list them all")
        if self.peer_http_url:
            raise ValueError(
                f"set {env_name('nodes')} or {env_name('peer_http_url')}, not both: with the "
                "list, the peers are the list's other nodes"
            )

    # --------------------------------------------------------------- derived
    def node_url(self, node: ClusterNode) -> str:
        """The base URL of a node's harbor-ha HTTP listener."""
        host = f"[{node.host}]" if ":" in node.host else node.host
        return f"http://{host}:{node.port or self.http_port}"

    @property
    def peers(self) -> list[tuple[str | None, str]]:
        """The other nodes as (name, base URL of their harbor-ha HTTP listener): the list's
        others (all of them on a machine that is not a node, e.g. a load balancer), else the
        two-node modes' peer_http_url (its name unknown until read), else none."""
        if self.nodes:
            return [(n.name, self.node_url(n)) for n in self.nodes if n.name != self.node_name]
        if self.peer_http_url:
            return [(None, self.peer_http_url.rstrip("/"))]
        return []

    @property
    def peer_url(self) -> str:
        """The one peer of the two-node modes (reconcile, the lease's view of the peer,
        `switchover --wait`, check's name clash): peer_http_url, or the other node of a
        two-node HARBOR_HA_NODES; empty otherwise."""
        if self.peer_http_url:
            return self.peer_http_url
        others = self.peers
        return others[0][1] if len(self.nodes) == 2 and len(others) == 1 else ""

    @property
    def harbor_config_path(self) -> Path:
        """harbor_config_dir, or its default: common/config beside compose_file."""
        return self.harbor_config_dir or self.compose_file.parent / "common" / "config"

    @property
    def harbor_secret_path(self) -> Path:
        """harbor_secret_dir, or its default: secret under the mountpoint."""
        return self.harbor_secret_dir or self.mountpoint / "secret"

    @property
    def object_storage(self) -> bool:
        """The shared mode's object-storage variant: nothing to mount."""
        return self.mode is Mode.SHARED and self.shared_fs_type == "none"

    @property
    def vip_address(self) -> str:
        """The VIP without its prefix length."""
        return str(ipaddress.ip_interface(self.vip).ip)

    @property
    def base_priority(self) -> int:
        if self.vrrp_priority is not None:
            return self.vrrp_priority
        return 110 if self.keepalived_role == "MASTER" else 100

    @property
    def control_socket_path(self) -> Path:
        return self.control_socket or self.runtime_dir / "control.sock"

    @property
    def lease_watch_s(self) -> float:
        """The standby's lease watch period: lease_watch_interval_s, or (unset) the slowest
        watch whose stale judgment still ends before keepalived's master-down interval
        (3 adverts) can hand the VIP over (see that field)."""
        if self.lease_watch_interval_s is not None:
            return self.lease_watch_interval_s
        budget = (
            3 * self.vrrp_advert_interval_s
            - self.lease_renew_interval_s
            - self.lease_stale_margin_s
        )
        return round(min(LEASE_WATCH_MAX_S, max(LEASE_WATCH_MIN_S, budget)), 3)

    @property
    def image_spec(self) -> str:
        return f"{self.ceph_pool}/{self.ceph_image}"


def _shared_problems(s: Settings) -> list[str]:
    """The shared mode's rules across fields: a filesystem needs its source; the
    object-storage variant's readiness needs the registry component judged."""
    if s.mode is not Mode.SHARED:
        return []
    evict = _evict_problems(s)
    if evict:
        return evict
    if s.shared_fs_type == "none":
        if "registry" in s.harbor_critical_components:
            return []
        return [
            f"{env_name('harbor_critical_components')}: must include registry with "
            f"{env_name('shared_fs_type')}=none (readiness includes the registry reaching "
            "its object storage)"
        ]
    if not s.shared_fs_source.strip():
        return [
            f"{env_name('shared_fs_source')}: required, not set "
            f"(HARBOR_HA_MODE=shared, {env_name('shared_fs_type')}={s.shared_fs_type})"
        ]
    return []


def _evict_problems(s: Settings) -> list[str]:
    """Evicting a dead node's CephFS sessions needs CephFS, the filesystem's name and at
    least three nodes (with two, neither can tell a dead peer from a cut one: no majority)."""
    if s.shared_evict_after_s == 0:
        return []
    name = env_name("shared_evict_after_s")
    if s.shared_fs_type not in ("ceph", "ceph-fuse"):
        return [f"{name}: evicts CephFS sessions; {env_name('shared_fs_type')} is "
                f"{s.shared_fs_type!r}, not ceph or ceph-fuse (set it to 0)"]  # fmt: skip
    if len(s.nodes) < 3:
        why = "a node evicts only while it reaches a majority of them; with two, none could"
        return [f"{name}: needs {env_name('nodes')} of three nodes or more ({why})"]
    if not s.cephfs_name.strip():
        return [f"{env_name('cephfs_name')}: required with {name}"]
    return []
