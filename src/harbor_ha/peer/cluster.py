"""The cluster's nodes over the network: each peer's fingerprint from its /status (each
request bounded), this node's from its own files; for `check` and the daemon's comparison.
A node that does not answer is a reading with its reason, never a hang."""

from __future__ import annotations

import asyncio

from harbor_ha.cluster import Fingerprint, NodeReading, read_fingerprint
from harbor_ha.peer.status import PeerUnreachable, peer_status
from harbor_ha.settings import Settings


def local_fingerprint(settings: Settings) -> Fingerprint:
    """This node's fingerprint from Harbor's files (blocking)."""
    return read_fingerprint(
        settings.harbor_config_path, settings.harbor_secret_path, settings.compose_file
    )


async def peer_reading(name: str, url: str, timeout_s: float) -> NodeReading:
    """A peer's fingerprint from its /status, or why there is none."""
    try:
        status = await peer_status(url, timeout_s)
    except PeerUnreachable as exc:
        return NodeReading(None, f"unreachable: {exc}")
    if status.get("node") != name:
        return NodeReading(
            None,
            f"{url} answers as node {status.get('node')!r}, not {name!r}: HARBOR_HA_NODES "
            "names the wrong address, or that node's HARBOR_HA_NODE_NAME differs",
            level="FAIL",
        )
    fp = Fingerprint.from_json(status.get("cluster_fingerprint"))
    if fp is None:
        why = "HARBOR_HA_NODES unset there, or the daemon has not read Harbor's files yet"
        return NodeReading(None, f"{url}/status has no cluster_fingerprint ({why})")
    return NodeReading(fp)


async def cluster_readings(settings: Settings, local: Fingerprint) -> dict[str, NodeReading]:
    """Every node of HARBOR_HA_NODES: this one from ``local`` (when it is in the list), the
    others from their /status, concurrently."""
    peers = [(name or url, url) for name, url in settings.peers]
    answers = await asyncio.gather(
        *(peer_reading(name, url, settings.peer_timeout_s) for name, url in peers)
    )
    readings = {settings.node_name: NodeReading(local)}
    readings.update({name: reading for (name, _), reading in zip(peers, answers, strict=True)})
    return {n.name: readings[n.name] for n in settings.nodes}
