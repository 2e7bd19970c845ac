"""The daemon's idle footprint: CPU % of one core and RSS of each node's harbor-ha.

Run as root from the repository top::

    .venv/bin/python -m bench.footprint [--window 120] [--settle 20] [--stack registry]

It brings up its own two-node lab (lab/: real keepalived, Ceph, dockerd, the registry stack
of real programs by default or the busybox shape; the lease on; own directory and netns
prefix) with the probe interval of 1 s (``--probe-interval``; 0: the settings default) and log
level info, waits until one node serves and the other is a ready standby, lets it settle,
then samples each harbor-ha process over ``--window`` seconds:

- cpu_self:     (utime + stime) delta / window, in % of one core (/proc/PID/stat);
- cpu_commands: the same for the commands it ran and reaped in the window (cutime + cstime:
                probes' `dd`, `rbd`, ...; exact), and per command (how many runs, how much
                CPU) from the kernel's process accounting (bench/pacct.py);
- cpu_agent:    the long-lived children (the lease agent, python3-rados), from their own
                /proc/PID/stat: never reaped while they run, so not in cutime;
- total:        the three together, the node's whole cost;
- rss_mib:      VmRSS of the daemon at the end of the window (/proc/PID/status), VmHWM (the
                peak), and the lease agent's VmRSS.

Goals: total < 0.5 % of a core, RSS < 60 MiB.  Prints ``uptime`` before and after
(the machine's load: other labs may run beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import lab
import lab.node as lab_node
from bench import pacct
from bench.failover import say, wait_stable
from lab.mappings import KRBD_STANDIN, standin_env

CLK_TCK = os.sysconf("SC_CLK_TCK")
GOAL_CPU_PCT = 0.5
GOAL_RSS_MIB = 60.0


@dataclass(frozen=True)
class Sample:
    self_ticks: int
    child_ticks: int
    at: float


def sample(pid: int) -> Sample:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the comm: state is fields[0]; utime, stime, cutime, cstime are fields 11..14
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return Sample(utime + stime, cutime + cstime, time.monotonic())


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    vals: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            vals[key] = int(rest.split()[0]) / 1024
    return vals["VmRSS"], vals["VmHWM"]


def installed_venv(where: Path, ref: str | None = None) -> str:
    """A virtualenv of Debian's python3 with harbor-ha installed as operators install it
    (``pip install -c constraints.txt .``: the runtime dependencies only, as the .deb has
    them; the development venv also has the test tools, e.g. rich, which structlog imports
    when present: ~5 MiB).
    With ``ref``, the project is that git commit's tree (``git archive``), to compare.
    Returns its harbor-ha command; reused when present."""
    root = Path(__file__).resolve().parents[1]
    if ref is not None:
        src = where / "src"
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", ref], capture_output=True, timeout=60, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, timeout=60, check=True)
        root = src
    venv = where / "venv"
    if not (venv / "bin/harbor-ha").exists():
        python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        lab.sh(python, "-m", "venv", "--clear", str(venv), timeout=120)
        pip = [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check"]
        lab.sh(*pip, "-c", str(root / "constraints.txt"), str(root), timeout=600)
    else:  # the working tree may have changed: reinstall the project only
        pip = [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check"]
        lab.sh(*pip, "--no-deps", "--force-reinstall", str(root), timeout=600)
    return str(venv / "bin/harbor-ha")


def probe_env(interval_s: float | None) -> None:
    """The lab's env files with HARBOR_HA_PROBE_INTERVAL_S=``interval_s``, or without the
    tests' 1 s (None: the settings default applies)."""
    plain = lab_node.node_env
    line = "" if interval_s is None else f"HARBOR_HA_PROBE_INTERVAL_S={interval_s:g}\n"

    def node_env(st: lab.LabState, node: lab.NodeState, compose: str) -> str:
        lines = plain(st, node, compose).splitlines(keepends=True)
        kept = [x for x in lines if not x.startswith("HARBOR_HA_PROBE_INTERVAL_S=")]
        return "".join(kept) + line

    lab_node.node_env = node_env  # install_node() looks it up in lab.node at call time


def command_counts(node: lab.NodeState) -> dict[str, float]:
    """External commands run so far, by executable (the daemon's own /metrics histogram)."""
    text = lab.sh(
        "nsenter", f"--net=/run/netns/{node.netns}", "curl", "-sf", "http://127.0.0.1:9105/metrics"
    ).stdout
    prefix = 'harbor_ha_command_duration_seconds_count{command="'
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            name, _, value = line[len(prefix) :].partition('"} ')
            out[name] = float(value)
    return out


