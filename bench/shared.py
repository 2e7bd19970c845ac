"""Shared mode: what each fault of one node costs the clients of a three-node cluster behind
HAProxy, under continuous skopeo pushes and pulls through the VIP.

Run as root from the repository top::

    .venv/bin/python -m bench.shared [--runs N] [--faults drain,kill,unhealthy,cephfs,crash]
                                     [--session-timeout S] [--evict-after S]
                                     [--dir /var/tmp/hhbsh]
                                     [--prefix hhbsh] [--subnet 10.94.0.0/24]

``--session-timeout S`` sets the CephFS's session_timeout (default: Ceph's, 60 s): how long
the MDS waits for a silent client (a crashed node's) before the others get its capabilities.
``--evict-after S`` sets the nodes' HARBOR_HA_SHARED_EVICT_AFTER_S (default: the lab's 5 s;
0: no eviction, the others wait for the MDS).

It brings up its OWN shared lab (lab.up(mode="shared"): nodes a, b, c on one CephFS mounted
with ceph-fuse, the external PostgreSQL and Redis, HAProxy + keepalived with the VIP;
lab/shared.py), starts a pusher and a puller through the VIP (lab/shared_faults.py), and makes
each fault N times on the node the client is on (lab/shared_faults.py names them).

Figures per fault: failed requests (pushes and pulls that ended between the fault and five
seconds after the client is served again), seconds until a healthy answer through the VIP
came from another node (the balancer's measured detection), seconds until every node serves
again, seconds until pushes and pulls through the VIP succeed again, acknowledged pushes
missing (through the VIP and on each serving node).  Printed first: the balancer's detection
time as rendered (``harbor_ha.haproxy.detection_s``: fall x inter + timeout check).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import lab
from lab.client import Client
from lab.shared import lb_detection_s
from lab.shared_faults import FAULTS, FaultFigures, PushPullLoad, run_fault, wait_all_in_rotation
from lab.traffic import Traffic


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.shared", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--faults", default=",".join(FAULTS))
    p.add_argument("--dir", type=Path, default=Path("/var/tmp/hhbsh"))
    p.add_argument("--prefix", default="hhbsh")
    p.add_argument("--subnet", default="10.94.0.0/24")
    p.add_argument("--session-timeout", type=int, default=None)
    p.add_argument("--evict-after", type=float, default=None)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.shared: run as root", file=sys.stderr)
        return 2
    faults = [f for f in args.faults.split(",") if f]
    print(f"bench.shared: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    st = lab.up(args.dir, prefix=args.prefix, subnet=args.subnet, mode="shared",
                stack="registry", nodes=("a", "b", "c"),
                cephfs_session_timeout_s=args.session_timeout,
                evict_after_s=args.evict_after)  # fmt: skip
    default = args.session_timeout is None
    timeout = "60 s (Ceph's default)" if default else f"{args.session_timeout} s"
    print(f"CephFS session_timeout: {timeout}; the nodes' HARBOR_HA_SHARED_EVICT_AFTER_S: "
          f"{st.evict_after_s:g} s (0: no eviction)")  # fmt: skip
    figures: list[FaultFigures] = []
    client: Client | None = None
    load: PushPullLoad | None = None
    try:
        wait_all_in_rotation(st, 300)
        print(f"HAProxy's detection time as rendered: {lb_detection_s(st):g} s "
              "(fall x inter + timeout check)")  # fmt: skip
        ca = next(iter(st.nodes.values())).ca_dir
        work = args.dir / "client"
        client = Client(st.client_netns, st.vip_address)
        load = PushPullLoad(Traffic(st.client_netns, st.vip_address, ca, work), every_s=0.2)
        load.start()
        for _ in range(args.runs):
            for fault in faults:
                fig = run_fault(st, load, client, fault, ca, work)
                st.save()
                figures.append(fig)
                print(fig.line(), flush=True)
    finally:
        if load is not None:
            load.stop()
        if client is not None:
            client.close()
        lab.down(args.dir)
    print(f"\n{'fault':<12} {'failed':>7} {'of':>5} {'out of rotation s':>18} "
          f"{'client back s':>14} {'missing':>8} {'evicted':>8}")  # fmt: skip
    for f in figures:
        out = "-" if f.out_of_rotation_s is None else f"{f.out_of_rotation_s:.1f}"
        print(f"{f.fault:<12} {f.failed:>7} {f.pushes + f.pulls:>5} {out:>18} "
              f"{f.client_back_s!s:>14} {f.missing:>8} {f.evicted:>8}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
