"""`harbor-ha status` exit codes, `list`, `history` and `switchover --wait`, run as real
subprocesses against real servers: the daemon's HTTP module serving a node's /status on a
loopback port (the peer) and on a real control socket (this node)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from harbor_ha.commands.views import CRITICAL, OK, UNKNOWN, WARNING, verdict
from harbor_ha.history import HistoryWriter, history_files, read_history
from harbor_ha.http import ControlError, Endpoints, HttpServers
from harbor_ha.metrics import Metrics
from tests.fakes import REQUIRED_ENV

MASTER = {"node": "b", "state": "MASTER", "harbor_healthy": True, "vip_present": True,
          "fault": False, "maintenance": False, "last_failover": {"at": 1_700_000_000,
          "failover_s": 7.25}, "lease": {"held": True, "holder": "b"}}  # fmt: skip
BACKUP = {"node": "a", "state": "BACKUP", "standby_ready": True, "vip_present": False,
          "fault": False, "maintenance": False, "failures": 0,
          "lease": {"held": False, "holder": None}}  # fmt: skip


class FakeNode:
    """A node's served status (what the test sets) and the control commands it got."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = dict(status)
        self.calls: list[str] = []
        self.refuse = ""

    async def control(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(command)
        if self.refuse:
            raise ControlError(self.refuse)
        return {"posted": command.upper()}


async def serve(node: FakeNode, sock: Path) -> HttpServers:
    servers = HttpServers(
        Endpoints(
            registry=Metrics().registry,
            alive=lambda: (True, "ok"),
            primary=lambda: (False, "-"),
            ready=lambda: (True, "-"),
            status=lambda: node.status,
            control=node.control,
        ),
        host="127.0.0.1",
        port=0,
        control_socket=sock,
    )
    await servers.start()
    return servers


Nodes = tuple[FakeNode, FakeNode, dict[str, str]]


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Nodes]:
    """This node 'a' on its control socket, the peer 'b' on a loopback port, and the env of a
    CLI configured for them."""
    here, peer = FakeNode(BACKUP), FakeNode(MASTER)
    s_here = await serve(here, tmp_path / "a.sock")
    s_peer = await serve(peer, tmp_path / "b.sock")
    env = {
        "HARBOR_HA_NODE_NAME": "a",
        "HARBOR_HA_CONTROL_SOCKET": str(tmp_path / "a.sock"),
        "HARBOR_HA_RUNTIME_DIR": str(tmp_path),
        "HARBOR_HA_STATE_DIR": str(tmp_path / "state"),
        "HARBOR_HA_PEER_HTTP_URL": f"http://127.0.0.1:{s_peer.bound_port}",
        "HARBOR_HA_PEER_TIMEOUT_S": "1",
    }
    yield here, peer, env
    await s_here.stop()
    await s_peer.stop()


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HARBOR_", "CEPH_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harbor_ha.cli", *args, env={**base, **REQUIRED_ENV, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------- status
@pytest.mark.parametrize(
    ("status", "code"),
    [
        (MASTER, OK),
        (BACKUP, OK),
        ({**MASTER, "harbor_healthy": False}, CRITICAL),
        ({**MASTER, "harbor_healthy": None}, WARNING),
        ({"state": "FENCED_SELF"}, CRITICAL),
        ({**BACKUP, "maintenance": True}, WARNING),
        ({**BACKUP, "fault": True, "failures": 2}, WARNING),
        ({**BACKUP, "standby_ready": False, "standby_problems": ["docker down"]}, WARNING),
        ({"state": "MAPPING", "step": "map"}, WARNING),
    ],
)
def test_verdict_is_a_monitoring_plugin_code(status: dict[str, Any], code: int) -> None:
    """0 OK for a healthy MASTER or ready BACKUP, 1 WARNING for maintenance, backoff, not ready
    or a step running, 2 CRITICAL for FENCED_SELF or an unhealthy MASTER."""
    assert verdict(status)[0] == code


async def test_status_exit_code_follows_the_served_state(nodes: Nodes) -> None:
    """`harbor-ha status` exits with the verdict of what the daemon serves; --json too."""
    here, _, env = nodes
    code, out, _ = await cli("status", env=env)
    assert code == OK and "BACKUP, ready to take over" in out
    here.status = {**BACKUP, "standby_ready": False, "standby_problems": ["docker down"]}
    code, out, _ = await cli("status", "--json", env=env)
    assert code == WARNING and json.loads(out)["standby_problems"] == ["docker down"]
    here.status = {"node": "a", "state": "FENCED_SELF"}
    assert (await cli("status", env=env))[0] == CRITICAL
    env = {**env, "HARBOR_HA_CONTROL_SOCKET": str(Path(env["HARBOR_HA_RUNTIME_DIR"]) / "x")}
    assert (await cli("status", env=env))[0] == UNKNOWN


