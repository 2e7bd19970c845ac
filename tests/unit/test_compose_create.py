"""Compose.create (the standby's pre-created, never started containers): exact command line and
failure, driven by the FAKE FakeRunner of tests/fakes.py (pins argv, produces
failures on demand; the real behaviour is in tests/integration/docker/test_precreate.py)."""

from __future__ import annotations

import pytest

from harbor_ha.compose import Compose, ComposeFailed
from tests.fakes import FakeRunner, reply
from tests.unit.test_compose_argv import settings


async def test_create_is_up_no_start() -> None:
    """create() runs `<compose> -p PROJECT -f FILE up --no-start --remove-orphans` (never -d,
    never start) with DOCKER_HOST, bounded by the given timeout."""
    r = FakeRunner()
    c = Compose(settings(compose_command=["docker-compose"]), r)
    await c.create(12.0)
    assert r.argvs() == [
        ["docker-compose", "-p", "harbor", "-f", "/opt/harbor/docker-compose.yml",
         "up", "--no-start", "--remove-orphans"],
    ]  # fmt: skip
    assert r.calls[0][1] == 12.0
    assert r.calls[0][2] == {"DOCKER_HOST": "unix:///run/hh/docker.sock"}


async def test_create_failure_raises_compose_failed() -> None:
    """A failing create raises ComposeFailed with compose's message."""
    r = FakeRunner([lambda a: reply(rc=1, stderr="no such image: goharbor/x")])
    c = Compose(settings(compose_command=["docker-compose"]), r)
    with pytest.raises(ComposeFailed, match="no such image"):
        await c.create(5.0)
