"""The shared mode's eviction of dead nodes' CephFS sessions (HARBOR_HA_SHARED_EVICT_AFTER_S
> 0): every ``probe_interval_s`` it asks each other node's harbor-ha whether it answers
(GET /serving, bounded by ``peer_timeout_s``), lets the pure policy
(:mod:`harbor_ha.cluster.evict`) decide, and evicts at the MDS the sessions from the dead
node's address (:mod:`harbor_ha.ceph.mds`).  One log line per decision; a failed eviction is
an error in the log and the metric, never the end of the daemon."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

import structlog

from harbor_ha.ceph.errors import CephError
from harbor_ha.ceph.mds import evict_sessions_from
from harbor_ha.cluster.evict import Decision, EvictPolicy
from harbor_ha.metrics import Metrics
from harbor_ha.peer.status import peer_answers
from harbor_ha.runner import Runner
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.evict")


async def addresses_of(host: str, timeout_s: float) -> list[str]:
    """``host`` itself when it is an IP address, else what it resolves to (bounded)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout_s)
    return sorted({str(info[4][0]) for info in infos})


class Evictor:
    """Looks at the other nodes and evicts the CephFS sessions of the dead ones."""

    def __init__(self, settings: Settings, runner: Runner, metrics: Metrics) -> None:
        self._s = settings
        self._runner = runner
        self._m = metrics
        self._hosts = {n.name: n.host for n in settings.nodes}
        self.policy = EvictPolicy(
            [n.name for n in settings.nodes], settings.node_name, settings.shared_evict_after_s
        )

    async def look(self) -> list[Decision]:
        """One look at every other node, and the decisions it led to (carried out)."""
        s = self._s
        peers = [(name, url) for name, url in s.peers if name is not None]
        answers = await asyncio.gather(*(peer_answers(url, s.peer_timeout_s) for _, url in peers))
        answered = {name: ok for (name, _), ok in zip(peers, answers, strict=True)}
        decisions = self.policy.look(answered, time.monotonic())
        for d in decisions:
            if d.evict:
                await self._evict(d)
            else:
                log.warning("cephfs_eviction", node=d.node, decision="hold", reason=d.reason)
        return decisions

    async def _evict(self, d: Decision) -> None:
        s = self._s
        log.warning("cephfs_eviction", node=d.node, decision="evict", reason=d.reason)
        try:
            hosts = await addresses_of(self._hosts[d.node], s.command_timeout_s)
            ids: list[int] = []
            for host in hosts:
                ids += await evict_sessions_from(self._runner, s, host)
        except (CephError, OSError, TimeoutError) as exc:
            self.policy.failed(d.node, time.monotonic())
            self._m.cephfs_evictions.labels(d.node, "failed").inc()
            log.error("cephfs_eviction_failed", node=d.node, error=str(exc) or type(exc).__name__,
                      retry_in_s=self.policy.retry_s)  # fmt: skip
            return
        self.policy.evicted(d.node)
        self._m.cephfs_evictions.labels(d.node, "done").inc()
        if ids:
            log.warning("cephfs_evicted", node=d.node, addresses=hosts, sessions=ids)
        else:
            log.warning("cephfs_evicted", node=d.node, addresses=hosts, sessions=[],
                        reason="no session from its address (gone already, or its CephFS "
                        "client uses another address than HARBOR_HA_NODES gives)")  # fmt: skip

    async def run(self) -> None:
        """Look every probe_interval_s until cancelled."""
        while True:
            try:
                await self.look()
            except Exception as exc:  # the watch informs and fences; it never ends the daemon
                log.exception("cephfs_eviction_look_failed", reason=str(exc))
            await asyncio.sleep(self._s.probe_interval_s)