# ------------------------------------------------------------------- list
async def test_list_shows_both_nodes(nodes: Nodes) -> None:
    """`list` shows this node and the peer (read over HTTP) with state, VIP, health, fault, the
    lease holder each node sees and the last failover with its timestamp; --json carries both
    statuses."""
    _, _, env = nodes
    code, out, err = await cli("list", env=env)
    assert code == 0, err
    header, row_a, row_b = out.splitlines()
    assert header.split()[:3] == ["NODE", "STATE", "VIP"]
    assert row_a.split()[:3] == ["a", "BACKUP", "no"] and "-" in row_a
    assert row_b.split()[:4] == ["b", "MASTER", "yes", "yes"]
    assert "2023-11-14 22:13:20Z (7.25 s)" in row_b
    lease = header.split().index("LEASE")
    assert row_b.split()[lease] == "b" and row_a.split()[lease] == "-"
    code, out, _ = await cli("list", "--json", env=env)
    data = json.loads(out)
    assert [d["node"] for d in data] == ["a", "b"] and data[1]["status"]["state"] == "MASTER"


async def test_list_shows_every_node_of_the_node_list(nodes: Nodes, tmp_path: Path) -> None:
    """With HARBOR_HA_NODES, `list` shows this node and every other node of the list in the
    list's order (c served on its own loopback port, d's port closed: unreachable under its
    listed name); exit 4 since d could not be read."""
    _, _, env = nodes
    peer_port = int(env.pop("HARBOR_HA_PEER_HTTP_URL").rsplit(":", 1)[1])
    third = FakeNode({**BACKUP, "node": "c"})
    s_third = await serve(third, tmp_path / "c.sock")
    try:
        listed = (
            f"a=127.0.0.1:{closed_port()},b=127.0.0.1:{peer_port},"
            f"c=127.0.0.1:{s_third.bound_port},d=127.0.0.1:{closed_port()}"
        )
        code, out, err = await cli("list", env={**env, "HARBOR_HA_NODES": listed})
    finally:
        await s_third.stop()
    assert code == 4, err
    _, row_a, row_b, row_c, row_d = out.splitlines()
    assert [row.split()[0] for row in (row_a, row_b, row_c, row_d)] == ["a", "b", "c", "d"]
    assert row_b.split()[1] == "MASTER" and row_c.split()[1] == "BACKUP"
    assert row_d.split()[1] == "unreachable"


async def test_list_and_status_show_replication_in_the_replicated_mode(nodes: Nodes) -> None:
    """Nodes of the replicated mode: `list` gets a REPLICATION column after LEASE (the latest
    execution and its age, or "not configured"), `status` a replication line with the items
    and the policy; the rbd mode's nodes (replication None) get neither (the test above)."""
    here, peer, env = nodes
    last = {"policy": "harbor-ha-to-a", "status": "Failed", "age_s": 300.0, "failed": 2,
            "total": 9, "trigger": "event_based"}  # fmt: skip
    peer.status = {**MASTER, "replication": {"configured": True, "last": last, "peer": "a"}}
    here.status = {**BACKUP, "replication": {"configured": False, "problem": "x: no such file"}}
    code, out, err = await cli("list", env=env)
    assert code == 0, err
    header, row_a, row_b = out.splitlines()
    at = header.index("REPLICATION")
    assert header.split().index("REPLICATION") == header.split().index("LEASE") + 1
    assert row_a[at:].startswith("not configured") and row_b[at:].startswith("Failed 5 min ago")
    code, out, _ = await cli("status", env=env)
    (line,) = [line for line in out.splitlines() if line.startswith("replication")]
    assert line.split(None, 1)[1] == "not configured (x: no such file)"


async def test_list_shows_an_unreachable_peer_instead_of_failing(nodes: Nodes) -> None:
    """A peer that does not answer is a row 'unreachable' with the reason, within the peer
    timeout; the command exits 4 (not every node could be read) after printing this node."""
    _, _, env = nodes
    env = {**env, "HARBOR_HA_PEER_HTTP_URL": f"http://127.0.0.1:{closed_port()}"}
    code, out, _ = await cli("list", env=env)
    assert code == 4
    rows = out.splitlines()
    assert rows[1].split()[:2] == ["a", "BACKUP"]
    assert "unreachable" in rows[2] and "Connect" in rows[2]


async def test_list_times_out_on_a_silent_peer(nodes: Nodes) -> None:
    """A peer that accepts the connection but never answers is unreachable after
    HARBOR_HA_PEER_TIMEOUT_S, not a hang."""
    _, _, env = nodes
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        code, out, _ = await cli("list", env={**env, "HARBOR_HA_PEER_HTTP_URL": url})
    assert code == 4 and "unreachable" in out.splitlines()[2]


