"""The demo (``scripts/demo``, ``python -m lab demo``): bring the lab up (the registry stack by
default), show both nodes, push an image and commit a row through the VIP, kill -9 the
master's keepalived and harbor-ha, pull the same image (and read the row) through the VIP
after the failover, print the failover timeline as it happens (both
nodes' decisions and the client's first healthy answer), bring the old master back, and leave
the lab running.  ``print_status`` and ``wait_one_master`` are the CLI's too."""

from __future__ import annotations

import time
from pathlib import Path

import lab
from lab import timeline
from lab.client import Client
from lab.replicated import harbor_serves
from lab.traffic import Traffic


def print_status(st: lab.LabState) -> None:
    holders = lab.vip_holders(st)
    replicated = st.mode == "replicated"  # no mapping or mount: whether Harbor serves there
    storage = f"{'harbor':<21}" if replicated else f"{'mapped':<12} {'mounted':<8}"
    print(f"{'node':<5} {'state':<12} {'VIP':<4} {storage} {'containers':<10} {'fault':<6} reason")
    for name, node in st.nodes.items():
        s = lab.status(st, name)
        if replicated:
            storage = f"{'NOT serving' if harbor_serves(node) else 'serves':<21}"
        else:
            mapped = ",".join(lab.mapped_here(node)) or "-"
            storage = f"{mapped:<12} {'yes' if lab.mounted_here(node) else 'no':<8}"
        last = (s.get("last_transitions") or [{}])[-1]
        print(
            f"{name:<5} {s.get('state', '?'):<12} {'yes' if name in holders else 'no':<4} "
            f"{storage} {len(lab.running_containers(node)):<10} "
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


def push_before(st: lab.LabState, traffic: Traffic) -> str:
    """Push image 1 and commit row 1 through the VIP; the pushed manifest digest."""
    ref = traffic.ref(1)
    digest = traffic.push(1)
    if digest is None:
        raise lab.LabError(f"push of {ref} through the VIP failed on a healthy lab")
    traffic.create_table()
    if not traffic.insert(1):
        raise lab.LabError("row 1 could not be committed through the VIP")
    print(f"  pushed {ref} ({digest}) with skopeo; committed row 1 to PostgreSQL")
    return digest


def pull_after(traffic: Traffic, pushed: str) -> bool:
    """Pull image 1 through the VIP and read row 1: the same digest and the row, or False."""
    pulled = traffic.pull(1)
    rows = traffic.rows()
    same = pulled == pushed
    print(
        f"  pulled {traffic.ref(1)}: {pulled or 'FAILED'} "
        f"({'the same image' if same else 'NOT the pushed image'}); "
        f"row 1 {'is there' if 1 in rows else 'is MISSING'}"
    )
    return same and 1 in rows


def demo(labdir: Path, advert: float, stack: str = "registry") -> int:
    print(
        "== harbor-ha lab: two nodes, real keepalived (VRRPv3), Ceph, dockerd, Harbor-shaped "
        "project"
    )
    st = lab.up(labdir, advert_s=advert, stack=stack)
    master = wait_one_master(st, within_s=240)
    print(f"\n== both nodes after cold start (master: {master})")
    print_status(st)
    backup = next(n for n in st.nodes if n != master)
    client = Client(st.client_netns, st.vip_address)
    traffic = Traffic(st.client_netns, st.vip_address, st.nodes[master].ca_dir,
                      Path(st.labdir) / "demo-traffic")  # fmt: skip
    pushed = ""
    kept = True
    try:
        if stack == "registry":
            print(f"\n== a client pushes an image through the VIP https://{st.vip_address}/")
            pushed = push_before(st, traffic)
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
        if pushed:
            print(f"\n== the client pulls the same image through the VIP (now node {backup})")
            kept = pull_after(traffic, pushed)
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
  .venv/bin/python -m lab status
  .venv/bin/python -m lab kill-master ; .venv/bin/python -m lab restart NODE
  .venv/bin/python -m lab unhealthy NODE core on
  .venv/bin/python -m lab switchover
  logs: {labdir}/a/harbor-ha.log {labdir}/b/harbor-ha.log (JSON, one line per decision)
Tear it down with:
  .venv/bin/python -m lab down""")
    return 0 if first_ok is not None and kept else 1
