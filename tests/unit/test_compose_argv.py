"""Compose adapter: argv building, command detection and the stop fallback, driven by
FakeRunner (a FAKE runner replaying recorded outputs of docker/compose: used only to
pin the exact command lines and to produce failures on demand; the real thing is exercised in
tests/integration/docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_ha.compose import (
    Compose,
    ComposeFailed,
    ComposeNotFound,
    ComposeStillRunning,
    parse_config_images,
)
from harbor_ha.runner import CommandNotFound
from harbor_ha.settings import Settings
from tests.fakes import FakeRunner, Reply, example_settings, reply

# Recorded from docker-compose 1.29.2 `config` on lab/harbor_shape (abridged).
V1_CONFIG = """services:
  core:
    command:
    - /shape/shape.sh
    container_name: harbor-core
    healthcheck:
      test:
      - CMD
      timeout: 1s
    image: goharbor/harbor-core:shape
    init: true
  log:
    container_name: harbor-log
    image: goharbor/harbor-log:shape
  proxy:
    image: 'goharbor/nginx-photon:shape'
version: '2.4'
volumes:
  image: not-a-service
"""
V1_USAGE = "Validate and view the Compose file.\n\nUsage: config [options]\n"


def settings(**kw: object) -> Settings:
    base: dict[str, object] = {
        "compose_file": Path("/opt/harbor/docker-compose.yml"),
        "compose_project": "harbor",
        "docker_host": "unix:///run/hh/docker.sock",
        "compose_stop_timeout_s": 7,
    }
    base.update(kw)
    return example_settings(**base)


async def test_auto_prefers_v2_and_builds_argv() -> None:
    """auto: `docker compose version` works -> every call is
    `docker compose -p PROJECT -f FILE ...` with DOCKER_HOST in the env; detection is cached."""
    r = FakeRunner()
    c = Compose(settings(), r)
    assert await c.command() == ["docker", "compose"]
    await c.up()
    await c.command()
    assert r.argvs() == [
        ["docker", "compose", "version"],
        ["docker", "compose", "-p", "harbor", "-f", "/opt/harbor/docker-compose.yml",
         "up", "-d", "--remove-orphans"],
    ]  # fmt: skip
    assert all(env == {"DOCKER_HOST": "unix:///run/hh/docker.sock"} for _, _, env in r.calls)
    assert r.calls[1][1] == example_settings().start_timeout_s


async def test_auto_falls_back_to_v1() -> None:
    """auto: without the v2 plugin, `docker-compose version` is tried and used."""
    r = FakeRunner(
        [lambda a: reply(stderr="docker: unknown command: docker compose", rc=1)
         if a[:2] == ["docker", "compose"] else None]
    )  # fmt: skip
    c = Compose(settings(), r)
    assert await c.command() == ["docker-compose"]


async def test_auto_nothing_works_raises_compose_not_found() -> None:
    """auto: neither command works -> ComposeNotFound naming both attempts."""
    r = FakeRunner(
        [lambda a: reply(rc=1, stderr="unknown") if a[0] == "docker" else None,
         lambda a: CommandNotFound(a, "cannot execute: No such file")]
    )  # fmt: skip
    with pytest.raises(ComposeNotFound, match=r"docker compose version.*docker-compose version"):
        await Compose(settings(), r).command()


async def test_configured_command_is_used_verbatim() -> None:
    """A configured compose_command is used as given, without detection."""
    r = FakeRunner()
    c = Compose(settings(compose_command="/usr/bin/docker-compose --ansi never"), r)
    await c.validate()
    assert r.argvs() == [
        ["/usr/bin/docker-compose", "--ansi", "never", "-p", "harbor", "-f",
         "/opt/harbor/docker-compose.yml", "config", "-q"],
    ]  # fmt: skip


async def test_down_clean_does_not_kill() -> None:
    """compose down succeeds and nothing runs -> no docker kill."""
    r = FakeRunner()
    await Compose(settings(compose_command="docker-compose"), r).down(30)
    argvs = r.argvs()
    assert argvs[0][-4:] == ["down", "-t", "7", "--remove-orphans"]
    assert ["docker", "-H", "unix:///run/hh/docker.sock", "ps", "-q", "--no-trunc", "--filter",
            "label=com.docker.compose.project=harbor"] in argvs  # fmt: skip
    assert not any("kill" in a for a in argvs)


async def test_down_still_running_raises() -> None:
    """Containers that survive compose down and docker kill until the budget ends ->
    ComposeStillRunning naming them."""
    r = FakeRunner([lambda a: reply("ccc\n") if a[3:5] == ["ps", "-q"] else None])
    with pytest.raises(ComposeStillRunning, match="ccc"):
        await Compose(settings(compose_command="docker-compose"), r).down(0.3)


async def test_up_failure_raises_compose_failed() -> None:
    """compose up exiting non-zero -> ComposeFailed with compose's message."""
    r = FakeRunner([lambda a: reply(rc=1, stderr="no such image") if "up" in a else None])
    with pytest.raises(ComposeFailed, match="no such image"):
        await Compose(settings(compose_command="docker-compose"), r).up(10)


