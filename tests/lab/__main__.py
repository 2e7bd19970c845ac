"""`python -m tests.lab COMMAND`: drive the two-node lab (as root).

up            bring the lab up (tears down a previous one first)
status        both nodes' state, the VIP holder, mappings, and the client's view
kill-master   kill -9 the master's keepalived and harbor-ha (Harbor left running)
restart NODE  start NODE's harbor-ha and keepalived again (as systemd would)
unhealthy NODE SERVICE on|off   flip a Harbor component's health on NODE
switchover    `harbor-ha switchover` on the master
partition     cut the nodes from each other (each keeps Ceph and the client)
heal          undo partition
down          tear everything down (also after a crash of the lab)
demo          up, show both nodes, kill the master, print the failover timeline live,
              bring the old master back, leave the lab running
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tests.lab import lab, timeline
from tests.lab.client import Client


def print_status(st: lab.LabState) -> None:
    holders = lab.vip_holders(st)
    print(
        f"{'node':<5} {'state':<12} {'VIP':<4} {'mapped':<12} {'mounted':<8} "
        f"{'containers':<10} {'fault':<6} reason"
    )
    for name, node in st.nodes.items():
        s = lab.status(st, name)
        mapped = ",".join(lab.mapped_here(node)) or "-"
        last = (s.get("last_transitions") or [{}])[-1]
        print(
            f"{name:<5} {s.get('state', '?'):<12} {'yes' if name in holders else 'no':<4} "
            f"{mapped:<12} {'yes' if lab.mounted_here(node) else 'no':<8} "
            f"{len(lab.running_containers(node)):<10} "
            f"{'SET' if s.get('fault') else 'clear':<6} {last.get('reason', s.get('error', ''))}"
        )
    client = Client(st.client_netns, st.vip_address)
    try:
        a = client.check()
    finally:
        client.close()
    print(
        f"client (netns {st.client_netns}) -> https://{st.vip_address}/api/v2.0/health: "
        f"{'healthy' if a.ok else 'NOT healthy'} ({a.detail})"
    )


def wait_one_master(st: lab.LabState, within_s: float = 120) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        m = lab.masters(st)
        if len(m) == 1 and lab.status(st, m[0]).get("harbor_healthy"):
            return m[0]
        time.sleep(0.5)
    raise lab.LabError(f"no single healthy MASTER within {within_s} s; see {st.labdir}/*/")


def follow(
    st: lab.LabState,
    t0: float,
    until: float,
    client: Client,
    stop_on_client: bool = True,
    shown: set[tuple[str, float, str]] | None = None,
    from_node: str = "",
) -> tuple[float | None, list[timeline.Entry]]:
    """Print log entries of both nodes as they appear, and the client's first healthy answer."""
    shown = set() if shown is None else shown
    first_ok: float | None = None
    entries: list[timeline.Entry] = []
    while time.monotonic() < until:
        new = []
        for name, node in st.nodes.items():
            for e in timeline.read(node.log, name, since=t0):
                key = (e.node, e.at, e.msg)
                if key not in shown:
                    shown.add(key)
                    new.append(e)
        for e in sorted(new, key=lambda e: e.at):
            entries.append(e)
            print(f"  +{e.at - t0:7.3f} s  node {e.node}: {e.describe()}", flush=True)
        if first_ok is None:
            a = client.check()
            if a.ok and a.at > t0 and (not from_node or a.served_by == from_node):
                first_ok = a.at
                print(
                    f"  +{first_ok - t0:7.3f} s  client: first healthy answer through the "
                    f"VIP ({a.detail})",
                    flush=True,
                )
        promoted = any(
            e.msg == "transition" and e.fields.get("to") == "MASTER" and e.node == from_node
            for e in entries
        )
        if stop_on_client and first_ok is not None and (promoted or not from_node):
            until = min(until, time.monotonic() + 0.3)
        time.sleep(0.05)
    return first_ok, entries


def demo(labdir: Path, advert: float) -> int:
    print(
        "== harbor-ha lab: two nodes, real keepalived (VRRPv3), Ceph, dockerd, Harbor-shaped "
        "project"
    )
    st = lab.up(labdir, advert_s=advert)
    master = wait_one_master(st)
    print(f"\n== both nodes after cold start (master: {master})")
    print_status(st)
    backup = next(n for n in st.nodes if n != master)
    client = Client(st.client_netns, st.vip_address)
    try:
        print(
            f"\n== kill -9 of node {master}'s keepalived and harbor-ha "
            "(Harbor left running, as after a host hang)"
        )
        t0 = time.time()
        lab.kill_services(st, master)
        first_ok, entries = follow(st, t0, time.monotonic() + 90, client, from_node=backup)
        steps = timeline.step_durations([e for e in entries if e.node == backup])
        print(f"\n== failover summary (node {backup} took over)")
        for step in ("lease", "fence", "map", "mount", "start"):
            if step in steps:
                print(f"  {step:<6} {steps[step]:7.3f} s")
        if first_ok is not None:
            print(f"  client's first healthy answer {first_ok - t0:.3f} s after the kill")
        else:
            print("  the client got NO healthy answer within 90 s")
        print(f"\n== node {master}'s services come back: it must converge to a clean BACKUP")
        t1 = time.time()
        lab.start_services(st, master)
        deadline = time.monotonic() + 60
        seen: set[tuple[str, float, str]] = set()
        while time.monotonic() < deadline:
            follow(st, t1, time.monotonic() + 0.5, client, stop_on_client=False, shown=seen)
            s = lab.status(st, master)
            if s.get("state") == "BACKUP" and not lab.mapped_here(st.nodes[master]):
                break
    finally:
        client.close()
    print("\n== now")
    print_status(st)
    print(f"""
The lab keeps running. Try:
  .venv/bin/python -m tests.lab status
  .venv/bin/python -m tests.lab kill-master ; .venv/bin/python -m tests.lab restart NODE
  .venv/bin/python -m tests.lab unhealthy NODE core on
  .venv/bin/python -m tests.lab switchover
  logs: {labdir}/a/harbor-ha.log {labdir}/b/harbor-ha.log (JSON, one line per decision)
Tear it down with:
  .venv/bin/python -m tests.lab down""")
    return 0 if first_ok is not None else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.lab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dir", type=Path, default=lab.DEFAULT_LABDIR, help="lab directory")
    p.add_argument("--advert", type=float, default=0.1, help="VRRP advert interval (s)")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("up", "status", "kill-master", "switchover", "partition", "heal", "down", "demo"):
        sub.add_parser(name)
    r = sub.add_parser("restart")
    r.add_argument("node")
    u = sub.add_parser("unhealthy")
    u.add_argument("node")
    u.add_argument("service")
    u.add_argument("mode", choices=["on", "off"])
    args = p.parse_args(argv)
    if args.cmd == "demo":
        return demo(args.dir, args.advert)
    if args.cmd == "up":
        st = lab.up(args.dir, advert_s=args.advert)
        master = wait_one_master(st)
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
