"""The lease's pure parts (lock info, expiry) and its agent process (without a cluster)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harbor_ha.lease import LeaseError, LeaseHeldByPeer, LeaseTimeout, parse_lock_info
from harbor_ha.lease.client import AgentClient, AgentConfig, system_python_has_rados
from harbor_ha.lease.errors import classify
from harbor_ha.lease.view import parse_expiration

INFO = {
    "name": "harbor-ha",
    "type": "exclusive",
    "tag": "",
    "lockers": [
        {
            "name": "client.4123",
            "cookie": "harbor-ha:a",
            "description": "a client.4123",
            "expiration": "2026-12-01T18:20:00.250000+0000",
            "addr": "127.0.0.1:0/123456",
        }
    ],
}


def test_lock_info_gives_holder_and_expiry() -> None:
    """The holder's instance, cookie, address and Ceph's expiry (as epoch seconds) are read."""
    info = parse_lock_info(json.dumps(INFO))
    h = info.holder
    assert h is not None
    assert (h.entity, h.cookie, h.address) == ("client.4123", "harbor-ha:a", "127.0.0.1:0/123456")
    assert h.expiration == pytest.approx(1796149200.25)


def test_lock_info_without_lockers_is_free() -> None:
    """No lockers: the lease is free (holder None)."""
    assert parse_lock_info(json.dumps({**INFO, "lockers": []})).holder is None


def test_lock_info_rejects_other_output() -> None:
    """Output that is not a lock-info object is an error, never 'free'."""
    with pytest.raises(ValueError):
        parse_lock_info("[]")


def test_expiration_zero_means_none() -> None:
    """utime 0 (a lock without duration) has no expiry; garbage too."""
    assert parse_expiration("0.000000") is None
    assert parse_expiration("soon") is None


def test_classify_busy_is_held_by_peer() -> None:
    """EBUSY from the agent is the peer's live lease; timeouts and others keep their kind."""
    assert isinstance(classify("lock", "busy", "x"), LeaseHeldByPeer)
    assert classify("lock", "timeout", "x").kind == "timeout"
    assert classify("lock", "denied", "x").kind == "denied"


needs_rados = pytest.mark.skipif(
    not system_python_has_rados(), reason="python3-rados is not installed for /usr/bin/python3"
)


def _config(**kw: object) -> AgentConfig:
    fields: dict[str, object] = {
        "conf": None,
        "mon_host": "127.0.0.1:1",  # nothing listens: connect must time out
        "keyring": None,
        "user": "harbor",
        "pool": "rbd",
        "op_timeout_s": 1.0,
        "request_timeout_s": 4.0,
    }
    fields.update(kw)
    return AgentConfig(**fields)  # type: ignore[arg-type]


@needs_rados
async def test_agent_connect_to_nothing_fails_within_its_bound(tmp_path: Path) -> None:
    """The real agent with no monitor to reach answers an error (its rados timeouts), well
    within the asyncio bound; the client then has no live agent."""
    client = AgentClient(_config())
    started = time.monotonic()
    with pytest.raises(LeaseError):
        await client.request("lock", object="o", name="n", cookie="c", duration_s=5)
    assert time.monotonic() - started < 4.0 + 1.0
    assert client.instance is None
    await client.close()


async def test_a_silent_agent_is_killed_at_the_request_timeout(tmp_path: Path) -> None:
    """An agent that never answers (a stand-in interpreter that sleeps) makes the request
    fail with LeaseTimeout at request_timeout_s, and its process is killed."""
    silent = tmp_path / "python"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")
    silent.chmod(0o755)
    client = AgentClient(_config(python=str(silent), request_timeout_s=0.5))
    started = time.monotonic()
    with pytest.raises(LeaseTimeout):
        await client.request("lock", object="o", name="n", cookie="c", duration_s=5)
    assert 0.5 <= time.monotonic() - started < 3.0
    assert not client.alive and client.starts == 1
    await client.close()


async def test_an_agent_that_exits_is_an_error_and_restarted(tmp_path: Path) -> None:
    """An agent that dies at once fails the request (no hang); the next request starts a new
    one."""
    dead = tmp_path / "python"
    dead.write_text("#!/bin/sh\nexit 3\n")
    dead.chmod(0o755)
    client = AgentClient(_config(python=str(dead)))
    for _ in range(2):
        with pytest.raises(LeaseError):
            await client.request("lock", object="o", name="n", cookie="c", duration_s=5)
    assert client.starts == 2
    await client.close()
