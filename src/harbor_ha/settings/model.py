"""The Settings model: every group of fields, the rules across them, derived values."""

from __future__ import annotations

import ipaddress
import shlex
from pathlib import Path
from typing import Any

from pydantic import AliasGenerator, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from harbor_ha.settings.harbor import ComposeSettings, ProbeSettings
from harbor_ha.settings.lease import LeaseSettings
from harbor_ha.settings.naming import ENV_PREFIX, env_aliases
from harbor_ha.settings.node import KeepalivedSettings, NodeSettings
from harbor_ha.settings.service import ServiceSettings
from harbor_ha.settings.storage import CephSettings, FilesystemSettings
from harbor_ha.settings.timing import BehaviourSettings, TimeoutSettings


# The groups are listed last-first: pydantic collects the fields of the bases in reverse
# order, so the fields keep the order node, keepalived, ceph, filesystem, compose, probes,
# timeouts, behaviour, lease, service (the order of config/harbor-ha.env.example).
class Settings(
    BaseSettings,
    ServiceSettings,
    LeaseSettings,
    BehaviourSettings,
    TimeoutSettings,
    ProbeSettings,
    ComposeSettings,
    FilesystemSettings,
    CephSettings,
    KeepalivedSettings,
    NodeSettings,
):
    """All of harbor-ha's configuration.  Units are in the field names (``_s`` = seconds)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
        alias_generator=AliasGenerator(validation_alias=env_aliases),
    )

    # ------------------------------------------------------------ validators
    @field_validator("vip")
    @classmethod
    def _vip(cls, value: str) -> str:
        text = value.strip()
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError as exc:
            raise ValueError(f"not an IP address with optional /prefix: {value!r}") from exc
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
        "ceph_pool",
        "ceph_image",
        "ceph_user",
        "node_name",
    )
    @classmethod
    def _token(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value) or any(c in value for c in "\"'{}/;"):
            raise ValueError(
                f"must be a non-empty name without spaces, quotes, braces or '/': {value!r}"
            )
        return value

    @field_validator("mountpoint", "runtime_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute() or value == Path("/"):
            raise ValueError(f"must be an absolute path other than /: {value}")
        return value

    @field_validator("health_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with '/': {value!r}")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        if self.priority_file == self.fault_file:
            raise ValueError("priority_file and fault_file must differ")
        return self

    # --------------------------------------------------------------- derived
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
    def image_spec(self) -> str:
        return f"{self.ceph_pool}/{self.ceph_image}"
