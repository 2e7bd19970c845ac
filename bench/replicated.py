"""Replicated mode: how long from a critical component's failure on the master to the VIP on
the peer, harbor-ha against the usual keepalived check script, in the same lab.

Run as root from the repository top::

    .venv/bin/python -m bench.replicated [--runs N] [--kinds stopped,unhealthy]
                                         [--variants harbor-ha,script]
                                         [--dir /var/tmp/hhbrep] [--prefix hhbrep] [--keep]

It brings up its OWN two-node lab in the replicated mode (lab.up(mode="replicated"): real
keepalived and dockerd in network namespaces on 10.97.0.0/24, each node's Harbor-shaped
project running all the time on its local data dir; own directory and prefix), then N faults
of each kind on the node holding the VIP:

- stopped:   ``docker stop registry`` (a critical service's container is gone; ``restart:
             always`` does not bring back a stopped container); restored with ``docker start``.
- unhealthy: the lab's unhealthy switch for the registry: its Docker healthcheck fails and
             core's health API reports the registry component unhealthy (at its next 10 s
             checker run, as Harbor's core does); cleared afterwards.

Figure per fault: seconds from the fault (``time.time()`` just before it is injected) to the
VIP on the peer's interface (``ip addr`` polled every 50 ms in both nodes' netns).

First with harbor-ha (the lab's settings: probe every 1 s, fall 2; keepalived's track files).
Then the same faults with the usual deployment instead of harbor-ha, in the same lab: both
harbor-ha daemons and keepalived stopped (by their PIDs), keepalived started again on each
node with a ``vrrp_script`` that passes when at least as many Harbor containers are
``healthy`` as there were at the start and the node's :443 accepts (``interval 10``,
``fall 2``, ``rise 2``, ``init_fail``), no track files.  Both use the same adverts (0.1 s),
``state BACKUP`` and ``nopreempt``.

Prints one line per fault and a summary table (median, min, max per kind and variant).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lab
from lab.keepalived import keepalived_argv, wait_previous_gone
from lab.procs import sh, spawn
from lab.state import HTTPS_PORT, PROJECT, LabState, NodeState

SUBNET = "10.97.0.0/24"
POLL_S = 0.05
MOVE_WITHIN_S = 300.0
"""Bound on one fault's wait for the VIP to move (the check script needs Docker's 3 x 30 s
healthcheck failures, then 2 x 10 s of its own)."""
SETTLE_WITHIN_S = 300.0
SCRIPT_INTERVAL_S = 10
SCRIPT_FALL = 2
SCRIPT_RISE = 2
KINDS = ("stopped", "unhealthy")

CHECK_SCRIPT = """#!/bin/sh
# The usual replicated pair's keepalived check: enough healthy Harbor containers and :443.
# $1 DOCKER_HOST, $2 how many must be healthy, $3 the node's address, $4 the https port.
n=$(docker -H "$1" ps -q --filter "label=com.docker.compose.project={project}" \\
    --filter health=healthy | wc -l)
[ "$n" -ge "$2" ] || exit 1
exec timeout 2 bash -c "exec 3<>/dev/tcp/$3/$4" 2>/dev/null
"""


def docker(node: NodeState, *args: str) -> subprocess.CompletedProcess[str]:
    return sh("docker", "-H", node.docker_host, *args, check=False, timeout=60)


def healthy_count(node: NodeState) -> int:
    out = docker(node, "ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}",
                 "--filter", "health=healthy").stdout  # fmt: skip
    return len(out.split())


def with_healthcheck(node: NodeState) -> int:
    """How many of the project's running containers have a healthcheck."""
    ids = docker(node, "ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}")
    ids_list = ids.stdout.split()
    if not ids_list:
        return 0
    out = docker(node, "inspect", "--format", "{{if .State.Health}}1{{else}}0{{end}}", *ids_list)
    return sum(1 for line in out.stdout.split() if line == "1")


def wait(what: str, ok: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not ok():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} not within {within_s:g} s")
        time.sleep(0.5)


def holder(st: LabState) -> str | None:
    holders = lab.vip_holders(st)
    return holders[0] if len(holders) == 1 else None


def peer_of(st: LabState, name: str) -> str:
    return next(n for n in st.nodes if n != name)


def time_to_peer(st: LabState, master: str, fault: Callable[[], None]) -> float:
    peer = peer_of(st, master)
    t0 = time.time()
    fault()
    deadline = time.monotonic() + MOVE_WITHIN_S
    while lab.vip_holders(st) != [peer]:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: the VIP did not move from {master} to {peer}")
        time.sleep(POLL_S)
    return round(time.time() - t0, 2)


def inject(st: LabState, kind: str, name: str, on: bool) -> None:
    node = st.nodes[name]
    if kind == "stopped":
        docker(node, "stop" if on else "start", "registry")
    else:
        lab.set_unhealthy(st, name, "registry", on)


# ------------------------------------------------------------------ harbor-ha
def harbor_ha_settled(st: LabState) -> bool:
    """One MASTER holding the VIP, the other BACKUP with its fault file clear."""
    states = {name: lab.status(st, name) for name in st.nodes}
    masters = [n for n, s in states.items() if s.get("state") == "MASTER"]
    if len(masters) != 1 or holder(st) != masters[0]:
        return False
    other = states[peer_of(st, masters[0])]
    return other.get("state") == "BACKUP" and other.get("fault") is False


