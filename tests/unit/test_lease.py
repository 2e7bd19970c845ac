"""The lease's pure parts (lock info, expiry) and its agent process (without a cluster)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harbor_ha.lease import LeaseError, LeaseHeldByPeer, LeaseTimeout, parse_lock_info, wire
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


def _silent_python(tmp_path: Path) -> str:
    """A stand-in interpreter for the agent that never answers (it sleeps)."""
    silent = tmp_path / "python"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")
    silent.chmod(0o755)
    return str(silent)


async def test_a_silent_agent_is_killed_at_the_request_timeout(tmp_path: Path) -> None:
    """An agent that never answers (a stand-in interpreter that sleeps) makes the request
    fail with LeaseTimeout at request_timeout_s, and its process is killed."""
    client = AgentClient(_config(python=_silent_python(tmp_path), request_timeout_s=0.5))
    started = time.monotonic()
    with pytest.raises(LeaseTimeout):
        await client.request("lock", object="o", name="n", cookie="c", duration_s=5)
    assert 0.5 <= time.monotonic() - started < 3.0
    assert not client.alive and client.starts == 1
    await client.close()


async def test_a_short_request_bound_covers_the_agents_start(tmp_path: Path) -> None:
    """A request with its own short bound (the failsafe's probe) fails within that bound
    even when it must first start an agent whose connect never answers (a frozen Ceph):
    the start is part of the request, not a separate wait of the default timeout."""
    client = AgentClient(_config(python=_silent_python(tmp_path), request_timeout_s=30))
    started = time.monotonic()
    with pytest.raises(LeaseTimeout):
        await client.request("exec", timeout_s=0.3, object="o")
    assert time.monotonic() - started < 10  # 30 s (the connect's default) before the fix
    assert not client.alive
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


# ------------------------------------------------------------ cls_lock's messages (wire.py)
def enc_struct(payload: bytes) -> bytes:
    """Ceph's ENCODE_START(1, 1): version, compat, length, then the fields."""
    return bytes([1, 1]) + len(payload).to_bytes(4, "little") + payload


def enc_string(text: str) -> bytes:
    return len(text.encode()).to_bytes(4, "little") + text.encode()


def enc_addr_v2(kind: int, ip: bytes, port: int, nonce: int, family: int = 2) -> bytes:
    """entity_addr_t with MSG_ADDR2: marker 1, then type, nonce, sockaddr length, family
    (little-endian), port (network order), address, padding."""
    if family == 2:
        sa = port.to_bytes(2, "big") + ip + bytes(8)
    else:
        sa = port.to_bytes(2, "big") + bytes(4) + ip + bytes(4)
    body = (
        kind.to_bytes(4, "little") + nonce.to_bytes(4, "little")
        + (len(sa) + 2).to_bytes(4, "little") + family.to_bytes(2, "little") + sa
    )  # fmt: skip
    return b"\x01" + enc_struct(body)


def enc_reply(lockers: list[tuple[int, str, int, int, bytes, str]]) -> bytes:
    """cls_lock_get_info_reply: map<locker_id_t, locker_info_t>, lock type, tag."""
    out = len(lockers).to_bytes(4, "little")
    for num, cookie, sec, nsec, addr, desc in lockers:
        out += enc_struct(b"\x08" + num.to_bytes(8, "little", signed=True) + enc_string(cookie))
        out += enc_struct(
            sec.to_bytes(4, "little") + nsec.to_bytes(4, "little") + addr + enc_string(desc)
        )
    return enc_struct(out + b"\x01" + enc_string(""))


def test_get_info_reply_gives_holder_expiry_and_address() -> None:
    """A held lock as the OSD encodes it: the holder's entity, cookie and description, the
    expiry as epoch seconds, and the lease client's address printed as Ceph prints it
    (IP:PORT/NONCE: what the fence blocklists)."""
    addr = enc_addr_v2(3, bytes([127, 0, 0, 1]), 0, 123456)
    raw = enc_reply([(4123, "harbor-ha:a", 1796149200, 250_000_000, addr, "a client.4123")])
    h = wire.decode_get_info(raw).holder
    assert h is not None
    assert (h.entity, h.cookie, h.description) == ("client.4123", "harbor-ha:a", "a client.4123")
    assert h.address == "127.0.0.1:0/123456"
    assert h.expiration == pytest.approx(1796149200.25)


def test_get_info_reply_variants() -> None:
    """No lockers: free.  No duration (utime 0): no expiry.  IPv6, a v1 address (its type
    is not printed: the legacy form, as `rados lock info` and the blocklist have it), and the
    legacy address encoding (marker 0, a 128-byte sockaddr) print as Ceph prints them."""
    assert wire.decode_get_info(enc_reply([])).holder is None
    v6 = enc_addr_v2(3, bytes(15) + b"\x01", 6800, 7, family=10)
    h = wire.decode_get_info(enc_reply([(1, "c", 0, 0, v6, "")])).holder
    assert h is not None and h.expiration is None and h.address == "[::1]:6800/7"
    v1 = enc_addr_v2(1, bytes([10, 0, 0, 2]), 0, 9)
    h = wire.decode_get_info(enc_reply([(1, "c", 5, 0, v1, "")])).holder
    assert h is not None and h.address == "10.0.0.2:0/9"
    legacy = (
        bytes(4) + (42).to_bytes(4, "little")
        + (2).to_bytes(2, "big") + (0).to_bytes(2, "big") + bytes([10, 0, 0, 3]) + bytes(120)
    )  # fmt: skip
    h = wire.decode_get_info(enc_reply([(1, "c", 5, 0, legacy, "")])).holder
    assert h is not None and h.address == "10.0.0.3:0/42"


def test_get_info_reply_that_is_cut_short_is_an_error() -> None:
    """A truncated or garbled answer raises ValueError (never read as a free lease)."""
    raw = enc_reply([(1, "c", 5, 0, enc_addr_v2(3, bytes(4), 0, 1), "")])
    for cut in (0, 3, 10, len(raw) - 1):
        with pytest.raises(ValueError):
            wire.decode_get_info(raw[:cut])


def test_requests_are_encoded_as_cls_lock_reads_them() -> None:
    """get_info's input is the lock name; break_lock's the name, the locker (type client,
    its number) and the cookie, each in Ceph's versioned encoding."""
    assert wire.get_info_input("harbor-ha") == enc_struct(enc_string("harbor-ha"))
    assert wire.break_lock_input("harbor-ha", "client.4123", "harbor-ha:b") == enc_struct(
        enc_string("harbor-ha") + b"\x08" + (4123).to_bytes(8, "little") + enc_string("harbor-ha:b")
    )
    with pytest.raises(ValueError):
        wire.break_lock_input("harbor-ha", "4123", "c")


def test_lock_input_sends_the_exact_duration() -> None:
    """cls_lock_lock_op as Ceph decodes it: name, type exclusive (1), cookie, no tag, the
    description, the duration as utime_t (seconds, 0 ns: never stray microseconds), flag
    MAY_RENEW (1); a duration that is not positive is refused before anything is sent."""
    expected = enc_struct(
        enc_string("harbor-ha")
        + bytes([1])
        + enc_string("harbor-ha:a")
        + enc_string("")
        + enc_string("a client.4123")
        + (5).to_bytes(4, "little")
        + (0).to_bytes(4, "little")
        + bytes([1])
    )
    assert wire.lock_input("harbor-ha", "harbor-ha:a", "a client.4123", 5) == expected
    with pytest.raises(ValueError):
        wire.lock_input("harbor-ha", "harbor-ha:a", "", 0)
