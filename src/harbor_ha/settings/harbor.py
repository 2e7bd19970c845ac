"""Settings of Harbor itself: its compose project and the probes of its health."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from harbor_ha.settings.units import CommandLine, Seconds


class ComposeSettings(BaseModel):
    """Harbor's compose project, the docker CLI and Docker's endpoint."""

    compose_file: Path = Field(
        default=Path("/opt/harbor/docker-compose.yml"),
        description="Harbor's docker-compose.yml (as written by Harbor's installer).",
    )
    compose_project: str = Field(
        default="harbor",
        description="Compose project name (label com.docker.compose.project).",
    )
    compose_command: CommandLine = Field(
        default_factory=lambda: ["auto"],
        description="'auto' (v2 `docker compose`, else v1 `docker-compose`) or a command line.",
    )
    docker_bin: str = Field(
        default="docker",
        description="docker CLI (kill by label, image checks, compose v2 plugin).",
    )
    docker_host: str = Field(
        default="unix:///var/run/docker.sock",
        description="Docker API endpoint for probes, and DOCKER_HOST for compose.",
    )
    harbor_expected_containers: int = Field(
        default=9,
        ge=1,
        description="How many containers a healthy Harbor runs (9 for Harbor v2 without extras).",
    )
    compose_stop_timeout_s: int = Field(
        default=10,
        ge=0,
        description="Grace given to containers by compose stop before SIGKILL.",
    )
    precreate_containers: bool = Field(
        default=True,
        description=(
            "A ready standby keeps Harbor's containers CREATED, never started (compose up "
            "--no-start), so promotion's `up -d` only starts them (saves container creation on "
            "the failover path; bench/precreate_probe.py: created `restart: always` containers "
            "do not start on a dockerd restart). Off: the standby has no containers at all."
        ),
    )


class ProbeSettings(BaseModel):
    """How and how often Harbor's health is probed (rise/fall debouncing)."""

    probe_host: str = Field(
        default="127.0.0.1",
        description="Where the HTTPS port and health API are probed (this node, not the VIP).",
    )
    https_port: int = Field(
        default=443,
        ge=1,
        le=65535,
        description="Harbor's HTTPS port on this node, probed with a TCP connect.",
    )
    health_scheme: Literal["https", "http"] = Field(
        default="https",
        description=(
            "Scheme of the health API probe, GET scheme://probe_host:https_port/health_path: "
            "https (this node's own Harbor, certificate not verified) or http (no TLS)."
        ),
    )
    health_path: str = Field(
        default="/api/v2.0/health",
        description="Harbor's health API path (always HTTP 200: the JSON status decides).",
    )
    probe_interval_s: Seconds = Field(
        default=2.0,
        description="Period of the full probe (backstop to the Docker event stream).",
    )
    standby_check_interval_s: Seconds = Field(
        default=5.0,
        description=(
            "Period of the standby's readiness check (Ceph, image, stale mapping, Docker, "
            "images): a dozen commands, so less often than the master's probe."
        ),
    )
    probe_timeout_s: Seconds = Field(
        default=2.0,
        description="Timeout of one probe (TCP, HTTP, Docker API call).",
    )
    probe_rise: int = Field(
        default=2,
        ge=1,
        description="Consecutive good probes before healthy.",
    )
    probe_fall: int = Field(
        default=3,
        ge=1,
        description="Consecutive bad probes before unhealthy (3 x 2 s rides out a restart).",
    )