def faults(
    st: LabState, label: str, kinds: list[str], runs: int, settled: Callable[[], None]
) -> dict[str, list[float]]:
    """``runs`` faults of each kind on the VIP's holder, each cleared and ``settled()`` (it
    waits) before the next; the seconds to the VIP on the peer, per kind."""
    out: dict[str, list[float]] = {k: [] for k in kinds}
    for kind in kinds:
        for i in range(runs):
            master = holder(st)
            assert master is not None
            took = time_to_peer(st, master, functools.partial(inject, st, kind, master, True))
            out[kind].append(took)
            print(f"{label:10} {kind:9} {i + 1}/{runs}: {master} -> VIP on the peer {took} s",
                  flush=True)  # fmt: skip
            inject(st, kind, master, False)
            settled()
    return out


def run_harbor_ha(st: LabState, kinds: list[str], runs: int) -> dict[str, list[float]]:
    def settled() -> None:
        wait("harbor-ha settled", lambda: harbor_ha_settled(st), SETTLE_WITHIN_S)

    settled()
    return faults(st, "harbor-ha", kinds, runs, settled)


# ---------------------------------------------------------------- check script
def script_config(st: LabState, node: NodeState, script: Path, healthy: int) -> str:
    peer = st.nodes[peer_of(st, node.name)]
    priority = 110 if node.name == "a" else 100
    check = f"{script} {node.docker_host} {healthy} {node.address} {HTTPS_PORT}"
    return f"""global_defs {{
    router_id {node.name}
    script_user root
    vrrp_version 3
}}

vrrp_script chk_harbor {{
    script "{check}"
    interval {SCRIPT_INTERVAL_S}
    timeout 5
    fall {SCRIPT_FALL}
    rise {SCRIPT_RISE}
    init_fail
}}

vrrp_instance VI_1 {{
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {round(st.advert_s, 2):g}
    unicast_src_ip {node.address}
    unicast_peer {{
        {peer.address}
    }}
    virtual_ipaddress {{
        {st.vip} dev eth0
    }}
    track_script {{
        chk_harbor
    }}
}}
"""


def check_passes(node: NodeState, script: Path, healthy: int) -> bool:
    argv = [str(script), node.docker_host, str(healthy), node.address, str(HTTPS_PORT)]
    res = sh("ip", "netns", "exec", node.netns, *argv, check=False, timeout=30)
    return res.returncode == 0


def switch_to_script(st: LabState, workdir: Path) -> tuple[Path, int]:
    """Stop harbor-ha and keepalived on both nodes (by PID), start keepalived with the
    check script; returns the script and the healthy count it requires."""
    healthy = min(with_healthcheck(n) for n in st.nodes.values())
    wait("every container with a healthcheck healthy",
         lambda: all(healthy_count(n) >= healthy for n in st.nodes.values()),
         SETTLE_WITHIN_S)  # fmt: skip
    script = workdir / "check_harbor.sh"
    script.write_text(CHECK_SCRIPT.format(project=PROJECT))
    script.chmod(0o755)
    for name in st.nodes:
        lab.kill_services(st, name, 15)
    for node in st.nodes.values():
        conf = workdir / f"keepalived-script-{node.name}.conf"
        conf.write_text(script_config(st, node, script, healthy))
        wait_previous_gone(node.path)
        node.pids.pop("harbor-ha", None)
        node.pids["keepalived"] = spawn(
            keepalived_argv(node.netns, conf, node.path), workdir / f"keepalived-{node.name}.log"
        )
    st.save()
    return script, healthy


def run_script(st: LabState, kinds: list[str], runs: int, workdir: Path) -> dict[str, list[float]]:
    script, healthy = switch_to_script(st, workdir)
    rise_s = SCRIPT_RISE * SCRIPT_INTERVAL_S + 2

    def settled() -> bool:
        return holder(st) is not None and all(
            check_passes(n, script, healthy) for n in st.nodes.values()
        )

    def settled_and_risen() -> None:
        wait("the check script passing on both nodes", settled, SETTLE_WITHIN_S)
        time.sleep(rise_s)  # the script must have risen in keepalived too

    settled_and_risen()
    return faults(st, "script", kinds, runs, settled_and_risen)


def summary(name: str, figures: dict[str, list[float]]) -> list[str]:
    return [
        f"| {name} | {kind} | {statistics.median(v):.2f} | {min(v):.2f} | {max(v):.2f} | {len(v)} |"
        for kind, v in figures.items()
        if v
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp/hhbrep"))
    ap.add_argument("--prefix", default="hhbrep")
    ap.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    ap.add_argument(
        "--variants", default="harbor-ha,script", help="which to run: harbor-ha, script or both"
    )
    args = ap.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    bad = set(kinds) - set(KINDS)
    if bad or os.geteuid() != 0:
        print(f"bench: kinds are {', '.join(KINDS)}; run as root", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    st = lab.up(args.dir, prefix=args.prefix, subnet=SUBNET, mode="replicated",
                say=lambda m: print(m, flush=True))  # fmt: skip
    try:
        variants = args.variants.split(",")
        ours = run_harbor_ha(st, kinds, args.runs) if "harbor-ha" in variants else {}
        theirs = run_script(st, kinds, args.runs, Path(st.labdir)) if "script" in variants else {}
    finally:
        if not args.keep:
            lab.down(args.dir, say=lambda m: print(m, flush=True))
    print()
    print(f"replicated mode, fault -> VIP on the peer (s); {started}, load {load:.2f} at start")
    print("| variant | fault | median | min | max | runs |")
    print("|---|---|---|---|---|---|")
    for line in summary("harbor-ha", ours) + summary("check script (interval 10, fall 2)", theirs):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