# ---------------------------------------------------------------- history
def test_history_journal_rotates_within_its_bound(tmp_path: Path) -> None:
    """The journal never holds more than twice max_bytes: the current file rotates to .1,
    the older .1 is dropped; what is left reads back oldest first, fsync'd lines intact."""
    w = HistoryWriter(tmp_path, "a", max_bytes=4096)
    for i in range(200):
        w({"at": i, "from": "BACKUP", "to": "FENCING", "event": "KA_MASTER", "reason": f"r{i}"})
    w.flush()
    w.close()
    current, rotated = history_files(tmp_path)
    assert current.stat().st_size <= 4096 and rotated.stat().st_size <= 4096
    ats = [r["at"] for r in read_history(tmp_path)]
    assert ats == sorted(ats) and ats[-1] == 199 and ats[0] > 0
    assert all(r["node"] == "a" for r in read_history(tmp_path))


def test_history_skips_a_torn_last_line(tmp_path: Path) -> None:
    """A line cut by a crash mid-write is skipped; the lines before it are read."""
    current, _ = history_files(tmp_path)
    current.write_text('{"at": 1, "to": "MASTER"}\n{"at": 2, "to": "BA')
    assert [r["at"] for r in read_history(tmp_path)] == [1]


async def test_history_command_shows_transitions_and_failovers(tmp_path: Path) -> None:
    """`history` prints the journal as a table with UTC timestamps, durations and reasons;
    --failovers keeps the completed failovers; --json prints the records as JSON lines."""
    state = tmp_path / "state"
    w = HistoryWriter(state, "a", max_bytes=1 << 20)
    w({"at": 1_700_000_000, "from": "BACKUP", "to": "FENCING", "event": "KA_MASTER",
       "reason": "keepalived: INSTANCE VI_1 MASTER", "in_previous_s": 3600.0})  # fmt: skip
    w({"at": 1_700_000_007, "from": "STARTING", "to": "MASTER", "event": "STEP_DONE",
       "reason": "start done", "in_previous_s": 4.1, "failover_s": 7.25})  # fmt: skip
    w.flush()
    w.close()
    env = {"HARBOR_HA_STATE_DIR": str(state), "HARBOR_HA_RUNTIME_DIR": str(tmp_path)}
    code, out, err = await cli("history", env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("TIME")
    assert "2023-11-14 22:13:20Z" in lines[1] and "BACKUP -> FENCING" in lines[1]
    assert "3600.0 s" in lines[1] and "keepalived: INSTANCE VI_1 MASTER" in lines[1]
    assert "7.25 s" in lines[2]
    _, out, _ = await cli("history", "--failovers", "--json", env=env)
    assert [json.loads(line)["to"] for line in out.splitlines()] == ["MASTER"]


# ------------------------------------------------------- switchover --wait
async def test_switchover_wait_returns_when_the_peer_serves(nodes: Nodes) -> None:
    """`switchover --wait` asks this node to hand over, then returns 0 once the peer says
    MASTER with Harbor healthy (here: 1.5 s later), not before."""
    here, peer, env = nodes
    here.status, peer.status = {**MASTER, "node": "a"}, {**BACKUP, "node": "b"}

    async def peer_takes_over() -> None:
        await asyncio.sleep(1.5)
        peer.status = {**MASTER, "node": "b"}

    started = time.monotonic()
    takeover = asyncio.create_task(peer_takes_over())
    code, out, err = await cli("switchover", "--wait", "--timeout", "20", env=env)
    await takeover
    assert code == 0, err
    assert here.calls == ["switchover"] and "b is MASTER" in out
    assert time.monotonic() - started >= 1.5


async def test_switchover_wait_fails_when_the_peer_does_not_serve(nodes: Nodes) -> None:
    """The peer never becomes MASTER: exit 1 after --timeout, saying what it last saw."""
    _, peer, env = nodes
    peer.status = {**BACKUP, "node": "b"}
    code, _, err = await cli("switchover", "--wait", "--timeout", "2", env=env)
    assert code == 1 and "b is BACKUP" in err


async def test_switchover_wait_refused_or_without_peer(nodes: Nodes) -> None:
    """A refused switchover exits 5 without waiting; --wait without a peer URL is a usage
    error (2) and asks nothing of the daemon."""
    here, _, env = nodes
    here.refuse = "switchover needs MASTER; this node is BACKUP"
    code, _, err = await cli("switchover", "--wait", "--timeout", "30", env=env)
    assert code == 5 and "needs MASTER" in err
    here.calls.clear()
    code, _, err = await cli("switchover", "--wait", env={**env, "HARBOR_HA_PEER_HTTP_URL": ""})
    assert code == 2 and "HARBOR_HA_PEER_HTTP_URL" in err and here.calls == []
