"""`python -m lab COMMAND` (from the repository top): drive the two-node lab (as root).

up            bring the lab up (tears down a previous one first; --mode replicated: harbor-ha's
              replicated mode, each node's Harbor running on its local data dir, no Ceph;
              with --stack registry the two Harbors replicate to each other;
              --mode shared: three nodes on one CephFS behind HAProxy, lab/shared.py)
status        both nodes' state, the VIP holder, mappings, and the client's view
kill-master   kill -9 the master's keepalived and harbor-ha (Harbor left running)
restart NODE  start NODE's harbor-ha and keepalived again (as systemd would)
unhealthy NODE SERVICE on|off   flip a Harbor component's health on NODE
switchover    `harbor-ha switchover` on the master
partition     cut the nodes from each other (each keeps Ceph and the client)
heal          undo partition
down          tear everything down (also after a crash of the lab)
demo          up (registry stack), show both nodes, push an image and commit a row through
              the VIP, kill the master, print the failover timeline live, pull the same
              image through the VIP, bring the old master back, leave the lab running
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lab
from lab.demo import demo, print_status, wait_one_master

DEFAULTS: dict[str, object] = {
    "dir": lab.DEFAULT_LABDIR,
    "advert": 0.1,
    "prefix": "hha",
    "subnet": "10.99.0.0/24",
    "stack": None,
    "mode": "rbd",
}


def lab_options(p: argparse.ArgumentParser, default: object) -> None:
    """The lab's options, on the main parser and on each command's, none with a default
    (argparse.SUPPRESS: a value given in either place counts; DEFAULTS fills the rest)."""
    p.add_argument("--dir", type=Path, default=default, help="lab directory")
    p.add_argument("--advert", type=float, default=default, help="VRRP advert interval (s)")
    p.add_argument("--prefix", default=default, help="netns prefix for up (one per lab)")
    p.add_argument("--subnet", default=default, help="the lab's subnet for up")
    p.add_argument(
        "--stack",
        choices=lab.STACKS,
        default=default,
        help="Harbor project: shape (busybox) or registry (real programs); "
        "default: registry for demo, shape for up",
    )
    p.add_argument(
        "--mode",
        choices=lab.MODES,
        default=default,
        help="harbor-ha's mode for up: rbd (one Ceph RBD image failed over), replicated "
        "(each node's Harbor on its own local data dir, running on both nodes; with the "
        "registry stack the two Harbors replicate to each other) or shared (three nodes on "
        "one CephFS behind HAProxy; always the registry stack)",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m lab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lab_options(p, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("up", "status", "kill-master", "switchover", "partition", "heal", "down", "demo"):
        # The options also after the command (`python -m lab up --mode replicated`).
        lab_options(sub.add_parser(name), argparse.SUPPRESS)
    r = sub.add_parser("restart")
    r.add_argument("node")
    u = sub.add_parser("unhealthy")
    u.add_argument("node")
    u.add_argument("service")
    u.add_argument("mode", choices=["on", "off"])
    args = p.parse_args(argv)
    for key, value in DEFAULTS.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    if args.cmd == "demo":
        return demo(args.dir, args.advert, args.stack or "registry")
    if args.cmd == "up" and args.mode == "shared":
        from lab.shared_faults import serving_nodes, wait_all_in_rotation

        st = lab.up(
            args.dir, prefix=args.prefix, subnet=args.subnet, advert_s=args.advert,
            stack="registry", mode="shared", nodes=("a", "b", "c"),
        )  # fmt: skip
        wait_all_in_rotation(st, within_s=300)
        print(f"lab: up; serving: {', '.join(serving_nodes(st))}, each UP in HAProxy; VIP "
              f"{st.vip} on HAProxy")  # fmt: skip
        return 0
    if args.cmd == "up":
        st = lab.up(
            args.dir, prefix=args.prefix, subnet=args.subnet, advert_s=args.advert,
            stack=args.stack or "shape", mode=args.mode,
        )  # fmt: skip
        master = wait_one_master(st, within_s=240)
        print(f"lab: up; master is {master}")
        print_status(st)
        return 0
    if args.cmd == "down":
        lab.down(args.dir)
        return 0
    with lab.lab_session(args.dir) as st:
        if args.cmd == "status":
            print_status(st)
        elif args.cmd == "kill-master":
            m = lab.masters(st)
            if not m:
                print("no MASTER to kill", file=sys.stderr)
                return 1
            lab.kill_services(st, m[0])
            print(f"killed keepalived and harbor-ha of node {m[0]} (kill -9)")
        elif args.cmd == "restart":
            lab.start_services(st, args.node)
            print(f"started harbor-ha and keepalived on node {args.node}")
        elif args.cmd == "unhealthy":
            lab.set_unhealthy(st, args.node, args.service, args.mode == "on")
        elif args.cmd == "switchover":
            m = lab.masters(st)
            if not m:
                print("no MASTER", file=sys.stderr)
                return 1
            print(lab.harbor_ha(st.nodes[m[0]], "switchover", check=False).stdout)
        elif args.cmd == "partition":
            lab.partition(st)
        elif args.cmd == "heal":
            lab.heal(st)
    return 0


if __name__ == "__main__":
    sys.exit(main())
