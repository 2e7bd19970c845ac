"""Settings of what the daemon serves and keeps: HTTP listener, runtime files, logs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from harbor_ha.settings.units import Seconds


class ServiceSettings(BaseModel):
    """The read-only HTTP listener, the runtime directory and the logs."""

    http_host: str = Field(
        default="0.0.0.0",
        description=(
            "Address of the read-only, unauthenticated HTTP listener (/metrics /status /liveness "
            "/readiness /primary) for Prometheus, load balancers and the peer's `harbor-ha "
            "list`: bind the management address, /status shows the cluster's layout."
        ),
    )
    http_port: int = Field(
        default=9105,
        ge=0,
        le=65535,
        description="Port of the read-only HTTP listener (0 = any free port).",
    )
    runtime_dir: Path = Field(
        default=Path("/run/harbor-ha"),
        description="Control socket, keyring and state live here.",
    )
    control_socket: Path | None = Field(
        default=None,
        description="Control socket (notify, switchover, ...). Default: runtime_dir/control.sock",
    )
    state_dir: Path = Field(
        default=Path("/var/lib/harbor-ha"),
        description=(
            "Persistent state (kept across restarts and reboots, unlike runtime_dir): the "
            "history journal history.jsonl. The unit's StateDirectory=harbor-ha creates it."
        ),
    )
    history_max_bytes: int = Field(
        default=1_048_576,
        ge=4096,
        description=(
            "Bytes: history.jsonl is rotated to history.jsonl.1 before it grows past this, so "
            "at most twice this is on disk. 1 MiB holds about 4000 transitions: years of "
            "failovers."
        ),
    )
    peer_http_url: str = Field(
        default="",
        pattern=r"^(https?://[^/\s]+/?)?$",
        description=(
            "The peer's read-only HTTP listener, e.g. http://10.0.0.12:9105 (its "
            "HARBOR_HA_HTTP_HOST/PORT): `harbor-ha list` and `switchover --wait` read its "
            "/status. Empty: those commands show only this node / cannot wait. A two-node "
            "HARBOR_HA_NODES gives the same peer (set one or the other)."
        ),
    )
    peer_timeout_s: Seconds = Field(
        default=3.0,
        description=(
            "Seconds: bound on one request to the peer's /status. A peer that is down or "
            "partitioned is shown as unreachable instead of hanging the command; 3 s is many "
            "round trips on a LAN."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        description="Log level of the JSON logs.",
    )
    log_format: Literal["json", "console"] = Field(
        default="json",
        description="json for journald/log shippers, console for humans.",
    )