def live_children(pid: int) -> list[int]:
    """PIDs of ``pid``'s running children (all its threads'); the lease agent is one."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(x) for x in (task / "children").read_text().split()]
    return out


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


@dataclass
class NodeFigures:
    """One node's figures over the window (CPU in % of one core)."""

    master: bool
    cpu_self: float
    cpu_reaped: float  # cutime + cstime: the commands run and reaped in the window (exact)
    cpu_agents: float  # the long-lived children (the lease agent), running all along
    rss_mib: float
    hwm_mib: float
    agents: dict[int, tuple[str, float]]  # pid -> (comm, RSS MiB) of the long-lived children
    commands: dict[str, tuple[int, float]]  # command name -> (runs, CPU s) from acct
    metrics_per_min: dict[str, float]  # the daemon's own count of its commands, per minute

    @property
    def cpu_total(self) -> float:
        return self.cpu_self + self.cpu_reaped + self.cpu_agents


def measure(
    st: lab.LabState,
    master: str,
    window_s: float,
    acct_file: Path,
    py_spy: str | None = None,
) -> dict[str, NodeFigures]:
    """Sample both daemons over ``window_s``: their own CPU, the commands they ran (reaped
    children: exact total from /proc, per command from process accounting), their live
    children (the lease agent: its own /proc/PID/stat).  With ``py_spy`` (the path of a
    py-spy binary), also record their stacks meanwhile (raw stacks in
    LABDIR/../profile-NODE.txt)."""
    pids = {name: node.pids["harbor-ha"] for name, node in st.nodes.items()}
    counts = {name: command_counts(node) for name, node in st.nodes.items()}
    agents = {name: live_children(pid) for name, pid in pids.items()}
    spies = []
    if py_spy:
        for name, pid in pids.items():
            prof = Path(st.labdir).parent / f"profile-{name}.txt"
            argv = [py_spy, "record", "--nonblocking", "-r", "100", "-f", "raw"]
            argv += ["-d", str(int(window_s)), "-o", str(prof), "-p", str(pid)]
            spies.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
    with pacct.Accounting(acct_file) as acct:
        first = {name: sample(pid) for name, pid in pids.items()}
        agent_first = {p: sample(p) for ps in agents.values() for p in ps}
        time.sleep(window_s)
        last = {name: sample(pid) for name, pid in pids.items()}
        agent_last = {
            p: sample(p) for ps in agents.values() for p in ps if Path(f"/proc/{p}").exists()
        }
        acct.stop()
        exited = pacct.descendants(acct.records(), pids.values())
    for spy in spies:
        spy.wait(timeout=60)
    out: dict[str, NodeFigures] = {}
    for name, node in st.nodes.items():
        pid = pids[name]
        secs = last[name].at - first[name].at
        after = command_counts(node)
        per_min = {
            k: (v - counts[name].get(k, 0.0)) * 60 / window_s
            for k, v in sorted(after.items())
            if v > counts[name].get(k, 0.0)
        }
        commands: dict[str, tuple[int, float]] = {}
        for rec in exited[pid]:
            runs, cpu = commands.get(rec.comm, (0, 0.0))
            commands[rec.comm] = (runs + 1, cpu + rec.cpu_s)
        agent_ticks = sum(
            agent_last[p].self_ticks - agent_first[p].self_ticks
            for p in agents[name]
            if p in agent_last
        )
        rss, hwm = memory_mib(pid)
        out[name] = NodeFigures(
            master=name == master,
            cpu_self=100 * (last[name].self_ticks - first[name].self_ticks) / CLK_TCK / secs,
            cpu_reaped=100 * (last[name].child_ticks - first[name].child_ticks) / CLK_TCK / secs,
            cpu_agents=100 * agent_ticks / CLK_TCK / secs,
            rss_mib=rss,
            hwm_mib=hwm,
            agents={p: (comm(p), memory_mib(p)[0]) for p in agents[name] if p in agent_last},
            commands=dict(sorted(commands.items(), key=lambda kv: -kv[1][1])),
            metrics_per_min=per_min,
        )
    return out


