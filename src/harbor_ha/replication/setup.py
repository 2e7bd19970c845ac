"""`harbor-ha replication setup`: on each Harbor of the pair, the endpoint at the peer and
the event-based policy to it (``plan`` decides; this module asks and creates)."""

from __future__ import annotations

from harbor_ha.replication.api import HarborApi
from harbor_ha.replication.plan import Peer, endpoint_body, plan, policy_body

Finding = tuple[str, str]  # (OK | CREATED | CONFLICT, message)


async def setup_one(api: HarborApi, here: str, peer: Peer) -> list[Finding]:
    """Make ``here``'s Harbor (``api``) push to ``peer``: what existed, what was created, what
    differs and was left alone."""
    p = plan(await api.registries(), await api.policies(), peer)
    out: list[Finding] = [("OK", f"{here}: {line}") for line in p.done]
    out += [("CONFLICT", f"{here}: {line} (not changed)") for line in p.conflicts]
    endpoint_id = p.endpoint_id
    if p.create_endpoint:
        endpoint_id = await api.create_registry(endpoint_body(peer))
        out.append(("CREATED", f"{here}: endpoint {endpoint_body(peer)['name']} -> {peer.url} "
                    f"(id {endpoint_id})"))  # fmt: skip
    if p.create_policy and endpoint_id is not None and not p.endpoint_differs:
        body = policy_body(peer, endpoint_id)
        policy_id = await api.create_policy(body)
        out.append(("CREATED", f"{here}: policy {body['name']} (id {policy_id}), event-based, "
                    "every project, deletions and override"))  # fmt: skip
    elif p.create_policy:
        out.append(("CONFLICT", f"{here}: policy not created: its endpoint differs"))
    return out


async def setup_pair(
    a: Peer, b: Peer, cas: dict[str, str], timeout_s: float = 10.0
) -> list[Finding]:
    """Both directions: a pushes to b, b pushes to a, each through its own API."""
    out: list[Finding] = []
    for here, peer in ((a, b), (b, a)):
        async with HarborApi(
            here.url, here.username, here.password, insecure=here.insecure,
            ca_file=cas.get(here.name, ""), timeout_s=timeout_s,
        ) as api:  # fmt: skip
            out += await setup_one(api, here.name, peer)
    return out
