"""The command lines of compose and of the docker CLI (pure: built from the settings)."""

from __future__ import annotations

from harbor_ha.settings import Settings

PROJECT_LABEL = "com.docker.compose.project"


def compose_candidates(settings: Settings) -> list[list[str]]:
    """For ``compose_command=auto``: v2 ``docker compose``, then v1 ``docker-compose``."""
    return [[settings.docker_bin, "compose"], ["docker-compose"]]


def compose_argv(command: list[str], settings: Settings, *args: str) -> list[str]:
    """``<compose> -p PROJECT -f FILE args...``."""
    return [
        *command,
        "-p",
        settings.compose_project,
        "-f",
        str(settings.compose_file),
        *args,
    ]


def docker_argv(settings: Settings, *args: str) -> list[str]:
    """``docker -H DOCKER_HOST args...``."""
    return [settings.docker_bin, "-H", settings.docker_host, *args]


def ps_args(project: str, *, all_: bool) -> list[str]:
    """``ps -q --no-trunc [-a] --filter label=PROJECT_LABEL=project`` (docker arguments)."""
    return [
        "ps",
        "-q",
        "--no-trunc",
        *(["-a"] if all_ else []),
        "--filter",
        f"label={PROJECT_LABEL}={project}",
    ]


def down_args(settings: Settings) -> list[str]:
    """``down -t compose_stop_timeout_s --remove-orphans`` (compose arguments)."""
    return ["down", "-t", str(settings.compose_stop_timeout_s), "--remove-orphans"]
