"""Health JSON parsing, container verdicts, and the TCP/HTTP probes against real local servers."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from harbor_ha.probes.containers import container_status, judge
from harbor_ha.probes.http import HealthProbe, health_probe, parse_health, tcp_probe
from tests.fakes import example_settings

HEALTHY = {
    "status": "healthy",
    "components": [
        {"name": "core", "status": "healthy"},
        {"name": "database", "status": "healthy"},
        {"name": "redis", "status": "healthy"},
    ],
}


def test_parse_healthy() -> None:
    """Harbor's healthy answer is ok and lists every component."""
    r = parse_health(json.dumps(HEALTHY))
    assert r.ok
    assert r.status == "healthy"
    assert r.components == {"core": "healthy", "database": "healthy", "redis": "healthy"}


def test_parse_unhealthy_names_component_and_error() -> None:
    """An unhealthy component makes the report not ok; the reason names it with its error."""
    body = {
        "status": "unhealthy",
        "components": [
            {"name": "core", "status": "healthy"},
            {"name": "database", "status": "unhealthy", "error": "dial tcp: connection refused"},
        ],
    }
    r = parse_health(json.dumps(body).encode())
    assert not r.ok
    assert r.components["database"] == "unhealthy"
    assert "database unhealthy (dial tcp: connection refused)" in r.reason


def test_parse_component_unhealthy_overall_healthy_is_not_ok() -> None:
    """Defensive: a component reported unhealthy fails the probe even if status says healthy."""
    body = {"status": "healthy", "components": [{"name": "redis", "status": "unhealthy"}]}
    assert not parse_health(json.dumps(body)).ok


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>502 Bad Gateway</html>", b"[]", b'{"components": []}', b'{"status": 1}',
     b'{"status": "healthy", "components": {}}', b"\xff\xfe"],
)  # fmt: skip
def test_parse_garbage_is_error_not_exception(body: bytes) -> None:
    """Non-JSON or wrongly shaped bodies give an 'error' report, never an exception."""
    r = parse_health(body)
    assert not r.ok
    assert r.status == "error"
    assert r.reason.startswith("health API:")


def test_container_status_checks_state_and_health() -> None:
    """Running+healthy is good; a stopped container with a stale 'healthy' is not; running and
    still 'starting' (Harbor's images check every 30 s) is good, 'unhealthy' is not; no
    healthcheck means running is enough."""
    assert container_status({"Status": "running", "Health": {"Status": "healthy"}}) == (
        "running/healthy",
        True,
    )
    assert container_status({"Status": "exited", "Health": {"Status": "healthy"}}) == (
        "exited/healthy",
        False,
    )
    assert container_status({"Status": "running", "Health": {"Status": "starting"}})[1] is True
    assert container_status({"Status": "running", "Health": {"Status": "unhealthy"}})[1] is False
    assert container_status({"Status": "running"}) == ("running", True)


def test_judge_counts_and_names_first_bad() -> None:
    """Fewer containers than expected is unhealthy; bad containers are named in the reason."""
    good = {f"c{i}": ("running/healthy", True) for i in range(3)}
    assert judge(good, 3).healthy
    short = judge(good, 4)
    assert not short.healthy and "3 of 4" in short.reason
    bad = judge({**good, "harbor-db": ("exited/healthy", False)}, 3)
    assert not bad.healthy and "harbor-db exited/healthy" in bad.reason


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_tcp_probe_open_and_closed() -> None:
    """An accepting port is ok; a closed port is reported (connection refused), not raised."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert (await tcp_probe("127.0.0.1", port, 1.0)).ok
    closed = await tcp_probe("127.0.0.1", _free_port(), 1.0)
    assert not closed.ok
    assert "refused" in closed.reason.lower()


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[int, dict[str, object]]]:
    """A real HTTP server whose /api/v2.0/health answers with a mutable body/status."""
    state: dict[str, object] = {"body": json.dumps(HEALTHY), "status": 200, "delay": 0.0}
    peers: list[object] = []
    state["peers"] = peers

    async def handler(req: web.Request) -> web.Response:
        peers.append(req.transport.get_extra_info("peername") if req.transport else None)
        await asyncio.sleep(float(state["delay"]))  # type: ignore[arg-type]
        return web.Response(text=str(state["body"]), status=int(state["status"]))  # type: ignore[call-overload]

    app = web.Application()
    app.router.add_get("/api/v2.0/health", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port, state
    finally:
        await runner.cleanup()


async def test_health_probe_over_http(health_server: tuple[int, dict[str, object]]) -> None:
    """health_probe reads status/components over HTTP and reports HTTP errors, timeouts and a
    closed port without raising."""
    port, state = health_server
    s = example_settings(
        probe_host="127.0.0.1", https_port=port, health_scheme="http", probe_timeout_s=0.5
    )
    assert (await health_probe(s)).ok
    state["body"] = json.dumps({"status": "unhealthy", "components": [
        {"name": "core", "status": "unhealthy"}]})  # fmt: skip
    r = await health_probe(s)
    assert not r.ok and r.components == {"core": "unhealthy"}
    state["status"] = 502
    assert (await health_probe(s)).reason == "health API: HTTP 502"
    state["status"], state["delay"] = 200, 2.0
    assert "timeout" in (await health_probe(s)).reason
    closed = example_settings(probe_host="127.0.0.1", https_port=_free_port(), health_scheme="http")
    r = await health_probe(closed)
    assert not r.ok and r.status == "error"


async def test_health_probe_keeps_its_connection(
    health_server: tuple[int, dict[str, object]],
) -> None:
    """One HealthProbe answers three probes over ONE kept-alive connection (same client port);
    after an error (timeout) it reconnects, and the verdicts are those of health_probe."""
    port, state = health_server
    s = example_settings(
        probe_host="127.0.0.1", https_port=port, health_scheme="http", probe_timeout_s=0.5
    )
    probe = HealthProbe(s)
    try:
        assert all([(await probe.check()).ok for _ in range(3)])
        peers = state["peers"]
        assert isinstance(peers, list) and len(peers) == 3 and len(set(peers)) == 1
        state["delay"] = 2.0
        assert "timeout" in (await probe.check()).reason
        state["delay"] = 0.0
        assert (await probe.check()).ok
        assert peers[-1] != peers[0]
    finally:
        await probe.close()


async def test_health_probe_retries_a_stale_kept_connection() -> None:
    """A server that answers only the first request of each connection and closes on the next
    (as when its keep-alive timer fires): the kept connection fails, the request is retried on a
    new one (aiohttp's retry of an idempotent request), the verdict is healthy; a refused fresh
    connection is an error report, not an exception."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        body = json.dumps(HEALTHY).encode()
        answered = False
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if answered:
                    break
                answered = True
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n"
                writer.write(head.encode() + b"Content-Type: application/json\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    s = example_settings(
        probe_host="127.0.0.1", https_port=port, health_scheme="http", probe_timeout_s=1.0
    )
    probe = HealthProbe(s)
    try:
        async with server:
            assert (await probe.check()).ok
            assert (await probe.check()).ok
            assert len(connections) == 2
    finally:
        await probe.close()
    fresh = HealthProbe(example_settings(probe_host="127.0.0.1", https_port=_free_port(),
                                         health_scheme="http", probe_timeout_s=1.0))  # fmt: skip
    try:
        r = await fresh.check()
        assert not r.ok and r.status == "error" and "health API:" in r.reason
    finally:
        await fresh.close()
