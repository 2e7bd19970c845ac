"""The HTTP endpoints, served by a real aiohttp server on loopback and a real Unix socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harbor_ha.http import ControlError, Endpoints, HttpServers
from harbor_ha.metrics import Metrics


class Board:
    """The values the endpoints read, changed by the tests."""

    def __init__(self) -> None:
        self.alive = (True, "ticked 0.1 s ago")
        self.primary = (False, "state is BACKUP")
        self.ready = (True, "BACKUP and ready to take over")
        self.serving = (False, "state is DRAINING")
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def control(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((command, args))
        if command == "switchover":
            raise ControlError("switchover needs MASTER")
        if command == "bad":
            raise ValueError("bad argument")
        if command != "notify":
            raise KeyError(command)
        return {"posted": "KA_MASTER"}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[HttpServers, Board, Metrics]]:
    board = Board()
    metrics = Metrics()
    metrics.state.state("BACKUP")
    servers = HttpServers(
        Endpoints(
            registry=metrics.registry,
            alive=lambda: board.alive,
            primary=lambda: board.primary,
            ready=lambda: board.ready,
            serving=lambda: board.serving,
            status=lambda: {"state": "BACKUP"},
            control=board.control,
        ),
        host="127.0.0.1",
        port=0,
        control_socket=tmp_path / "ctl.sock",
    )
    await servers.start()
    yield servers, board, metrics
    await servers.stop()


async def _get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def test_metrics_endpoint(served: tuple[HttpServers, Board, Metrics]) -> None:
    """/metrics serves the Prometheus text format with harbor_ha_ metrics."""
    servers, _, _ = served
    assert servers.bound_port
    status, text = await _get(servers.bound_port, "/metrics")
    assert status == 200
    assert 'harbor_ha_state{harbor_ha_state="BACKUP"} 1.0' in text


async def test_health_follows_liveness(served: tuple[HttpServers, Board, Metrics]) -> None:
    """/health is 200 while the loop ticks and 503 when it stalls."""
    servers, board, _ = served
    assert servers.bound_port
    assert (await _get(servers.bound_port, "/health"))[0] == 200
    board.alive = (False, "main loop has not ticked for 40 s")
    status, text = await _get(servers.bound_port, "/health")
    assert status == 503 and "40 s" in text


async def test_primary_only_when_master_and_healthy(
    served: tuple[HttpServers, Board, Metrics],
) -> None:
    """/primary answers 200 only when the daemon says MASTER and healthy (for load balancers)."""
    servers, board, _ = served
    assert servers.bound_port
    assert (await _get(servers.bound_port, "/primary"))[0] == 503
    board.primary = (True, "MASTER and harbor healthy")
    assert (await _get(servers.bound_port, "/primary"))[0] == 200


async def _request(method: str, port: int, path: str) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, f"http://127.0.0.1:{port}{path}") as r,
    ):
        return r.status, await r.read()


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_primary_answers_load_balancer_methods(
    served: tuple[HttpServers, Board, Metrics], method: str
) -> None:
    """/primary answers GET, HEAD and OPTIONS (HAProxy's httpchk default) with the verdict's
    status code, 503 then 200; only GET carries the JSON body."""
    servers, board, _ = served
    assert servers.bound_port
    code, body = await _request(method, servers.bound_port, "/primary")
    assert code == 503
    assert (b"state is BACKUP" in body) is (method == "GET")
    board.primary = (True, "MASTER and harbor healthy")
    assert (await _request(method, servers.bound_port, "/primary"))[0] == 200


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_serving_is_the_per_node_check(
    served: tuple[HttpServers, Board, Metrics], method: str
) -> None:
    """/serving (the shared mode's per-node check for the load balancer) answers GET, HEAD
    and OPTIONS with 503 while the node does not serve (a drain) and 200 while it does; it
    reads its own verdict, not /primary's."""
    servers, board, _ = served
    assert servers.bound_port
    code, body = await _request(method, servers.bound_port, "/serving")
    assert code == 503 and (b"DRAINING" in body) is (method == "GET")
    board.serving = (True, "SERVING and harbor healthy")
    assert (await _request(method, servers.bound_port, "/serving"))[0] == 200
    assert (await _request(method, servers.bound_port, "/primary"))[0] == 503


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_liveness_follows_the_loop(
    served: tuple[HttpServers, Board, Metrics], method: str
) -> None:
    """/liveness (Patroni's name) is 200 while the loop ticks and 503 when it stalls, for
    every check method; it ignores the node's role."""
    servers, board, _ = served
    assert servers.bound_port
    board.ready = (False, "state is FENCED_SELF")
    assert (await _request(method, servers.bound_port, "/liveness"))[0] == 200
    board.alive = (False, "main loop has not ticked for 40 s")
    assert (await _request(method, servers.bound_port, "/liveness"))[0] == 503


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_readiness_follows_the_ready_verdict(
    served: tuple[HttpServers, Board, Metrics], method: str
) -> None:
    """/readiness is 200 when the node is ready for its role and 503 with the reason when not,
    independently of liveness."""
    servers, board, _ = served
    assert servers.bound_port
    assert (await _request(method, servers.bound_port, "/readiness"))[0] == 200
    board.ready = (False, "standby not ready: docker engine not answering")
    code, body = await _request(method, servers.bound_port, "/readiness")
    assert code == 503
    assert (b"docker engine" in body) is (method == "GET")


async def test_status_json(served: tuple[HttpServers, Board, Metrics]) -> None:
    """/status is JSON."""
    servers, _, _ = served
    assert servers.bound_port
    status, text = await _get(servers.bound_port, "/status")
    assert status == 200 and '"state": "BACKUP"' in text


async def test_control_not_on_tcp(served: tuple[HttpServers, Board, Metrics]) -> None:
    """Control commands are not reachable over TCP."""
    servers, board, _ = served
    assert servers.bound_port
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"http://127.0.0.1:{servers.bound_port}/control/notify", json={"state": "MASTER"}
        ) as r,
    ):
        assert r.status in (404, 405)
    assert board.calls == []


async def test_control_socket(served: tuple[HttpServers, Board, Metrics], tmp_path: Path) -> None:
    """The Unix socket is 0600 and maps control outcomes to 200/404/400/409."""
    _, board, _ = served
    sock = tmp_path / "ctl.sock"
    assert sock.stat().st_mode & 0o777 == 0o600
    conn = aiohttp.UnixConnector(path=str(sock))
    async with aiohttp.ClientSession(connector=conn) as s:

        async def post(cmd: str, body: Any) -> tuple[int, dict[str, Any]]:
            async with s.post(f"http://x/control/{cmd}", json=body) as r:
                return r.status, await r.json()

        assert await post("notify", {"state": "MASTER"}) == (
            200,
            {"ok": True, "posted": "KA_MASTER"},
        )
        assert (await post("switchover", {}))[0] == 409
        assert (await post("bad", {}))[0] == 400
        assert (await post("nosuch", {}))[0] == 404
        assert (await post("notify", [1, 2]))[0] == 400
        async with s.get("http://x/status") as r:
            assert r.status == 200
    assert board.calls[0] == ("notify", {"state": "MASTER"})
