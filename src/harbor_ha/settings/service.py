"""Settings of what the daemon serves and keeps: HTTP listener, runtime files, logs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class ServiceSettings(BaseModel):
    """The read-only HTTP listener, the runtime directory and the logs."""

    http_host: str = Field(
        default="0.0.0.0",
        description="Read-only HTTP (/metrics /health /primary /status) for Prometheus and LBs.",
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
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        description="Log level of the JSON logs.",
    )
    log_format: Literal["json", "console"] = Field(
        default="json",
        description="json for journald/log shippers, console for humans.",
    )
