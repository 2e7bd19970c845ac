"""Compose and docker CLI: the pure argv builders and output parsers (no command runs)."""

from __future__ import annotations

from pathlib import Path

from harbor_ha.compose.argv import (
    compose_argv,
    compose_candidates,
    docker_argv,
    down_args,
    ps_args,
    ps_services_args,
    warm_args,
)
from harbor_ha.compose.parse import (
    detail,
    parse_ids,
    parse_image_list,
    parse_service_ids,
    service_blocks,
    services_naming,
    startable_on_bare_mountpoint,
)
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


def test_ids_are_whitespace_separated() -> None:
    """IDs are whitespace-separated (``docker ps -q``, ``kill``, ``rm`` output)."""
    assert parse_ids("aaa\nbbb\n") == ["aaa", "bbb"]


def test_detail_prefers_stderr() -> None:
    """A failure's detail is its stderr, else its stdout, stripped."""
    assert detail(CommandResult((), 1, "out\n", " err \n", 0.0)) == "err"
    assert detail(CommandResult((), 1, "out\n", "", 0.0)) == "out"


V1_CONFIG = """services:
  log:
    image: goharbor/harbor-log:v2
    volumes:
    - /var/log/harbor:/var/log/docker:rw
  registry:
    image: goharbor/registry-photon:v2
    volumes:
    - /data/registry:/storage:rw
  core:
    environment:
      CONFIG_PATH: /data/secret/core
    image: goharbor/harbor-core:v2
  proxy:
    image: goharbor/nginx-photon:v2
    volumes:
    - /data2/nginx:/etc/nginx:ro
version: '2.4'
"""
V2_CONFIG = """name: harbor
services:
  postgresql:
    image: goharbor/harbor-db:v2
    volumes:
      - type: bind
        source: /data/database
        target: /var/lib/postgresql/data
  portal:
    image: goharbor/harbor-portal:v2
  redis:
    image: goharbor/redis-photon:v2
    volumes:
      - type: bind
        source: /data
        target: /var/lib/redis
networks:
  default:
    name: harbor_default
"""


def test_service_blocks_of_v1_and_v2_configs() -> None:
    """Both compose versions' normalized configs: every service found, in order, and nothing
    outside ``services:`` (networks, version) taken for one."""
    assert list(service_blocks(V1_CONFIG)) == ["log", "registry", "core", "proxy"]
    assert list(service_blocks(V2_CONFIG)) == ["postgresql", "portal", "redis"]


def test_services_naming_the_mountpoint() -> None:
    """A service is found touching the data when its block names the mountpoint or a path under
    it (a bind mount, short or long syntax, or an environment value), and not when a path only
    shares the prefix (/data2)."""
    assert services_naming(V1_CONFIG, "/data") == ["registry", "core"]
    assert services_naming(V2_CONFIG, "/data/") == ["postgresql", "redis"]
    assert services_naming(V1_CONFIG, "/srv") == []


BARE_CONFIG = """name: hb
services:
  core:
    image: goharbor/harbor-core:v2
    volumes:
      - type: bind
        source: /data
        target: /data
        bind:
          create_host_path: true
  jobservice:
    image: goharbor/harbor-jobservice:v2
    volumes:
      - type: bind
        source: /data/job_logs
        target: /var/log/jobs
  harbored:
    image: goharbor/harbor-core:v2
    volumes:
      - type: bind
        source: "/data/"
        target: /data
      - type: bind
        source: /data/ca_download
        target: /etc/core/ca
  proxy:
    image: goharbor/nginx-photon:v2
    volumes:
      - type: bind
        source: /data2
        target: /x
"""


def test_startable_on_bare_mountpoint_only_binds_of_the_root_alone() -> None:
    """A service binding the mountpoint itself and nothing below it is reported (dockerd can
    start it on the bare mountpoint); one that also binds a path below it (Harbor's core:
    ca_download) is not, nor one binding only a sub-directory, nor a path sharing the prefix."""
    assert startable_on_bare_mountpoint(BARE_CONFIG, "/data") == ["core"]
    assert startable_on_bare_mountpoint(BARE_CONFIG, "/data/") == ["core"]
    assert startable_on_bare_mountpoint(BARE_CONFIG, "/srv") == []


def test_service_ids_from_ps_format() -> None:
    """``docker ps --format '{{.ID}} {{.Label ...}}'``: id -> service; no label -> ''."""
    assert parse_service_ids("abc registry\ndef \nghi proxy\n") == {
        "abc": "registry",
        "def": "",
        "ghi": "proxy",
    }


def test_warm_starts_only_the_named_services_without_dependencies() -> None:
    """The warm command never lets compose start a dependency (a data-bearing service)."""
    assert warm_args(["proxy", "portal"]) == ["up", "-d", "--no-deps", "proxy", "portal"]
    assert ps_services_args("harbor")[-1] == '{{.ID}} {{.Label "com.docker.compose.service"}}'
