"""`harbor-ha replication setup` for the replicated pair: on each Harbor, the endpoint at the
peer's own address and an event-based policy to it; a rerun changes nothing; a differing
endpoint or policy is reported, never overwritten; the credentials file is root-only.

The Harbors are the lab's stand-in of Harbor's replication API (lab/harbor_api.py, over real
HTTP on loopback).  What the product sends and what the stand-in answers are both checked
against Harbor's published models: the harbor-api-client package is generated from Harbor's
swagger."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harbor_client.models as models
import pytest
from harbor_client.api_client import ApiClient

from harbor_ha.cli import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, main
from harbor_ha.replication.credentials import CredentialsError, read_pair
from harbor_ha.replication.plan import Peer, endpoint_body, plan, policy_body
from harbor_ha.replication.setup import setup_pair
from lab.harbor_api import ReplicationApi, serve

USERS = {"replicator": "s3cret"}


def keys_of(model: type[Any]) -> set[str]:
    return set(model.attribute_map.values())


def conforms(body: dict[str, Any], model: type[Any]) -> None:
    """Every key of ``body`` (and of its nested objects) is a field of Harbor's model."""
    assert set(body) <= keys_of(model), set(body) - keys_of(model)
    nested = {"credential": models.RegistryCredential, "trigger": models.ReplicationTrigger,
              "dest_registry": models.Registry, "src_registry": models.Registry}  # fmt: skip
    for key, sub in nested.items():
        if isinstance(body.get(key), dict):
            conforms(body[key], sub)
    for f in body.get("filters") or []:
        conforms(f, models.ReplicationFilter)


def test_the_bodies_setup_sends_are_harbors_models() -> None:
    """The endpoint and policy bodies use only fields of Harbor's Registry and
    ReplicationPolicy models, and say what the pair needs: the peer's own URL, basic
    credentials, an event-based push of every project with deletions and override."""
    peer = Peer("b", "https://10.0.0.12/", "replicator", "s3cret")
    e = endpoint_body(peer)
    conforms(e, models.Registry)
    assert e["url"] == "https://10.0.0.12" and e["credential"]["type"] == "basic"
    p = policy_body(peer, 7)
    conforms(p, models.ReplicationPolicy)
    assert p["trigger"] == {"type": "event_based"} and p["filters"] == []
    assert p["replicate_deletion"] and p["override"] and p["enabled"]
    assert p["dest_registry"] == {"id": 7}


def test_plan_finds_its_own_and_reports_what_differs() -> None:
    """By name: nothing there -> create both; ours as wanted -> nothing to do; an endpoint of
    our name at another URL, or a policy that is manual -> a conflict, nothing created."""
    peer = Peer("b", "https://10.0.0.12", "replicator", "s3cret")
    assert plan([], [], peer).create_endpoint
    reg = {**endpoint_body(peer), "id": 3, "credential": {"access_key": "replicator"}}
    pol = {**policy_body(peer, 3), "id": 4, "dest_registry": {"id": 3}}
    done = plan([reg], [pol], peer)
    assert not (done.create_endpoint or done.create_policy or done.conflicts)
    moved = plan([{**reg, "url": "https://10.99.0.100"}], [pol], peer)
    assert moved.conflicts and "url" in moved.conflicts[0]
    manual = plan([reg], [{**pol, "trigger": {"type": "manual"}}], peer)
    assert manual.conflicts and "trigger" in manual.conflicts[0]


@pytest.fixture
def pair() -> Iterator[tuple[ReplicationApi, ReplicationApi, Peer, Peer]]:
    """Two stand-in Harbors on loopback; the Peer of each as the credentials file names it."""
    a, b = ReplicationApi(dict(USERS)), ReplicationApi(dict(USERS))
    sa, sb = serve(a), serve(b)
    try:
        pa = Peer("a", f"http://127.0.0.1:{sa.server_address[1]}", "replicator", "s3cret")
        pb = Peer("b", f"http://127.0.0.1:{sb.server_address[1]}", "replicator", "s3cret")
        yield a, b, pa, pb
    finally:
        sa.shutdown()
        sb.shutdown()
        sa.server_close()
        sb.server_close()


