"""The fence's blocklist entries: one after the other, or sent together?

Run as root: ``.venv/bin/python -m bench.blocklist_batch [--runs 5]``.  It starts the lab's
one-node Ceph (mon + memstore OSD, lab/ceph.py) on a random loopback address of the host's
namespace, and through the product's lease agent (as client.harbor, the documented caps)
adds two blocklist entries per run, the pair a crash failover's fence adds (the old
master's image watcher and its lease client):

- **one after the other**: ``Lease.blocklist_add([a])`` then ``Lease.blocklist_add([b])``;
- **together**: ``Lease.blocklist_add([a, b])``, what the fence step does.

Per run it prints the wall time of each way and how many OSD map epochs it took (one
monitor commit each), then the medians.  Ceph's monitor batches the changes that arrive
while a proposal is pending and proposes at most once per ``paxos_propose_interval`` (1 s by
default), so an entry that arrives after another's commit waits for the next proposal.  The
addresses are TEST-NET-2 (198.51.100.0/24): no real client is blocklisted.  Everything it
starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from harbor_ha.lease import Lease
from lab.ceph import CephCluster, random_loopback, start_cluster, stop_cluster

PAUSE_S = 3.0
"""Idle time before each measurement: longer than paxos_propose_interval plus the commit of
the previous commands' audit log lines (the cluster log is a Paxos service too), so each way
starts from an idle monitor (the failover's case: nothing else is committing)."""


def _epoch(cluster: CephCluster) -> int:
    return int(json.loads(cluster.admin("osd", "stat", "-f", "json").stdout)["epoch"])


async def _measure(cluster: CephCluster, runs: int) -> int:
    lease = Lease(cluster.settings(node_name="bench", lease_object="harbor-ha.lease-bench"))
    seq: list[float] = []
    together: list[float] = []
    n = 0

    def address() -> str:
        nonlocal n
        n += 1
        return f"198.51.100.{n % 250 + 1}:0/{secrets.randbelow(1 << 30)}"

    try:
        await lease.blocklisted()  # the agent started and connected: not part of a timing
        for run in range(1, runs + 1):
            await asyncio.sleep(PAUSE_S)
            e0, t0 = _epoch(cluster), time.monotonic()
            await lease.blocklist_add([address()], 60)
            await lease.blocklist_add([address()], 60)
            seq.append(time.monotonic() - t0)
            e1 = _epoch(cluster)
            await asyncio.sleep(PAUSE_S)
            e2, t1 = _epoch(cluster), time.monotonic()
            await lease.blocklist_add([address(), address()], 60)
            together.append(time.monotonic() - t1)
            e3 = _epoch(cluster)
            print(
                f"run {run}: one after the other {seq[-1]:.3f} s ({e1 - e0} commits); "
                f"together {together[-1]:.3f} s ({e3 - e2} commits)",
                flush=True,
            )
    finally:
        await lease.close()
    print(
        f"blocklist_two_sequential_median_s={statistics.median(seq):.3f} "
        f"blocklist_two_together_median_s={statistics.median(together):.3f}"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (the lab's Ceph)")
        return 2
    print(f"load average before: {os.getloadavg()}")
    work = Path(tempfile.mkdtemp(prefix="hhbbl-", dir="/var/tmp"))
    cluster = start_cluster(work, None, random_loopback())
    try:
        return asyncio.run(_measure(cluster, args.runs))
    finally:
        stop_cluster(cluster)
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    raise SystemExit(main())
