"""Compose and docker CLI: the pure argv builders and output parsers (no command runs)."""

from __future__ import annotations

from pathlib import Path

from harbor_ha.compose.argv import (
    compose_argv,
    compose_candidates,
    docker_argv,
    down_args,
    ps_args,
)
from harbor_ha.compose.parse import detail, named_missing_images, parse_ids, parse_image_list
from harbor_ha.runner import CommandResult
from tests.fakes import example_settings

S = example_settings(
    compose_file=Path("/opt/h/docker-compose.yml"),
    compose_project="hb",
    docker_bin="/x/docker",
    docker_host="unix:///run/d.sock",
    compose_stop_timeout_s=4,
)


def test_compose_argv_puts_project_and_file_first() -> None:
    """`<compose> -p PROJECT -f FILE args...` whatever the compose command line is."""
    assert compose_argv(["docker", "compose"], S, "up", "-d") == [
        "docker", "compose", "-p", "hb", "-f", "/opt/h/docker-compose.yml", "up", "-d",
    ]  # fmt: skip


def test_auto_candidates_are_v2_then_v1() -> None:
    """`auto` tries the docker CLI's compose plugin (v2) before docker-compose (v1)."""
    assert compose_candidates(S) == [["/x/docker", "compose"], ["docker-compose"]]


def test_docker_argv_names_the_endpoint() -> None:
    """Every docker CLI call carries -H DOCKER_HOST."""
    assert docker_argv(S, "kill", "a") == ["/x/docker", "-H", "unix:///run/d.sock", "kill", "a"]


def test_ps_filters_by_project_label() -> None:
    """ps lists full IDs by the project's label; -a only for all containers."""
    label = "label=com.docker.compose.project=hb"
    assert ps_args("hb", all_=False) == ["ps", "-q", "--no-trunc", "--filter", label]
    assert ps_args("hb", all_=True) == ["ps", "-q", "--no-trunc", "-a", "--filter", label]


def test_down_carries_the_grace() -> None:
    """down passes compose_stop_timeout_s and removes orphans."""
    assert down_args(S) == ["down", "-t", "4", "--remove-orphans"]


def test_image_list_dedupes_in_order() -> None:
    """`config --images` output: one per line, duplicates dropped, order kept."""
    assert parse_image_list("b:1\na:2\nb:1\n") == ["b:1", "a:2"]
    assert parse_image_list("") == []


def test_ids_and_missing_images() -> None:
    """IDs are whitespace-separated; only "No such image:" lines name missing images."""
    assert parse_ids("aaa\nbbb\n") == ["aaa", "bbb"]
    stderr = "Error: No such image: goharbor/x:1\nsomething else\nError: No such image: y\n"
    assert named_missing_images(stderr) == {"goharbor/x:1", "y"}


def test_detail_prefers_stderr() -> None:
    """A failure's detail is its stderr, else its stdout, stripped."""
    assert detail(CommandResult((), 1, "out\n", " err \n", 0.0)) == "err"
    assert detail(CommandResult((), 1, "out\n", "", 0.0)) == "out"