def report(figures: dict[str, NodeFigures], window_s: float) -> None:
    say(
        "node  role     cpu_self%  cpu_commands%  cpu_agent%  cpu_total%  rss_MiB  peak_MiB"
        "  agent_rss_MiB"
    )
    for name, f in sorted(figures.items()):
        role = "master" if f.master else "standby"
        agent_rss = sum(rss for _comm, rss in f.agents.values())
        say(
            f"{name:<5} {role:<8} {f.cpu_self:9.2f}  {f.cpu_reaped:13.2f}  {f.cpu_agents:10.2f}  "
            f"{f.cpu_total:10.2f}  {f.rss_mib:7.1f}  {f.hwm_mib:8.1f}  {agent_rss:13.1f}"
        )
    for name, f in sorted(figures.items()):
        role = "master" if f.master else "standby"
        kids = ", ".join(f"{c} pid {p} RSS {r:.1f} MiB" for p, (c, r) in f.agents.items())
        say(f"{name} ({role}): long-lived children: {kids or 'none'}")
        say(f"{name} ({role}): commands run in the window (process accounting; CPU rounded "
            "down to 10 ms per process):")  # fmt: skip
        attributed = 0.0
        for cmd, (runs, cpu) in f.commands.items():
            attributed += cpu
            say(f"    {cmd:<18} {runs:5d} runs  {runs * 60 / window_s:6.1f}/min  "
                f"CPU {cpu:6.2f} s = {100 * cpu / window_s:5.2f} % of a core")  # fmt: skip
        unattributed = f.cpu_reaped - 100 * attributed / window_s
        say(f"    (reaped children exact total {f.cpu_reaped:.2f} %, unattributed by the "
            f"10 ms rounding {unattributed:.2f} %)")  # fmt: skip
        say("    the daemon's own count per minute: "
            + ", ".join(f"{k} {v:.0f}" for k, v in f.metrics_per_min.items()))  # fmt: skip


def cli_cost(st: lab.LabState, name: str, runs: int) -> dict[str, tuple[float, float]]:
    """CPU ms and wall ms per call of the standby's Ceph CLIs in node ``name``'s netns against
    the lab's Ceph: through the krbd stand-in (a Python script; ``info`` and ``status`` it
    execs into the real rbd) and with the real /usr/bin/rbd (C++).  Sequential calls from
    this process, CPU = its reaped children's (resource.RUSAGE_CHILDREN), minus an
    ``nsenter ... true`` baseline."""
    import resource

    node = st.nodes[name]
    common = ["--id", "harbor", "-c", st.ceph_conf, "--keyring", st.ceph_keyring]
    enter = ["nsenter", f"--net=/run/netns/{node.netns}"]
    env = standin_env(node.rbd_state)
    cases = {
        "nsenter true (baseline)": [*enter, "true"],
        "stand-in rbd device list": [*enter, str(KRBD_STANDIN), *common, "device", "list",
                                     "--format", "json"],
        "real rbd device list": [*enter, "/usr/bin/rbd", *common, "device", "list",
                                 "--format", "json"],
        "stand-in rbd info": [*enter, str(KRBD_STANDIN), *common, "info", "rbd/harbor",
                              "--format", "json"],
        "real rbd info": [*enter, "/usr/bin/rbd", *common, "info", "rbd/harbor", "--format",
                          "json"],
        "real rbd status": [*enter, "/usr/bin/rbd", *common, "status", "rbd/harbor",
                            "--format", "json"],
    }  # fmt: skip

    def cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    out: dict[str, tuple[float, float]] = {}
    for what, argv in cases.items():
        start_cpu, start = cpu(), time.monotonic()
        for _ in range(runs):
            subprocess.run(argv, env=env, capture_output=True, timeout=60, check=True)
        out[what] = (
            (cpu() - start_cpu) / runs * 1e3,
            (time.monotonic() - start) / runs * 1e3,
        )
    base = out["nsenter true (baseline)"][0]
    return {k: (v[0] - base if k != "nsenter true (baseline)" else v[0], v[1])
            for k, v in out.items()}  # fmt: skip


