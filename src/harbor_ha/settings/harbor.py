"""Settings of Harbor itself: its compose project and the probes of its health."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from harbor_ha.settings.units import CommandLine, Seconds

HARBOR_CRITICAL_COMPONENTS = ["core", "database", "redis", "registry"]
"""The health API's components on the pull/push path: the token service and API (core), the
metadata (database, redis) and the blobs (registry).  Not here: portal (the web UI),
jobservice (replication, GC, scans), registryctl (GC's control), trivy and other scanners."""

HARBOR_DATA_SERVICES = [
    "registry",
    "registryctl",
    "postgresql",
    "redis",
    "core",
    "jobservice",
    "trivy-adapter",
]
"""Harbor v2's compose services that mount its data_volume (/data) in the installer's
docker-compose.yml: the registry's blobs, the database, redis's AOF, core's and jobservice's
files under /data.  The rest keep no data there: log and portal bind nothing under it; an
https install's proxy binds only its certificate under /data/secret/cert, so it needs the
mount too (found from the compose config, without a warning)."""


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
        description=(
            "Fewest containers a serving Harbor runs: 9 for Harbor v2 without extras (10 with "
            "trivy). A floor, so one default fits both."
        ),
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
    harbor_data_services: list[str] = Field(
        default_factory=lambda: list(HARBOR_DATA_SERVICES),
        description=(
            "Comma-separated compose services that keep data on the mount; they start only on "
            "the verified mount (safety rule 5). Harbor's: "
            + ",".join(HARBOR_DATA_SERVICES)
            + ". A service whose compose config names a path under the mountpoint counts as "
            "data-bearing whether listed or not."
        ),
    )
    warm_standby: bool = Field(
        default=True,
        description=(
            "A ready standby keeps Harbor's stateless services (those that need nothing on "
            "the mount: log and portal with Harbor's own file; the proxy too on an http-only "
            "install) running, so promotion starts only the others. Off: the standby runs no "
            "container."
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
        description=(
            "Harbor's HTTPS port on this node (its proxy): serving is GET /api/v2.0/ping "
            "(200) and GET /v2/ (401 or 200) through it."
        ),
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
    harbor_critical_components: list[str] = Field(
        default_factory=lambda: list(HARBOR_CRITICAL_COMPONENTS),
        description=(
            "Comma-separated components of Harbor's health API (/api/v2.0/health) whose "
            "unhealthy status fails Harbor (the VIP moves). Default: those on the pull/push "
            "path, " + ",".join(HARBOR_CRITICAL_COMPONENTS) + ". Every other component "
            "(portal, jobservice, registryctl, trivy) that reads unhealthy only degrades: a "
            "metric, an alert and a line in status, never a failover: a scanner's or the "
            "UI's hiccup must not take the registry away from its clients."
        ),
    )
    harbor_health_grace_s: float = Field(
        default=15.0,
        ge=0,
        description=(
            "How long after promotion the health API's component verdicts are not judged "
            "(containers and serving still are). Harbor's core checks each component on its "
            "own 10 s ticker from its start, and a component reads 'unknown status' until "
            "its first check ends: just after a start a verdict can be 10 s old. 15 s: one "
            "checker period plus the check itself and a probe interval. 0: judged from the "
            "first probe."
        ),
    )
    probe_interval_s: Seconds = Field(
        default=2.0,
        description="Period of the full probe (backstop to the Docker event stream).",
    )
    standby_check_interval_s: Seconds = Field(
        default=5.0,
        description=(
            "Period of the standby's readiness check, the facts asked in process: a Ceph "
            "monitor accepts TCP (a standby cut from Ceph shows within this), the Docker "
            "engine answers and has Harbor's images (Docker API). 5 s: an election a few "
            "seconds after a fault sees it; each check costs well under a millisecond."
        ),
    )
    standby_ceph_check_interval_s: Seconds = Field(
        default=60.0,
        description=(
            "Period of the standby's readiness facts that need a Ceph CLI process each: "
            "`rbd info` (Ceph answers our key, the image has exclusive-lock) and `rbd "
            "device list` (no stale local mapping). Re-asked at the next check after a "
            "failure and when a BACKUP period begins. 60 s: they change only by an "
            "operator's action or by this node's failed unmap (which starts a new period), "
            "every promotion step asks Ceph again before it acts, and two processes every "
            "5 s cost a standby more CPU than all its other work (docs/benchmark.md)."
        ),
    )
    probe_containers_full_s: Seconds = Field(
        default=10.0,
        description=(
            "Longest time the MASTER's container probe trusts the Docker event stream: while "
            "the stream is connected and no start/die/stop/health/create/destroy/pause event "
            "of the project arrived, a probe reuses its last look at the containers for up to "
            "this long instead of listing them again (the health API and port 443 are still "
            "probed every probe_interval_s). 10 s: the stream is the primary signal and is "
            "reliable while connected, the list is the backstop against a lost event, and "
            "the list every second was the largest single cost of an idle master "
            "(docs/benchmark.md, the footprint)."
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