async def test_images_v1_parses_config() -> None:
    """v1 answers `config --images` with its usage (exit 0, empty stdout): the images come from
    `config`, and no docker CLI is run for them."""

    def rules(a: list[str]) -> Reply | None:
        if a[-2:] == ["config", "--images"]:
            return reply(stderr=V1_USAGE)
        if a[-1] == "config":
            return reply(V1_CONFIG)
        return None

    r = FakeRunner([rules])
    c = Compose(settings(compose_command="docker-compose"), r)
    assert await c.images() == [
        "goharbor/harbor-core:shape", "goharbor/harbor-log:shape", "goharbor/nginx-photon:shape"
    ]  # fmt: skip
    assert [a[-1] for a in r.argvs()] == ["--images", "config"]


async def test_images_v2_uses_config_images() -> None:
    """v2's `config --images` output is used directly, duplicates dropped."""
    r = FakeRunner([lambda a: reply("a:1\nb:2\na:1\n") if "--images" in a else None])
    assert await Compose(settings(compose_command="docker compose"), r).images() == ["a:1", "b:2"]


def test_parse_config_images_only_services() -> None:
    """Only `image:` keys of services (indent 4 under `services:`) count."""
    assert parse_config_images(V1_CONFIG) == [
        "goharbor/harbor-core:shape", "goharbor/harbor-log:shape", "goharbor/nginx-photon:shape"
    ]  # fmt: skip


async def test_validate_reports_problems() -> None:
    """`config -q` failing -> its message lines; compose not found -> one problem line."""
    r = FakeRunner([lambda a: reply(rc=1, stderr="line 3: bad\n\nsecond\n")])
    assert await Compose(settings(compose_command="docker-compose"), r).validate() == [
        "line 3: bad", "second"
    ]  # fmt: skip
    r2 = FakeRunner([lambda a: CommandNotFound(a, "cannot execute")])
    problems = await Compose(settings(compose_command="nope"), r2).validate()
    assert len(problems) == 1 and "cannot execute" in problems[0]


async def test_down_compose_fails_kills_and_removes_by_label() -> None:
    """compose down fails -> docker kill of the running and docker rm -f of every container of
    the project (removed containers cannot be resurrected by restart: always)."""
    state = {"running": "aaa\n", "all": "aaa\nbbb\n"}

    def rules(a: list[str]) -> Reply | None:
        if "down" in a:
            return reply(rc=1, stderr="no such file")
        if a[3:6] == ["ps", "-q", "--no-trunc"]:
            return reply(state["all"] if "-a" in a else state["running"])
        if a[3] == "kill":
            state["running"] = ""
            return reply("aaa\n")
        if a[3:5] == ["rm", "-f"]:
            state["all"] = ""
            return reply("aaa\nbbb\n")
        return None

    r = FakeRunner([rules])
    await Compose(settings(compose_command="docker-compose"), r).down(30)
    argvs = r.argvs()
    assert argvs[0][-4:] == ["down", "-t", "7", "--remove-orphans"]
    assert ["docker", "-H", "unix:///run/hh/docker.sock", "kill", "aaa"] in argvs
    assert ["docker", "-H", "unix:///run/hh/docker.sock", "rm", "-f", "aaa", "bbb"] in argvs
