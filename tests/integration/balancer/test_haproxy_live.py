"""The rendered haproxy.cfg run by the real HAProxy on loopback: two nodes (127.0.0.11 and
.12), each with a TCP server on Harbor's port that answers its name (a stand-in for Harbor:
TLS passes through untouched, so any TCP service shows where a connection went) and an HTTP
server on harbor-ha's port answering /serving 200 or 503 (a stand-in for the shared mode's
endpoint, which is not in this branch).  Pins: the checks are GET /serving on harbor-ha's
port; a client stays on one node; a node answering 503 leaves rotation and its clients move;
a node that comes back does not take them back (the stick table keeps them)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from harbor_ha.haproxy import detection_s, render_haproxy
from harbor_ha.settings import load_settings
from tests.unit.test_cli_ops import closed_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed"),
]

HOSTS = {"a": "127.0.0.11", "b": "127.0.0.12"}


@dataclass
class Node:
    """One node's stand-ins: what /serving answers, the checks it got."""

    serving: bool = True
    checks: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Lab:
    port: int  # the load balancer's (and the nodes' Harbor) port
    nodes: dict[str, Node]
    limit_s: float  # the rendered detection time
    log: Path  # HAProxy's output


async def _serve_name(name: str, host: str, port: int) -> asyncio.Server:
    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name.encode())
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, host, port)


async def _serve_check(node: Node, host: str, port: int) -> web.AppRunner:
    async def serving(request: web.Request) -> web.Response:
        node.checks.append((request.method, request.path))
        return web.Response(status=200 if node.serving else 503)

    app = web.Application()
    app.router.add_route("*", "/serving", serving)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    """The two nodes' stand-ins and HAProxy with the rendered config (bound to 127.0.0.1
    instead of every address, so the nodes can listen on the same port), all stopped after."""
    port, check_port = closed_port(), closed_port()
    settings = load_settings(
        None,
        {
            "HARBOR_HA_VIP": "10.0.0.200/24", "HARBOR_HA_INTERFACE": "eth0",
            "HARBOR_HA_MODE": "replicated", "HARBOR_HA_NODE_NAME": "lb-1",
            "HARBOR_HA_NODES": ",".join(f"{n}={h}:{check_port}" for n, h in HOSTS.items()),
            "HARBOR_HA_HTTPS_PORT": str(port), "HARBOR_HA_LB_CHECK_INTERVAL_S": "0.2",
            "HARBOR_HA_LB_CHECK_TIMEOUT_S": "0.5", "HARBOR_HA_LB_CHECK_RISE": "2",
        },
    )  # fmt: skip
    text = render_haproxy(settings)
    assert f"    bind :{port}\n" in text
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text.replace(f"    bind :{port}\n", f"    bind 127.0.0.1:{port}\n"))
    nodes = {name: Node() for name in HOSTS}
    servers = [await _serve_name(n, h, port) for n, h in HOSTS.items()]
    checks = [await _serve_check(nodes[n], h, check_port) for n, h in HOSTS.items()]
    log = (tmp_path / "haproxy.log").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once, not waited on in the loop)
        ["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield Lab(port, nodes, detection_s(settings), tmp_path / "haproxy.log")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        for server in servers:
            server.close()
            await server.wait_closed()
        for runner in checks:
            await runner.cleanup()
        log.close()


async def connect(port: int) -> str:
    """The name of the node a new connection through the load balancer reaches ('' if the
    connection was refused or closed without an answer)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return ""
    try:
        return (await asyncio.wait_for(reader.read(16), 5)).decode()
    finally:
        writer.close()


async def until_reached(port: int, want: str, deadline_s: float) -> float:
    """Seconds until a new connection reaches ``want`` (fails after ``deadline_s``)."""
    start = time.monotonic()
    while (got := await connect(port)) != want:
        assert time.monotonic() - start < deadline_s, f"still {got!r}, not {want!r}"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_clients_stay_on_a_node_and_leave_it_when_it_stops_serving(lab: Lab) -> None:
    """Checked by GET /serving; ten connections from one client land on one node; that node
    answering 503 moves the client to the other (a bounded wait, the rendered detection time
    with a margin); back at 200 it is in rotation again but the client stays where it is."""
    first = ""
    start = time.monotonic()
    while not first:  # haproxy is starting
        assert time.monotonic() - start < 20, "haproxy never answered: " + lab.log.read_text()
        first = await connect(lab.port)
        await asyncio.sleep(0.05)
    other = next(n for n in HOSTS if n != first)
    assert {await connect(lab.port) for _ in range(10)} == {first}
    while not all(node.checks for node in lab.nodes.values()):
        assert time.monotonic() - start < 20, "no check reached harbor-ha's port"
        await asyncio.sleep(0.05)
    assert {c for node in lab.nodes.values() for c in node.checks} == {("GET", "/serving")}

    lab.nodes[first].serving = False
    await until_reached(lab.port, other, deadline_s=lab.limit_s + 5)
    assert {await connect(lab.port) for _ in range(10)} == {other}

    lab.nodes[first].serving = True
    seen = len(lab.nodes[first].checks)
    while len(lab.nodes[first].checks) < seen + 4:  # rise 2, with a margin
        await asyncio.sleep(0.1)
    assert {await connect(lab.port) for _ in range(10)} == {other}
