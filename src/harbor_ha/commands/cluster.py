"""`harbor-ha check` across the cluster: this node's fingerprint read from its own files,
every other node's from its /status (each request bounded by ``peer_timeout_s``), compared.
A node that does not answer is a warning (not compared), never a hang."""

from __future__ import annotations

from harbor_ha.blocking import call_bounded
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
    limit = settings.command_timeout_s
    try:
        local = await call_bounded(
            lambda: local_fingerprint(settings), limit, "harbor-ha-fingerprint"
        )
    except TimeoutError:  # a hung shared mount: say so, never hang `check`
        return [*findings, ("FAIL", f"cluster: reading Harbor's files on this node took over "
                            f"{limit:g} s (a hung mount?): nothing compared")]  # fmt: skip
    return findings + compare_nodes(await cluster_readings(settings, local)).findings