def vip_check_cost(calls: int = 300) -> tuple[float, float]:
    """CPU ms per VIP check (self + reaped children) of the way before (``ip -j addr show``
    through the daemon's ProcessRunner) and now (rtnetlink), on this host's lo."""
    import asyncio
    import resource

    from harbor_ha.keepalived.netlink import interface_addresses
    from harbor_ha.runner import ProcessRunner

    def cpu() -> float:
        me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    async def with_ip() -> None:
        runner = ProcessRunner()
        for _ in range(calls):
            await runner.run(["ip", "-j", "addr", "show", "dev", "lo"], timeout_s=5)

    start = cpu()
    asyncio.run(with_ip())
    ip_ms = (cpu() - start) / calls * 1e3
    start = cpu()
    for _ in range(calls):
        interface_addresses("lo", 2.0)
    return ip_ms, (cpu() - start) / calls * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--window", type=float, default=120.0, help="seconds sampled")
    ap.add_argument("--settle", type=float, default=20.0, help="seconds idle before sampling")
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp/hhfoot"))
    ap.add_argument("--prefix", default="hhfoot")
    ap.add_argument(
        "--probe-interval",
        type=float,
        default=1.0,
        help="seconds (default 1, the lab's and the goal's; 0: the settings default)",
    )
    ap.add_argument("--stack", default="registry", choices=lab.STACKS, help="the Harbor project")
    ap.add_argument(
        "--advert", type=float, default=0.1,
        help="VRRP advert interval, s (default 0.1, the lab's; 0.5 is the product's default, "
        "which also derives the standby's lease watch: 0.75 s instead of 0.1 s)",
    )  # fmt: skip
    ap.add_argument("--py-spy", default=None, help="py-spy binary: also profile the daemons")
    ap.add_argument(
        "--vip-check-cost", action="store_true", help="only the CPU per VIP check, ip vs netlink"
    )
    ap.add_argument(
        "--cli-cost", type=int, default=20, metavar="N",
        help="also time N calls of each Ceph CLI the standby runs, stand-in and real (0: no)",
    )  # fmt: skip
    ap.add_argument("--ref", default=None, help="measure this git commit's daemon instead")
    ap.add_argument(
        "--dev-venv", action="store_true", help="run the development venv's harbor-ha instead"
    )
    args = ap.parse_args()
    if args.vip_check_cost:
        import logging

        logging.disable(logging.CRITICAL)
        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
        ip_ms, nl_ms = vip_check_cost()
        say(f"vip check, CPU ms per call: ip subprocess {ip_ms:.2f}, netlink {nl_ms:.3f}")
        return 0
    if args.probe_interval == 0:
        args.probe_interval = None
    probe_env(args.probe_interval)
    if not args.dev_venv:
        suffix = "-venv" if args.ref is None else "-venv-ref"
        command = installed_venv(args.dir.parent / f"{args.dir.name}{suffix}", args.ref)
        setattr(lab_node, "HARBOR_HA", command)  # noqa: B010 (lab.node reads it at call time)
        say(f"footprint: daemon {command}")
    say(f"footprint: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
        f"uptime: {lab.sh('uptime').stdout.strip()}")  # fmt: skip
    say(f"footprint: VRRP advert {args.advert:g} s")
    st = lab.up(args.dir, prefix=args.prefix, say=say, stack=args.stack, advert_s=args.advert)
    try:
        master = wait_stable(st)
        time.sleep(args.settle)
        acct_file = args.dir.parent / f"{args.dir.name}-pacct"
        figures = measure(st, master, args.window, acct_file, args.py_spy)
        standby = next(name for name in st.nodes if name != master)
        costs = cli_cost(st, standby, args.cli_cost) if args.cli_cost else {}
    finally:
        lab.down(args.dir, say=say)
    say(f"uptime after: {lab.sh('uptime').stdout.strip()}")
    interval = (
        "the settings default" if args.probe_interval is None else f"{args.probe_interval:g} s"
    )
    say(f"window {args.window:.0f} s, probe interval: {interval}, stack: {args.stack}, "
        "lease on")  # fmt: skip
    report(figures, args.window)
    if costs:
        say(f"Ceph CLI cost per call in the standby's netns ({args.cli_cost} calls each, "
            "CPU without nsenter's):")  # fmt: skip
        for what, (cpu_ms, wall_ms) in costs.items():
            say(f"    {what:<26} CPU {cpu_ms:6.1f} ms  wall {wall_ms:6.1f} ms")
    worst_cpu = max(f.cpu_total for f in figures.values())
    worst_own = max(f.cpu_self for f in figures.values())
    worst_rss = max(f.rss_mib for f in figures.values())
    say(
        f"footprint_cpu_max_pct={worst_cpu:.2f} (goal < {GOAL_CPU_PCT}) "
        f"footprint_cpu_self_max_pct={worst_own:.2f} "
        f"footprint_rss_max_mib={worst_rss:.1f} (goal < {GOAL_RSS_MIB:.0f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
