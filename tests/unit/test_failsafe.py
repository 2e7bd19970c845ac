"""The failsafe exchange over real TCP on loopback (harbor_ha/peer/failsafe.py and
daemon/failsafe.py): only an authentic, fresh request gets an answer, a promise is given only
by a BACKUP node that cannot reach Ceph, and the master trusts only an answer with a valid
MAC.  The Ceph probe is the scripted lease stand-in; the real probe is in
tests/integration/ceph/test_lease_real.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from harbor_ha.daemon.failsafe import Failsafe, promise_left, promise_path
from harbor_ha.lease import LeaseInfo, LeaseTimeout
from harbor_ha.machine import Event, Node, State, transition
from harbor_ha.peer.failsafe import Decision, FailsafeServer, ask, mac
from tests.fakes import example_settings
from tests.unit.test_leasing import ScriptedLease

SECRET = b"s3cret-shared"


async def promise() -> Decision:
    return Decision(True, "cannot reach Ceph either")


@pytest.fixture
async def server() -> AsyncIterator[FailsafeServer]:
    srv = FailsafeServer("127.0.0.1:0", SECRET, 15.0, promise, node="b")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def raw(port: int, line: bytes) -> dict[str, object]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(line)
    await writer.drain()
    answer = json.loads(await reader.readline())
    writer.close()
    assert isinstance(answer, dict)
    return answer


async def test_the_right_secret_gets_the_promise(server: FailsafeServer) -> None:
    """Same secret both sides: the master gets the promise and its window."""
    promised, why, window = await ask(f"127.0.0.1:{server.port}", SECRET, "a", 2.0)
    assert promised and window == 15.0 and "cannot reach Ceph" in why


@pytest.mark.parametrize("secret", [b"wrong-secret", b""])
async def test_a_wrong_or_missing_secret_is_refused_and_logged(
    server: FailsafeServer, secret: bytes
) -> None:
    """A request signed with another secret (or with an empty one) is refused, the refusal
    logged with its reason, and the master gets no promise."""
    with capture_logs() as logs:
        promised, why, _ = await ask(f"127.0.0.1:{server.port}", secret, "a", 2.0)
    assert not promised and "refused" in why
    refusals = [e for e in logs if e["event"] == "failsafe_request_refused"]
    assert len(refusals) == 1 and "wrong MAC" in str(refusals[0]["reason"])
    assert server.refused == 1


async def test_no_mac_a_stale_time_and_a_replay_are_refused(server: FailsafeServer) -> None:
    """Without a MAC, with a time far off, or a nonce used before: refused (logged)."""
    with capture_logs() as logs:
        answer = await raw(server.port, b'{"node": "a", "nonce": "n1", "ts": 1}\n')
        assert answer == {"ok": False, "error": "unauthenticated"}
        old = time.time() - 120
        req = {"node": "a", "nonce": "n2", "ts": old, "mac": mac(SECRET, "ask", "a", "n2", old)}
        assert (await raw(server.port, json.dumps(req).encode() + b"\n"))["ok"] is False
        now = time.time()
        req = {"node": "a", "nonce": "n3", "ts": now, "mac": mac(SECRET, "ask", "a", "n3", now)}
        assert (await raw(server.port, json.dumps(req).encode() + b"\n"))["ok"] is True
        assert (await raw(server.port, json.dumps(req).encode() + b"\n"))["ok"] is False
    reasons = [str(e["reason"]) for e in logs if e["event"] == "failsafe_request_refused"]
    assert reasons[0] == "no MAC (missing secret)"
    assert reasons[1].startswith("stale request") and reasons[2] == "replayed nonce"


async def test_an_answer_with_a_forged_mac_is_no_promise() -> None:
    """A listener that answers 'promise' without knowing the secret is not trusted."""

    async def forger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b'{"ok": true, "promise": true, "window_s": 15, "mac": "00"}\n')
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(forger, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        promised, why, _ = await ask(f"127.0.0.1:{port}", SECRET, "a", 2.0)
    finally:
        srv.close()
        await srv.wait_closed()
    assert not promised and "wrong MAC" in why


class UnreachableCeph(ScriptedLease):
    async def inspect(self, timeout_s: float | None = None) -> LeaseInfo:
        raise LeaseTimeout("lock info", timeout_s or 0)


def failsafe(tmp_path: Path, lease: ScriptedLease, state: State) -> tuple[Failsafe, list[Event]]:
    posted: list[Event] = []
    settings = example_settings(
        priority_file=tmp_path / "p", fault_file=tmp_path / "f", runtime_dir=tmp_path,
        node_name="b", failsafe_secret="s3cret-shared", failsafe_listen="127.0.0.1:0",
    )  # fmt: skip
    node = Node(state=state)

    async def decide(event: Event, reason: str) -> Node:
        posted.append(event)
        return transition(node, event)[0]

    fs = Failsafe(settings, lease, lambda: node, decide)
    return fs, posted


@pytest.mark.parametrize(
    ("unreachable", "state", "promises"),
    [(True, State.BACKUP, True), (False, State.BACKUP, False), (True, State.LEASING, False)],
)
async def test_the_peer_promises_only_when_backup_and_cut_from_ceph(
    tmp_path: Path, unreachable: bool, state: State, promises: bool
) -> None:
    """The peer's decision: a promise (and FAILSAFE_PROMISED posted to its own machine)
    only while BACKUP and its Ceph probe fails, written down so a restart keeps it; reaching
    Ceph, or promoting, is no promise."""
    lease = UnreachableCeph(["ok"]) if unreachable else ScriptedLease(["ok"])
    fs, posted = failsafe(tmp_path, lease, state)
    decision = await fs.decide()
    assert decision.promise is promises
    assert posted == ([Event.FAILSAFE_PROMISED] if promises else [])
    left = promise_left(promise_path(fs._s), 15.0)
    assert left == (pytest.approx(15.0, abs=1) if promises else 0), "a restart keeps it"


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"lease_duration_s": 2, "lease_margin_s": 1.0}, "HARBOR_HA_LEASE_DURATION_S"),
        (
            {"failsafe_secret": "k", "failsafe_peer": "10.0.0.2:9106",
             "failsafe_request_timeout_s": 3.0},
            "HARBOR_HA_FAILSAFE_REQUEST_TIMEOUT_S",
        ),
    ],
)  # fmt: skip
def test_incoherent_lease_timings_are_refused_naming_the_variables(
    fields: dict[str, object], names: str
) -> None:
    """A deadline that one slow renewal would reach, or a failsafe request that cannot be
    answered before the deadline, is a settings error naming the variable."""
    with pytest.raises(ValueError, match=names):
        example_settings(**fields)


async def test_a_request_from_a_node_of_the_same_name_is_refused(server: FailsafeServer) -> None:
    """Two nodes with one ``node_name`` share the lease's cookie (each would break the other's
    live lock as its own): the peer exchange refuses such a request by name, logs it, and the
    asking master gets no promise."""
    with capture_logs() as logs:
        promised, why, _ = await ask(f"127.0.0.1:{server.port}", SECRET, "b", 2.0)
    assert not promised and "refused" in why
    reasons = [str(e["reason"]) for e in logs if e["event"] == "failsafe_request_refused"]
    assert len(reasons) == 1 and "same node_name" in reasons[0]
