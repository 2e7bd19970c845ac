"""`harbor-ha check` across the cluster: this node's fingerprint read from its own files,
every other node's from its /status (each request bounded by ``peer_timeout_s``), compared.
A node that does not answer is a warning (not compared), never a hang."""

from __future__ import annotations

import asyncio

from harbor_ha.cluster import compare_nodes
from harbor_ha.cluster.compare import Finding
from harbor_ha.peer.cluster import cluster_readings, local_fingerprint
from harbor_ha.settings import Settings
from harbor_ha.settings.mode import Mode


async def cluster_findings(settings: Settings) -> list[Finding]:
    """The consistency findings of `check`: the shared mode's, with HARBOR_HA_NODES (the two
    Harbors of the replicated mode hold their own secrets; an rbd standby cannot read the
    secrets on the image it has not mounted)."""
    if not settings.nodes or settings.mode is not Mode.SHARED:
        return []
    findings: list[Finding] = []
    if settings.node_name not in {n.name for n in settings.nodes}:
        findings.append(("WARN", f"cluster: this machine ({settings.node_name}) is not in "
                         "HARBOR_HA_NODES: only the listed nodes are compared"))  # fmt: skip
    local = await asyncio.to_thread(local_fingerprint, settings)
    return findings + compare_nodes(await cluster_readings(settings, local)).findings
