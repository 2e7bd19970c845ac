"""The one settings object, built once at the edge (the CLI) and passed in.

Every field reads from the environment (prefix ``HARBOR_HA_``) and from an env
file; the predecessor's variable names (HARBOR_VIP, CEPH_MON_HOST, ...) are
accepted too.  Nothing below this module reads ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import shlex
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "HARBOR_HA_"

# Predecessor's variable names, by field.  Both spellings are accepted; the
# product's own name wins when both are set.
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


def _env(name: str) -> AliasChoices:
    """Accept the product's HARBOR_HA_ name, the field name and a legacy name."""
    choices = [ENV_PREFIX + name.upper(), name]
    if name in LEGACY_NAMES:
        choices.append(LEGACY_NAMES[name])
    return AliasChoices(*choices)


def env_names(field: str) -> list[str]:
    """The environment variable names that set ``field`` (for error messages)."""
    names = [ENV_PREFIX + field.upper()]
    if field in LEGACY_NAMES:
        names.append(LEGACY_NAMES[field])
    return names


Seconds = Annotated[float, Field(gt=0)]
CommandLine = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """All of harbor-ha's configuration.  Units are in the field names (``_s`` = seconds)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    # ----------------------------------------------------------------- node
    node_name: str = Field(
        default_factory=socket.gethostname,
        validation_alias=_env("node_name"),
        description="Name of this node in logs and metrics. Default: the hostname.",
    )
    interface: str = Field(
        default="eth0",
        validation_alias=_env("interface"),
        description="Network interface that carries the VIP (keepalived's `interface`).",
    )
    vip: str = Field(
        default="192.0.2.100/24",
        validation_alias=_env("vip"),
        description="Virtual IP with prefix length, e.g. 10.0.0.100/24. A bare address gets /32.",
    )
    keepalived_role: Literal["MASTER", "BACKUP"] = Field(
        default="BACKUP",
        validation_alias=_env("keepalived_role"),
        description=(
            "Preferred role. Only sets the default VRRP priority (MASTER 110, BACKUP 100): "
            "both nodes start as BACKUP with nopreempt so a recovering node never steals the VIP."
        ),
    )

    # ----------------------------------------------------------- keepalived
    vrrp_instance: str = Field(
        default="VI_1",
        validation_alias=_env("vrrp_instance"),
        description="Name of the vrrp_instance whose FIFO lines this daemon follows.",
    )
    vrrp_router_id: int = Field(
        default=51,
        ge=1,
        le=255,
        validation_alias=_env("vrrp_router_id"),
        description="VRRP virtual_router_id; must be the same on both nodes and unique on the LAN.",
    )
    vrrp_priority: int | None = Field(
        default=None,
        ge=1,
        le=254,
        validation_alias=_env("vrrp_priority"),
        description="Base VRRP priority. Default: 110 for role MASTER, 100 for BACKUP.",
    )
    vrrp_advert_interval_s: float = Field(
        default=0.5,
        ge=0.01,
        le=40.95,
        validation_alias=_env("vrrp_advert_interval_s"),
        description=(
            "VRRPv3 advert interval in seconds (centisecond steps). 0.5 s detects a dead master "
            "in ~1.6 s without false failovers on a loaded host."
        ),
    )
    vrrp_unicast_src_ip: str | None = Field(
        default=None,
        validation_alias=_env("vrrp_unicast_src_ip"),
        description="Source address for unicast VRRP. Unset: multicast.",
    )
    vrrp_unicast_peers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=_env("vrrp_unicast_peers"),
        description="Comma-separated peer addresses for unicast VRRP. Empty: multicast.",
    )
    keepalived_fifo: Path = Field(
        default=Path("/run/harbor-ha/keepalived.fifo"),
        validation_alias=_env("keepalived_fifo"),
        description="keepalived's notify_fifo. Created by the daemon if missing.",
    )
    priority_file: Path = Field(
        default=Path("/run/harbor-ha/priority"),
        validation_alias=_env("priority_file"),
        description="Weighted track file: 1 = ready/healthy, 0 = not (x priority_weight).",
    )
    fault_file: Path = Field(
        default=Path("/run/harbor-ha/fault"),
        validation_alias=_env("fault_file"),
        description="Weight-0 track file: non-zero puts keepalived in FAULT (fastest hand-over).",
    )
    priority_weight: int = Field(
        default=50,
        ge=1,
        le=253,
        validation_alias=_env("priority_weight"),
        description=(
            "Weight of the priority file. 50 makes a ready node beat an unready one whatever "
            "the base priorities (which differ by 10)."
        ),
    )
    keepalived_bin: str = Field(
        default="keepalived",
        validation_alias=_env("keepalived_bin"),
        description="keepalived executable (check, render's `keepalived -t`).",
    )
    keepalived_conf: Path = Field(
        default=Path("/etc/keepalived/keepalived.conf"),
        validation_alias=_env("keepalived_conf"),
        description="Where render-keepalived writes and check reads keepalived's config.",
    )
    ip_bin: str = Field(
        default="ip",
        validation_alias=_env("ip_bin"),
        description="iproute2 `ip`, for the VIP check on every tick.",
    )

    # ----------------------------------------------------------------- ceph
    ceph_mon_host: str | None = Field(
        default=None,
        validation_alias=_env("ceph_mon_host"),
        description="Monitor addresses (comma-separated), passed as -m. Unset: from ceph.conf.",
    )
    ceph_conf: Path | None = Field(
        default=None,
        validation_alias=_env("ceph_conf"),
        description="ceph.conf passed as -c. Unset: Ceph's default search.",
    )
    ceph_user: str = Field(
        default="harbor",
        validation_alias=_env("ceph_user"),
        description="Ceph client id without the 'client.' prefix.",
    )
    ceph_user_key: SecretStr | None = Field(
        default=None,
        validation_alias=_env("ceph_user_key"),
        description="The user's secret key. Written to a 0600 keyring in runtime_dir, never argv.",
    )
    ceph_keyring: Path | None = Field(
        default=None,
        validation_alias=_env("ceph_keyring"),
        description="Keyring file for the user (alternative to ceph_user_key).",
    )
    ceph_pool: str = Field(
        default="rbd", validation_alias=_env("ceph_pool"), description="RBD pool of Harbor's image."
    )
    ceph_image: str = Field(
        default="harbor",
        validation_alias=_env("ceph_image"),
        description="RBD image holding Harbor's data (feature exclusive-lock required).",
    )
    rbd_bin: str = Field(
        default="rbd",
        validation_alias=_env("rbd_bin"),
        description="rbd executable; a site (or the test suite) may point it at a wrapper.",
    )
    ceph_bin: str = Field(
        default="ceph",
        validation_alias=_env("ceph_bin"),
        description="ceph executable (blocklist add/ls).",
    )
    rbd_map_options: str = Field(
        default="osd_request_timeout=60,noshare",
        pattern=r"^[A-Za-z0-9_=.,]*$",
        validation_alias=_env("rbd_map_options"),
        description=(
            "krbd map options added after 'exclusive' (comma-separated, rbd device map -o). "
            "osd_request_timeout (seconds) bounds every OSD request: without it a node cut "
            "from Ceph hangs fsync and even 'rbd device unmap -o force' in D state for as "
            "long as the cut lasts (273 s in one run on the VM tier); with it they fail with "
            "EIO after the timeout and the demotion can finish. 60 s stays above Ceph's "
            "osd_heartbeat_grace (20 s) plus peering, so a single OSD failure in a healthy "
            "cluster stalls I/O but does not fail it. noshare gives each map its own Ceph "
            "client: krbd otherwise reuses a client left from an earlier mapping, and after "
            "this node was fenced that client is blocklisted, so the next map fails with "
            "ESHUTDOWN (108) (seen on the VM tier after a cut and a forced unmap)."
        ),
    )
    blocklist_expire_s: int = Field(
        default=86400,
        ge=600,
        validation_alias=_env("blocklist_expire_s"),
        description=(
            "Expiry of the blocklist entries fencing adds. One day: a fenced node must have "
            "rebooted or demoted long before its entry lapses. Entries are never removed."
        ),
    )

    # ------------------------------------------------------------ filesystem
    mountpoint: Path = Field(
        default=Path("/data"),
        validation_alias=_env("mountpoint"),
        description="Where the image's filesystem is mounted (Harbor's data_volume).",
    )
    fs_type: str = Field(
        default="ext4",
        validation_alias=_env("fs_type"),
        description="Filesystem on the image; fsck and mount use it, a different one aborts.",
    )
    mount_options: str = Field(
        default="noatime",
        validation_alias=_env("mount_options"),
        description="Options for mount -o.",
    )
    guard_mountpoint: bool = Field(
        default=True,
        validation_alias=_env("guard_mountpoint"),
        description="chattr +i the bare mountpoint so nothing can write to the root fs under it.",
    )
    fsck_bin: str = Field(
        default="fsck",
        validation_alias=_env("fsck_bin"),
        description="fsck executable (run as `fsck -t TYPE -p`).",
    )
    blkid_bin: str = Field(
        default="blkid",
        validation_alias=_env("blkid_bin"),
        description="blkid executable (filesystem probe before fsck/mount).",
    )
    mount_bin: str = Field(
        default="mount", validation_alias=_env("mount_bin"), description="mount executable."
    )
    umount_bin: str = Field(
        default="umount", validation_alias=_env("umount_bin"), description="umount executable."
    )
    chattr_bin: str = Field(
        default="chattr",
        validation_alias=_env("chattr_bin"),
        description="chattr executable (mountpoint guard).",
    )
    mkfs_bin: str = Field(
        default="mkfs",
        validation_alias=_env("mkfs_bin"),
        description=(
            "Run as `mkfs -t FS_TYPE DEV` ONLY by the explicit operator format command, on a "
            "device that reads fine and holds no filesystem. No automatic step ever formats."
        ),
    )
    dd_bin: str = Field(
        default="dd",
        validation_alias=_env("dd_bin"),
        description=(
            "Bounded read probe: one O_DIRECT read of the device's first 4 KiB "
            "(tells 'no filesystem' from 'I/O error', and detects lost storage)."
        ),
    )

    # --------------------------------------------------------------- compose
    compose_file: Path = Field(
        default=Path("/opt/harbor/docker-compose.yml"),
        validation_alias=_env("compose_file"),
        description="Harbor's docker-compose.yml (as written by Harbor's installer).",
    )
    compose_project: str = Field(
        default="harbor",
        validation_alias=_env("compose_project"),
        description="Compose project name (label com.docker.compose.project).",
    )
    compose_command: CommandLine = Field(
        default_factory=lambda: ["auto"],
        validation_alias=_env("compose_command"),
        description="'auto' (v2 `docker compose`, else v1 `docker-compose`) or a command line.",
    )
    docker_bin: str = Field(
        default="docker",
        validation_alias=_env("docker_bin"),
        description="docker CLI (kill by label, image checks, compose v2 plugin).",
    )
    docker_host: str = Field(
        default="unix:///var/run/docker.sock",
        validation_alias=_env("docker_host"),
        description="Docker API endpoint for probes, and DOCKER_HOST for compose.",
    )
    harbor_expected_containers: int = Field(
        default=9,
        ge=1,
        validation_alias=_env("harbor_expected_containers"),
        description="How many containers a healthy Harbor runs (9 for Harbor v2 without extras).",
    )
    compose_stop_timeout_s: int = Field(
        default=10,
        ge=0,
        validation_alias=_env("compose_stop_timeout_s"),
        description="Grace given to containers by compose stop before SIGKILL.",
    )
    precreate_containers: bool = Field(
        default=True,
        validation_alias=_env("precreate_containers"),
        description=(
            "A ready standby keeps Harbor's containers CREATED, never started (compose up "
            "--no-start), so promotion's `up -d` only starts them (saves container creation on "
            "the failover path; bench/precreate_probe.py: created `restart: always` containers "
            "do not start on a dockerd restart). Off: the standby has no containers at all."
        ),
    )

    # ---------------------------------------------------------------- probes
    probe_host: str = Field(
        default="127.0.0.1",
        validation_alias=_env("probe_host"),
        description="Where the HTTPS port and health API are probed (this node, not the VIP).",
    )
    https_port: int = Field(
        default=443,
        ge=1,
        le=65535,
        validation_alias=_env("https_port"),
        description="Harbor's HTTPS port on this node, probed with a TCP connect.",
    )
    health_scheme: Literal["https", "http"] = Field(
        default="https",
        validation_alias=_env("health_scheme"),
        description="Harbor's HTTPS port on this node, probed with a TCP connect.",
    )
    health_path: str = Field(
        default="/api/v2.0/health",
        validation_alias=_env("health_path"),
        description="Harbor's health API path (always HTTP 200: the JSON status decides).",
    )
    probe_interval_s: Seconds = Field(
        default=2.0,
        validation_alias=_env("probe_interval_s"),
        description="Period of the full probe (backstop to the Docker event stream).",
    )
    standby_check_interval_s: Seconds = Field(
        default=5.0,
        validation_alias=_env("standby_check_interval_s"),
        description=(
            "Period of the standby's readiness check (Ceph, image, stale mapping, Docker, "
            "images): a dozen commands, so less often than the master's probe."
        ),
    )
    probe_timeout_s: Seconds = Field(
        default=2.0,
        validation_alias=_env("probe_timeout_s"),
        description="Timeout of one probe (TCP, HTTP, Docker API call).",
    )
    probe_rise: int = Field(
        default=2,
        ge=1,
        validation_alias=_env("probe_rise"),
        description="Consecutive good probes before healthy.",
    )
    probe_fall: int = Field(
        default=3,
        ge=1,
        validation_alias=_env("probe_fall"),
        description="Consecutive bad probes before unhealthy (3 x 2 s rides out a restart).",
    )

    # -------------------------------------------------------------- timeouts
    fence_timeout_s: Seconds = Field(
        default=30.0,
        validation_alias=_env("fence_timeout_s"),
        description="Bound on fencing: rbd status + blocklist adds + watchers gone.",
    )
    map_timeout_s: Seconds = Field(
        default=30.0,
        validation_alias=_env("map_timeout_s"),
        description="Bound on rbd device map (and on unmap's force fallback).",
    )
    fsck_timeout_s: Seconds = Field(
        default=600.0,
        validation_alias=_env("fsck_timeout_s"),
        description="fsck of a large ext4 after a crash can take minutes.",
    )
    mount_timeout_s: Seconds = Field(
        default=30.0,
        validation_alias=_env("mount_timeout_s"),
        description="Bound on mount itself (after fsck).",
    )
    format_timeout_s: Seconds = Field(
        default=600.0,
        validation_alias=_env("format_timeout_s"),
        description=(
            "Bound on the operator's format command (mkfs). mkfs.ext4 with lazy inode-table init "
            "takes seconds even on a large image; 10 min covers slow storage."
        ),
    )
    start_timeout_s: Seconds = Field(
        default=180.0,
        validation_alias=_env("start_timeout_s"),
        description="compose up until every container is healthy (Harbor's DB start is slow).",
    )
    stop_timeout_s: Seconds = Field(
        default=60.0,
        validation_alias=_env("stop_timeout_s"),
        description="Bound on stopping Harbor (compose stop, kill by label).",
    )
    unmount_timeout_s: Seconds = Field(
        default=30.0,
        validation_alias=_env("unmount_timeout_s"),
        description="Bound on the staged unmount (umount, TERM, KILL, umount).",
    )
    unmount_term_grace_s: Seconds = Field(
        default=3.0,
        validation_alias=_env("unmount_term_grace_s"),
        description="Wait after TERM to the mount's users before KILL.",
    )
    unmap_timeout_s: Seconds = Field(
        default=30.0,
        validation_alias=_env("unmap_timeout_s"),
        description="Bound on rbd device unmap (then -o force).",
    )
    command_timeout_s: Seconds = Field(
        default=15.0,
        validation_alias=_env("command_timeout_s"),
        description="Default timeout for one external command (probes, status queries).",
    )

    # ------------------------------------------------------------- behaviour
    tick_interval_s: Seconds = Field(
        default=1.0,
        validation_alias=_env("tick_interval_s"),
        description="Period of the VIP-vs-state check and the watchdog.",
    )
    vip_mismatch_ticks: int = Field(
        default=2,
        ge=1,
        validation_alias=_env("vip_mismatch_ticks"),
        description="Ticks the VIP must disagree with the state before acting without a FIFO line.",
    )
    backoff_initial_s: Seconds = Field(
        default=10.0,
        validation_alias=_env("backoff_initial_s"),
        description="Fault hold after a failed promotion; doubles per consecutive failure.",
    )
    backoff_max_s: Seconds = Field(
        default=300.0,
        validation_alias=_env("backoff_max_s"),
        description="Cap of the doubling backoff: a broken node retries every 5 min at most.",
    )
    master_stable_s: Seconds = Field(
        default=60.0,
        validation_alias=_env("master_stable_s"),
        description=(
            "MASTER this long forgets past failed promotions; until then the backoff keeps "
            "doubling, so two nodes fencing each other in a partition slow down."
        ),
    )
    fenced_self_retry_s: Seconds = Field(
        default=30.0,
        validation_alias=_env("fenced_self_retry_s"),
        description="Period of the automatic retry of a demotion that ended in FENCED_SELF.",
    )
    switchover_hold_s: Seconds = Field(
        default=15.0,
        validation_alias=_env("switchover_hold_s"),
        description="Fault file kept set after a switchover so the peer keeps the VIP.",
    )
    shutdown_timeout_s: Seconds = Field(
        default=30.0,
        validation_alias=_env("shutdown_timeout_s"),
        description="Bound on the whole shutdown (running step, servers, tasks).",
    )
    stop_harbor_on_exit: bool = Field(
        default=False,
        validation_alias=_env("stop_harbor_on_exit"),
        description="Demote (stop Harbor, unmount, unmap) on SIGTERM. Off: a restart is hitless.",
    )

    # ---------------------------------------------------------- http / files
    http_host: str = Field(
        default="0.0.0.0",
        validation_alias=_env("http_host"),
        description="Read-only HTTP (/metrics /health /primary /status) for Prometheus and LBs.",
    )
    http_port: int = Field(
        default=9105,
        ge=0,
        le=65535,
        validation_alias=_env("http_port"),
        description="Port of the read-only HTTP listener (0 = any free port).",
    )
    runtime_dir: Path = Field(
        default=Path("/run/harbor-ha"),
        validation_alias=_env("runtime_dir"),
        description="Control socket, keyring and state live here.",
    )
    control_socket: Path | None = Field(
        default=None,
        validation_alias=_env("control_socket"),
        description="Control socket (notify, switchover, ...). Default: runtime_dir/control.sock",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        validation_alias=_env("log_level"),
        description="Log level of the JSON logs.",
    )
    log_format: Literal["json", "console"] = Field(
        default="json",
        validation_alias=_env("log_format"),
        description="json for journald/log shippers, console for humans.",
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


class SettingsError(Exception):
    """Invalid configuration: one message per bad field, naming the variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _field_for(loc: tuple[int | str, ...]) -> str | None:
    if not loc:
        return None
    head = str(loc[0])
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else []
        if head == name or any(str(c).lower() == head.lower() for c in choices):
            return name
    return None


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from the environment and ``env_file``.

    Raises SettingsError with one line per invalid field, each naming the
    environment variable(s) that set it.
    """
    if env_file is not None and not env_file.is_file():
        raise SettingsError([f"env file {env_file}: not found or not a regular file"])
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = _field_for(tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            if field is None:
                problems.append(f"configuration: {msg}")
                continue
            names = " / ".join(env_names(field))
            given = err.get("input")
            shown = "***" if "key" in field else repr(given)
            problems.append(f"{names}: {msg} (got {shown})")
        raise SettingsError(problems) from None