async def test_setup_makes_both_directions_and_a_rerun_changes_nothing(
    pair: tuple[ReplicationApi, ReplicationApi, Peer, Peer],
) -> None:
    """First run: each Harbor gets an endpoint at the other's own URL and a policy to it (4
    creations); what the stand-ins hold deserializes as Harbor's models.  Second run: four OK
    lines and no request but reads."""
    a, b, pa, pb = pair
    first = await setup_pair(pa, pb, {})
    assert [level for level, _ in first].count("CREATED") == 4, first
    assert a.registries[0]["url"] == pb.url and b.registries[0]["url"] == pa.url
    client = ApiClient()
    for harbor in (a, b):
        for method, _target, body in harbor.requests:
            if method == "POST" and isinstance(body, dict) and "url" in body:
                conforms(body, models.Registry)
            elif method == "POST" and isinstance(body, dict) and "trigger" in body:
                conforms(body, models.ReplicationPolicy)
        reg = client._ApiClient__deserialize(harbor.registries, "list[Registry]")
        pol = client._ApiClient__deserialize(harbor.policies, "list[ReplicationPolicy]")
        assert reg[0].type == "harbor" and pol[0].trigger.type == "event_based"
        harbor.requests.clear()
    again = await setup_pair(pa, pb, {})
    assert [level for level, _ in again] == ["OK"] * 4, again
    assert all(m == "GET" for h in (a, b) for m, _, _ in h.requests)


async def test_a_differing_endpoint_is_reported_and_left_alone(
    pair: tuple[ReplicationApi, ReplicationApi, Peer, Peer],
) -> None:
    """An operator pointed a's endpoint at the VIP: setup reports the conflict on a, creates
    no policy there, and does not touch the endpoint; b is set up as usual."""
    a, _b, pa, pb = pair
    a.registries.append({**endpoint_body(pb), "id": 99, "url": "https://10.99.0.100"})
    found = await setup_pair(pa, pb, {})
    conflicts = [m for level, m in found if level == "CONFLICT"]
    assert conflicts and all(m.startswith("a:") for m in conflicts), found
    assert a.registries[0]["url"] == "https://10.99.0.100" and a.policies == []


def write_credentials(path: Path, pa: Peer, pb: Peer, mode: int = 0o600) -> Path:
    sections = [
        f"[{p.name}]\nurl = {p.url}\nusername = {p.username}\npassword = {p.password}\n"
        for p in (pa, pb)
    ]
    path.write_text("".join(sections))
    path.chmod(mode)
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="the credentials file must be root's")
def test_the_credentials_file_must_be_root_only_and_complete(tmp_path: Path) -> None:
    """0644 is refused (it holds passwords); a node without a password is refused by name;
    0600 owned by root is read in file order."""
    pa = Peer("a", "https://10.0.0.11", "u", "p")
    pb = Peer("b", "https://10.0.0.12", "u", "p")
    loose = write_credentials(tmp_path / "loose.ini", pa, pb, 0o644)
    with pytest.raises(CredentialsError, match="0644"):
        read_pair(loose)
    short = write_credentials(tmp_path / "short.ini", pa, Peer("b", "https://x", "u", ""))
    with pytest.raises(CredentialsError, match=r"\[b\] lacks password"):
        read_pair(short)
    a, b, _ = read_pair(write_credentials(tmp_path / "ok.ini", pa, pb))
    assert (a.name, b.name) == ("a", "b")


@pytest.mark.skipif(os.geteuid() != 0, reason="the credentials file must be root's")
def test_the_cli_exit_codes(
    tmp_path: Path,
    pair: tuple[ReplicationApi, ReplicationApi, Peer, Peer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The real CLI: 0 when both directions are as wanted; 3 (problems) on a conflict; 2 on a
    loose credentials file.  No node settings are needed for it."""
    a, _b, pa, pb = pair
    creds = write_credentials(tmp_path / "replication.ini", pa, pb)
    assert main(["replication", "setup", "--credentials", str(creds)]) == EXIT_OK
    assert "CREATED" in capsys.readouterr().out
    a.policies[0]["enabled"] = False
    assert main(["replication", "setup", "--credentials", str(creds)]) == EXIT_PROBLEMS
    assert "enabled" in capsys.readouterr().out
    creds.chmod(0o640)
    assert main(["replication", "setup", "--credentials", str(creds)]) == EXIT_USAGE
