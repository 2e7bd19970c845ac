"""The standby's readiness facts at their cadences: the Ceph CLI facts once per
standby_ceph_check_interval_s (again at once after a failure or a new BACKUP period), the
monitors' TCP reachability and Docker at every check.  The monitors are real TCP listeners on
loopback (and a closed port); Ceph and Docker are stand-ins counting what they are asked."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from harbor_ha.daemon.standby_readiness import StandbyReadiness
from tests.fakes import example_settings


class CountingCeph:
    """FAKE Ceph CLI facts: counts each question; ``fail`` makes `rbd info` fail."""

    def __init__(self) -> None:
        self.info_calls = 0
        self.list_calls = 0
        self.fail: Exception | None = None
        self.mapped: str | None = None

    async def image_info(self) -> dict[str, object]:
        self.info_calls += 1
        if self.fail is not None:
            raise self.fail
        return {"features": ["layering", "exclusive-lock"]}

    async def device_for_image(self) -> str | None:
        self.list_calls += 1
        return self.mapped


class Engine:
    """FAKE Docker engine: up, every image present."""

    def __init__(self) -> None:
        self.pings = 0

    def watch(self) -> AsyncIterator[str]:
        raise NotImplementedError

    async def ping(self) -> bool:
        self.pings += 1
        return True

    async def project_containers(self) -> list[str]:
        return []

    async def missing_images(self, images: list[str]) -> list[str]:
        return []

    async def close(self) -> None:
        return None


class Project:
    """FAKE compose project: one image."""

    async def images(self) -> list[str]:
        return ["goharbor/harbor-core:v1"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def listener() -> AsyncIterator[tuple[str, int]]:
    """A real TCP listener on loopback (a monitor's port that accepts, then hangs up)."""

    async def hang_up(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[:2]
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> tuple[str, int]:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()  # type: ignore[no-any-return]


def make(
    monitors: list[tuple[str, int]], **fields: object
) -> tuple[StandbyReadiness, CountingCeph, Engine, Clock]:
    s = example_settings(standby_ceph_check_interval_s=60.0, probe_timeout_s=1.0, **fields)
    ceph, engine, clock = CountingCeph(), Engine(), Clock()
    r = StandbyReadiness(
        s, ceph=ceph, containers=engine, compose=Project(),  # type: ignore[arg-type]
        monitors=monitors, clock=clock,
    )  # fmt: skip
    return r, ceph, engine, clock


async def test_ceph_cli_facts_once_per_interval(listener: tuple[str, int]) -> None:
    """Twelve checks 5 s apart (55 s): `rbd info` and `rbd device list` run once, Docker is
    asked every time; at 60 s the CLI facts are asked again; ceph_age_s tells their age."""
    r, ceph, engine, clock = make([listener])
    for _ in range(12):
        assert await r.problems() == []
        clock.now += 5
    assert (ceph.info_calls, ceph.list_calls, engine.pings) == (1, 1, 12)
    assert r.ceph_age_s == 60
    assert await r.problems() == []
    assert (ceph.info_calls, ceph.list_calls) == (2, 2)
    assert r.ceph_age_s == 0


async def test_failure_is_asked_again_at_every_check(listener: tuple[str, int]) -> None:
    """A failed `rbd info` is a problem, and asked again at the next check (not 60 s later):
    the standby becomes ready one check after Ceph answers again."""
    r, ceph, _engine, clock = make([listener])
    ceph.fail = RuntimeError("rbd info rbd/harbor: no answer within 15 s")
    assert await r.problems() == ["ceph: rbd info rbd/harbor: no answer within 15 s"]
    clock.now += 5
    assert await r.problems() != []
    ceph.fail = None
    clock.now += 5
    assert await r.problems() == []
    assert ceph.info_calls == 3


async def test_new_backup_period_asks_at_once(listener: tuple[str, int]) -> None:
    """reset() (a new BACKUP period, e.g. after this node's failed unmap) makes the next check
    ask the CLI facts at once: a stale mapping shows without waiting for the interval."""
    r, ceph, _engine, clock = make([listener])
    assert await r.problems() == []
    ceph.mapped = "/dev/rbd0"
    clock.now += 5
    assert await r.problems() == []  # cached: the mapping appeared behind our back
    r.reset()
    assert await r.problems() == ["stale local mapping /dev/rbd0 while BACKUP"]
    assert r.ceph_age_s == 0


async def test_unreachable_monitors_show_at_once_without_a_cli() -> None:
    """No monitor accepts TCP: a problem at the very next check, no Ceph CLI run meanwhile (it
    would only wait for its timeout); when one accepts again, the CLI facts are asked."""
    port = closed_port()
    r, ceph, _engine, clock = make([port])
    problems = await r.problems()
    assert len(problems) == 1 and problems[0].startswith("ceph: no monitor reachable")
    assert ceph.info_calls == 0
    sock = socket.socket()
    sock.bind(port)
    sock.listen(8)
    try:
        clock.now += 5
        assert await r.problems() == []
        assert ceph.info_calls == 1
    finally:
        sock.close()


async def test_one_reachable_monitor_is_enough(listener: tuple[str, int]) -> None:
    """Of several monitors one accepting is enough (quorum is Ceph's business, asked by the
    CLI facts); with none configured the TCP check is skipped."""
    r, _ceph, _engine, _clock = make([closed_port(), listener])
    assert await r.problems() == []
    r, ceph, _engine, _clock = make([])
    assert await r.problems() == [] and ceph.info_calls == 1


async def test_monitors_probed_concurrently(listener: tuple[str, int]) -> None:
    """The monitors are probed concurrently: two closed ports and a listener answer within one
    probe timeout."""
    r, _ceph, _engine, _clock = make([closed_port(), closed_port(), listener])
    async with asyncio.timeout(1.5):
        assert await r.problems() == []
