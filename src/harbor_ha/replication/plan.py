"""What `harbor-ha replication setup` must do on one Harbor (pure: no I/O).

On each Harbor of the pair: one registry endpoint pointing at the peer's own address (not the
VIP: only the master answers there) and one event-based policy pushing every project to it,
with deletions and override.  Things are matched by name: a rerun finds them and changes
nothing; an existing endpoint or policy of that name that differs is reported, never
overwritten (an operator made it, or changed it on purpose)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ENDPOINT_PREFIX = "harbor-ha-"
POLICY_PREFIX = "harbor-ha-to-"


@dataclass(frozen=True)
class Peer:
    """The Harbor an endpoint points at: its name in the pair, its own URL, the account this
    Harbor pushes with, and whether its certificate is verified."""

    name: str
    url: str
    username: str
    password: str
    insecure: bool = False


def endpoint_name(peer: Peer) -> str:
    return ENDPOINT_PREFIX + peer.name


def policy_name(peer: Peer) -> str:
    return POLICY_PREFIX + peer.name


def endpoint_body(peer: Peer) -> dict[str, Any]:
    """``POST /api/v2.0/registries``: a Harbor endpoint at the peer's own URL."""
    return {
        "name": endpoint_name(peer),
        "type": "harbor",
        "url": peer.url.rstrip("/"),
        "credential": {
            "type": "basic",
            "access_key": peer.username,
            "access_secret": peer.password,
        },
        "insecure": peer.insecure,
        "description": "harbor-ha replicated pair: the peer's own address",
    }


def policy_body(peer: Peer, registry_id: int) -> dict[str, Any]:
    """``POST /api/v2.0/replication/policies``: push every project to the peer on each event,
    deletions and overwrites included, the namespace kept as it is."""
    return {
        "name": policy_name(peer),
        "description": "harbor-ha replicated pair: every push and deletion, to the peer",
        "dest_registry": {"id": registry_id},
        "dest_namespace_replace_count": 0,
        "trigger": {"type": "event_based"},
        "filters": [],
        "replicate_deletion": True,
        "override": True,
        "enabled": True,
    }


@dataclass
class Plan:
    """What to create on one Harbor, what exists already, and what differs (not touched)."""

    create_endpoint: bool = False
    create_policy: bool = False
    endpoint_id: int | None = None
    endpoint_differs: bool = False
    done: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def _named(items: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    return next((i for i in items if i.get("name") == name), None)


def endpoint_differences(have: Mapping[str, Any], peer: Peer) -> list[str]:
    """How an existing endpoint of our name differs from what we would make."""
    want = endpoint_body(peer)
    out = []
    for key in ("type", "url", "insecure"):
        got = have.get(key)
        if key == "url" and isinstance(got, str):
            got = got.rstrip("/")
        if got != want[key]:
            out.append(f"{key} {got!r} (want {want[key]!r})")
    access = (have.get("credential") or {}).get("access_key")
    if access is not None and access != peer.username:
        out.append(f"access_key {access!r} (want {peer.username!r})")
    return out


def policy_differences(have: Mapping[str, Any], registry_id: int) -> list[str]:
    """How an existing policy of our name differs from what we would make."""
    out = []
    dest = (have.get("dest_registry") or {}).get("id")
    if dest != registry_id:
        out.append(f"dest_registry {dest!r} (want {registry_id})")
    trigger = (have.get("trigger") or {}).get("type")
    if trigger != "event_based":
        out.append(f"trigger {trigger!r} (want 'event_based')")
    for key in ("replicate_deletion", "override", "enabled"):
        if have.get(key) is not True:
            out.append(f"{key} {have.get(key)!r} (want True)")
    if have.get("filters"):
        out.append(f"filters {have.get('filters')!r} (want none: every project)")
    if (have.get("src_registry") or {}).get("id") not in (None, 0):
        out.append("src_registry set (a pull policy; want a push from this Harbor)")
    return out


def plan(
    registries: Sequence[Mapping[str, Any]],
    policies: Sequence[Mapping[str, Any]],
    peer: Peer,
) -> Plan:
    """Decide, from one Harbor's registries and policies, what setup does there."""
    p = Plan()
    endpoint = _named(registries, endpoint_name(peer))
    if endpoint is None:
        p.create_endpoint = True
    else:
        p.endpoint_id = int(endpoint["id"])
        diff = endpoint_differences(endpoint, peer)
        if diff:
            p.endpoint_differs = True
            p.conflicts.append(f"endpoint {endpoint_name(peer)} differs: {'; '.join(diff)}")
        else:
            p.done.append(f"endpoint {endpoint_name(peer)} (id {p.endpoint_id}) as wanted")
    policy = _named(policies, policy_name(peer))
    if policy is None:
        p.create_policy = True
    elif p.endpoint_id is None:
        p.conflicts.append(f"policy {policy_name(peer)} exists without our endpoint")
    else:
        diff = policy_differences(policy, p.endpoint_id)
        if diff:
            p.conflicts.append(f"policy {policy_name(peer)} differs: {'; '.join(diff)}")
        else:
            p.done.append(f"policy {policy_name(peer)} (id {policy.get('id')}) as wanted")
    return p
