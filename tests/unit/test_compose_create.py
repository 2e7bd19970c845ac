"""Compose.create (the standby's pre-created, never started containers): exact command line and
failure, driven by the FAKE FakeRunner of tests/fakes.py (pins argv, produces
failures on demand; the real behaviour is in tests/integration/docker/test_precreate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_ha.compose import Compose, ComposeFailed
from tests.fakes import FakeRunner, by_substring, reply
from tests.unit.test_compose_argv import settings

CONFIG = """\
services:
  log:
    image: goharbor/harbor-log:v2
  core:
    image: goharbor/harbor-core:v2
    volumes:
    - /data:/data:z
    - source: /data/secret/keys/secretkey
      target: /etc/core/key
      type: bind
  redis:
    image: goharbor/redis-photon:v2
    volumes:
    - /data/redis:/var/lib/redis
"""
"""A normalized `compose config` (v1's layout): core binds a secret file with the long syntax
(Docker cannot create it on an unmounted data volume), redis a data dir with the short one."""


def compose(tmp_path: Path, r: FakeRunner) -> Compose:
    file = tmp_path / "docker-compose.yml"
    file.write_text("services: {}\n")
    return Compose(
        settings(compose_command=["docker-compose"], compose_file=file,
                 mountpoint=Path("/data")), r,
    )  # fmt: skip


async def test_create_is_up_no_start_of_what_can_be_created(tmp_path: Path) -> None:
    """create() runs `<compose> -p PROJECT -f FILE up --no-start --no-deps --remove-orphans`
    for every service but those with a long-syntax bind under the mountpoint (never -d, never
    start), with DOCKER_HOST, bounded by the given timeout; it returns the services."""
    r = FakeRunner([by_substring({" config": CONFIG})])
    c = compose(tmp_path, r)
    assert await c.create(12.0) == ["log", "redis"]
    file = str(tmp_path / "docker-compose.yml")
    assert r.argvs()[-1] == [
        "docker-compose", "-p", "harbor", "-f", file,
        "up", "--no-start", "--no-deps", "--remove-orphans", "log", "redis",
    ]  # fmt: skip
    assert r.calls[-1][1] == 12.0
    assert r.calls[-1][2] == {"DOCKER_HOST": "unix:///run/hh/docker.sock"}


async def test_create_failure_raises_compose_failed(tmp_path: Path) -> None:
    """A failing create raises ComposeFailed with compose's message."""
    r = FakeRunner([
        by_substring({" config": CONFIG}),
        lambda a: reply(rc=1, stderr="no such image: goharbor/x"),
    ])  # fmt: skip
    c = compose(tmp_path, r)
    with pytest.raises(ComposeFailed, match="no such image"):
        await c.create(5.0)
