"""Failover benchmark: harbor-ha against one naive sequential shell script.

Run as root from the repository top::

    .venv/bin/python -m bench.failover [--runs N] [--kinds crash,switchover,health]
                                       [--dir /var/tmp/hhbench] [--prefix hhbench] [--keep]

It brings up its OWN two-node lab (lab/: real keepalived, Ceph, dockerd, Harbor-shaped
project; own directory and netns prefix, so other labs may run beside it) with
HARBOR_HA_LOG_LEVEL=debug, so every external command harbor-ha runs is logged as one
``command`` line (argv, rc, duration_ms, timestamp = its end).  Then N failovers of each kind:

- crash:      kill -9 of the master's keepalived + harbor-ha (Harbor, mapping and mount stay,
              like a hung host); afterwards both are started again and the old master must
              converge to a clean, ready BACKUP before the next run.
- switchover: ``harbor-ha switchover`` (the real CLI) on the master.
- health:     ``lab.set_unhealthy(master, "core", True)``; cleared once the peer serves.

Then N runs of the baseline (bench/baseline_failover.sh) for the crash kind, in the same lab.

Clock: the fault time ``t0`` is ``time.time()`` taken by the bench just before it injects the
fault; harbor-ha's log timestamps (ISO UTC), the baseline's ``date +%s.%N`` and the client's
answers all come from the same host clock.

Figures per failover (new master = the node that takes over):

- demote:   the old master's transition out of MASTER -> its fault track file set to 1
            (``fault_file``): 0 for crash and health; for a planned switchover the old master
            first demotes cleanly (compose down, umount, unmap), then hands the VIP over.
- vrrp:     keepalived's time: from the old master's fault file (t0 for crash) to the new
            master's ``MASTER`` FIFO line as harbor-ha logs it (``fifo_line``).
- trigger:  t0 -> that transition (switchover: the operator's CLI process + control socket;
            health: the probe debounce, probe_interval_s x probe_fall).  0 for crash.
- lease:    the new master's lease step (waits for a crashed holder's lock to lapse).
- fence, map, mount: the new master's step durations (``step_end``); fsck: the fsck command
            (``fsck_done``); mount is reported without the fsck.
- start:    the start step (compose up -> Harbor serves through the node's own proxy);
            compose_up: the `compose up -d` command alone.
- client:   start of the start step -> the client's first healthy answer through the VIP
            served by the new master (``Client.served_by``), polled every 50 ms.
- total:    t0 -> that answer.
- overhead: the daemon's own time on the client-visible path:
                overhead = total - |E|,  E = union of, clipped to [t0, client answer]:
                  [t0, trigger]                       (CLI / probe debounce, see trigger)
                  every external command of the old master in [trigger, fault file]
                  [fault file, MASTER line]           (keepalived)
                  the new master's lease step         (its wait on Ceph: figure ``lease``)
                  every external command of the new master's harbor-ha that overlaps
                  [MASTER line, end of `compose up`], as [end - duration_ms, end]
                  [end of `compose up`, client answer] (Harbor's containers starting)
            i.e. the time between keepalived's MASTER line and the end of `compose up` during
            which the new master ran no external command and was not in its lease step: event
            handling, Python, scheduling, polling sleeps (e.g. fence's wait for the fenced
            watcher to vanish).  The lease step is its own figure, not overhead.
- to_master_overhead: the same up to the daemon's own MASTER transition, with Harbor's part
            ending at the last container's first ``health_status: healthy`` Docker event instead
            of the client's answer: adds the start step's health-poll lag.
- to_master, to_primary: t0 -> the new master's MASTER transition, and -> its /primary's first
            200 (the baseline's to_master: its wait for every container healthy and :443).
- health_lag: the start step's end (harbor_serving) - the last container's first
            ``health_status: healthy`` Docker event.
- fence_poll_sleeps_n: FENCE_POLL_S sleeps in the fence step (its `rbd status` calls - 2:
            one before the blocklist add, one re-check).

Baseline (crash kind only): harbor-ha is killed (-9) on BOTH nodes; keepalived keeps running
with the track files as they are.  The serving node keeps Harbor; the standby runs
bench/baseline_failover.sh (polls `ip -j addr` every 50 ms, then the same commands one after
the other); the bench kills the serving node's keepalived (t0) and measures the same
client-visible total.  Between runs the old node is undone by hand (compose down, umount,
forced unmap: its mapping was fenced) and its keepalived restarted as BACKUP.

Then the crash failover's serial chain (FLOOR_LINKS): each link's median for harbor-ha and
the baseline, and the floor: the sum of harbor-ha's links with the fence at its monitor commit
(``fence_commit``: the fence step without its `rbd status` reads) and no time of its own
between them, over the baseline's total.

Last line: ``failover_total_median_s=X overhead_ms=Y ratio_vs_sequential=Z ratio_floor=F``
(crash kind: median total, median overhead, median total / baseline median total, the floor).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lab
from bench.watch_primary import PrimaryWatch
from lab import timeline
from lab.client import Client
from lab.mappings import KRBD_STANDIN, RBD_STATE_ENV, standin_env
from lab.traffic import Load, Traffic, pg_recovery
from lab.waiting import poll

ROOT = Path(__file__).resolve().parents[1]

BASELINE = ROOT / "bench" / "baseline_failover.sh"
STABLE_WITHIN_S = 150.0
FAILOVER_WITHIN_S = 90.0


def say(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------- logs
@dataclass(frozen=True)
class Rec:
    at: float
    msg: str
    f: dict[str, Any]


def read_log(path: Path, since: float) -> list[Rec]:
    return [Rec(at, str(rec.get("msg", "")), rec) for at, rec in timeline.records(path, since)]


def first(recs: list[Rec], msg: str, after: float = 0.0, **match: Any) -> Rec | None:
    for r in recs:
        if r.msg == msg and r.at >= after and all(r.f.get(k) == v for k, v in match.items()):
            return r
    return None


def cmd_name(argv: list[str]) -> str:
    """Short name of a command: the binary and its first non-option words."""
    base = os.path.basename(argv[0]) if argv else "?"
    words = []
    skip_next = False
    for a in argv[1:]:
        if skip_next:
            skip_next = False
            continue
        if a in ("--id", "-c", "--keyring", "-m", "-p", "-f", "-H", "-t", "-o", "--format"):
            skip_next = True
            continue
        if a.startswith("-") or "/" in a:
            continue
        words.append(a)
        if len(words) == 3:
            break
    return " ".join([base, *words])


def union_length(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in intervals if min(b, hi) > max(a, lo))
    total, cur_a, cur_b = 0.0, None, None
    for a, b in clipped:
        if cur_b is None or a > cur_b:
            if cur_b is not None and cur_a is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None and cur_a is not None:
        total += cur_b - cur_a
    return total


def docker_first_healthy(node: lab.NodeState, since: float, until: float) -> float | None:
    """The moment the LAST of the project's containers first reported healthy (Docker events)."""
    res = lab.sh(
        "docker", "-H", node.docker_host, "events",
        "--since", f"{since:.3f}", "--until", f"{until:.3f}",
        "--filter", "type=container", "--filter", "event=health_status",
        "--format", "{{json .}}",
        check=False, timeout=30,
    )  # fmt: skip
    firsts: dict[str, float] = {}
    for line in res.stdout.splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if str(ev.get("status", "")).split(":")[-1].strip() != "healthy":
            continue
        cid = ev.get("id", "")
        at = int(ev.get("timeNano", 0)) / 1e9
        if cid not in firsts:
            firsts[cid] = at
    return max(firsts.values()) if firsts else None


# ------------------------------------------------------------------------- lab
def stable(st: lab.LabState) -> str | None:
    """The serving master if the lab is steady (one healthy MASTER holding the VIP alone, the
    peer a clean, ready BACKUP without fault), else None."""
    s = {n: lab.status(st, n) for n in st.nodes}
    masters = [n for n, v in s.items() if v.get("state") == "MASTER"]
    if len(masters) != 1:
        return None
    m = masters[0]
    peer = next(n for n in st.nodes if n != m)
    p = s[peer]
    if not s[m].get("harbor_healthy") or lab.vip_holders(st) != [m]:
        return None
    if p.get("state") != "BACKUP" or p.get("fault") or not p.get("standby_ready"):
        return None
    pn = st.nodes[peer]
    if lab.mapped_here(pn) or lab.mounted_here(pn) or lab.running_containers(pn):
        return None
    if precreate_on(pn) and not created_containers(pn):
        return None  # the standby has not pre-created Harbor's containers yet
    if warm_on(pn) and set(lab.running_all(pn).values()) != lab.STATELESS:
        return None  # the warm standby has not started the stateless services yet
    return m


def warm_on(node: lab.NodeState) -> bool:
    try:
        return env_value(node, "HARBOR_HA_WARM_STANDBY").lower() not in ("false", "0")
    except KeyError:
        return True  # the product's default


def precreate_on(node: lab.NodeState) -> bool:
    try:
        return env_value(node, "HARBOR_HA_PRECREATE_CONTAINERS").lower() not in ("false", "0")
    except KeyError:
        return True  # the product's default


def created_containers(node: lab.NodeState) -> list[str]:
    res = lab.sh(
        "docker", "-H", node.docker_host, "ps", "-aq", "--filter", "status=created",
        "--filter", f"label=com.docker.compose.project={lab.PROJECT}", check=False,
    )  # fmt: skip
    return res.stdout.split()


def wait_stable(st: lab.LabState, within_s: float = STABLE_WITHIN_S) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        m = stable(st)
        if m is not None:
            return m
        time.sleep(0.5)
    raise lab.LabError(f"lab not steady within {within_s} s; see {st.labdir}/*/")


def wait_for(cond: Any, within_s: float, what: str, every_s: float = 0.1) -> Any:
    """lab.waiting.poll, every 0.1 s."""
    return poll(cond, within_s, what, every_s=every_s)


# ------------------------------------------------------------------------- ours
@dataclass
class Run:
    kind: str
    old: str
    new: str
    figures: dict[str, float] = field(default_factory=dict)
    gaps: dict[str, float] = field(default_factory=dict)


def inject(st: lab.LabState, kind: str, master: str) -> None:
    if kind == "crash":
        lab.kill_services(st, master)
    elif kind == "switchover":
        lab.harbor_ha(st.nodes[master], "switchover")
    elif kind == "health":
        lab.set_unhealthy(st, master, "core", True)
    else:
        raise ValueError(kind)


STEP_ENDED = ("done", "refused")
"""A step's normal end: done, or refused with an outcome event (a crash failover's lease step
ends LEASE_STALE and its fence step LEASE_TAKEN)."""


def run_ours(
    st: lab.LabState, client: Client, kind: str, *, drop_created: bool = False,
    traffic: Traffic | None = None,
) -> Run:  # fmt: skip
    old = wait_stable(st)
    new = next(n for n in st.nodes if n != old)
    run = Run(kind, old, new)
    if drop_created:  # A/B: this failover as if precreate_containers were off
        ids = created_containers(st.nodes[new])
        if ids:
            lab.sh("docker", "-H", st.nodes[new].docker_host, "rm", *ids, check=False)
    load = start_load(traffic)
    watch = PrimaryWatch(st.client_netns, f"http://{st.nodes[new].address}:9105/primary")
    t0 = time.time()
    watch.start(t0)
    inject(st, kind, old)
    answer = client.first_healthy_after(t0, FAILOVER_WITHIN_S, node=new)
    if not (answer.ok and answer.served_by == new):
        if load is not None:
            load.stop()
        raise lab.LabError(f"{kind}: no healthy answer from {new}: {answer.detail}")
    t_c = answer.at
    if kind == "health":
        lab.set_unhealthy(st, old, "core", False)
    newn, oldn = st.nodes[new], st.nodes[old]
    wait_for(
        lambda: first(read_log(newn.log, t0), "transition", to="MASTER"),
        FAILOVER_WITHIN_S,
        f"{new} MASTER",
    )
    t_end = time.time()
    to_primary = watch.result()
    if load is not None:
        run.figures.update(end_load(load, t0, st.nodes[new]))
    if kind == "crash":
        lab.start_services(st, old)
    nr, orr = read_log(newn.log, t0 - 1), read_log(oldn.log, t0 - 1)
    f = run.figures
    if kind == "crash":
        t_trig = t0
    else:
        tr = first(orr, "transition", after=t0, **{"from": "MASTER"})
        assert tr is not None, f"{old} never left MASTER"
        t_trig = tr.at
    # The old master's fault track file going to 1 hands the VIP over: at once for crash (t0)
    # and health; after the old master's clean demotion (unmapped) for a planned switchover.
    ff = first(orr, "fault_file", after=t_trig, value=1) if kind != "crash" else None
    t_fault = ff.at if ff is not None else t_trig
    old_cmds = [
        (r.at - float(r.f["duration_ms"]) / 1000, r.at)
        for r in orr
        if r.msg == "command" and t_trig <= r.at <= t_fault + 0.001
    ]
    ka = next(
        (r for r in nr if r.msg == "fifo_line" and r.at >= t0 and " MASTER " in r.f["line"]),
        None,
    )
    promo = first(nr, "transition", after=t0, **{"from": "BACKUP", "to": "LEASING"})
    master = first(nr, "transition", after=t0, to="MASTER")
    assert ka and promo and master, f"{new}: incomplete promotion log"
    t1 = ka.at
    steps = {
        r.f["step"]: r
        for r in nr
        if r.msg == "step_end" and r.at >= promo.at and r.f.get("outcome") in STEP_ENDED
    }
    fsck = first(nr, "fsck_done", after=promo.at)
    cmds = [
        (r.at - float(r.f["duration_ms"]) / 1000, r.at, cmd_name(list(r.f.get("argv", []))))
        for r in nr
        if r.msg == "command" and r.at >= t0
    ]
    up = next((c for c in cmds if c[0] >= promo.at and " up" in f" {c[2]}"), None)
    assert up is not None, f"{new}: no compose up command logged (log level debug?)"
    t_up_end = up[1]
    start_begin = steps["start"].at - float(steps["start"].f["duration_s"])
    f["trigger"] = t_trig - t0
    f["demote"] = t_fault - t_trig
    f["vrrp"] = t1 - t_fault
    f["lease"] = float(steps["lease"].f["duration_s"])  # the lease's cost
    f["fence"] = float(steps["fence"].f["duration_s"])
    f["map"] = float(steps["map"].f["duration_s"])
    f["fsck"] = float(fsck.f["duration_s"]) if fsck else 0.0
    f["mount"] = float(steps["mount"].f["duration_s"]) - f["fsck"]
    f["start"] = float(steps["start"].f["duration_s"])
    f["compose_up"] = up[1] - up[0]
    f["client"] = t_c - start_begin
    f["total"] = t_c - t0
    f["to_master"] = master.at - t0
    f["to_primary"] = to_primary if to_primary is not None else float("nan")
    critical = [(a, b) for a, b, _ in cmds if b > t1 and a < t_up_end]
    critical.append((steps["lease"].at - f["lease"], steps["lease"].at))  # not overhead
    ext = [(t0, t_trig), *old_cmds, (t_fault, t1), *critical, (t_up_end, t_c)]
    f["external"] = union_length(ext, t0, t_c)
    fence_end = steps["fence"].at
    fence_begin = fence_end - f["fence"]
    # rbd status calls (the real rbd, or the stand-in passing it on): 1 before the blocklist
    # add, then one per re-check; each re-check after the first followed a FENCE_POLL_S sleep.
    reads = [
        (a, b) for a, b, n in cmds if n.endswith(" status") and fence_begin <= a and b <= fence_end
    ]
    f["fence_poll_sleeps_n"] = max(len(reads) - 2, 0)
    # The fence without its watcher reads: the blocklist commit (and the VIP check).
    f["fence_commit"] = max(f["fence"] - union_length(reads, fence_begin, fence_end), 0.0)
    f["overhead_ms"] = (f["total"] - f["external"]) * 1000
    healthy_at = docker_first_healthy(newn, t_up_end - 5, t_end)
    if healthy_at is not None:
        ext_m = [
            (t0, t_trig), *old_cmds, (t_fault, t1), *critical,
            (t_up_end, max(healthy_at, t_up_end)),
        ]  # fmt: skip
        f["to_master_overhead_ms"] = ((master.at - t0) - union_length(ext_m, t0, master.at)) * 1000
        hh = first(nr, "harbor_serving", after=promo.at)
        if hh is not None:
            f["health_lag_ms"] = (hh.at - healthy_at) * 1000
    # Gaps on the critical path: time with no external command running.
    prev_end, prev_name = t1, "MASTER line"
    for a, b, name in sorted(c for c in cmds if c[1] > t1 and c[0] < t_up_end):
        if a > prev_end:
            key = f"{prev_name} -> {name}"
            run.gaps[key] = run.gaps.get(key, 0.0) + (a - prev_end) * 1000
        if b > prev_end:
            prev_end, prev_name = b, name
    return run


# ---------------------------------------------------------------------- traffic
TRAFFIC_WARMUP_S = 2.0
TRAFFIC_AFTER_S = 3.0
NEXT_NUMBER = [1]


def start_load(traffic: Traffic | None) -> Load | None:
    """With the registry stack: pushes, pulls and row commits through the VIP, started
    TRAFFIC_WARMUP_S before the fault."""
    if traffic is None:
        return None
    load = Load(traffic, first=NEXT_NUMBER[0])
    load.start()
    time.sleep(TRAFFIC_WARMUP_S)
    return load


def end_load(load: Load, t0: float, taker: lab.NodeState) -> dict[str, float]:
    """Keep the load on the taker for TRAFFIC_AFTER_S, stop it, verify every acknowledged push
    and row; the client's figures and PostgreSQL's start on the taker."""
    time.sleep(TRAFFIC_AFTER_S)
    load.stop()
    NEXT_NUMBER[0] = load.next_number
    missing_pushes = load.missing_pushes(window=(t0 - 10, time.time()))
    missing_rows = load.missing_rows()
    rep = load.report(t0, missing_pushes, missing_rows)
    pg = pg_recovery(taker.docker_host)
    if missing_pushes or missing_rows:
        say(f"  LOST: pushes {missing_pushes} rows {missing_rows}")
    out = {
        "first_pull": rep["first_pull_s"] if rep["first_pull_s"] is not None else float("nan"),
        "pulls_failed_n": float(rep["pulls_failed"]),
        "pushes_acked_n": float(rep["pushes_acked"]),
        "pushes_missing_n": float(rep["pushes_missing"]),
        "rows_committed_n": float(rep["rows_committed"]),
        "rows_missing_n": float(rep["rows_missing"]),
    }
    if pg.get("start_to_ready_s") is not None:
        out["pg_ready"] = float(pg["start_to_ready_s"])
        out["pg_recovery_n"] = 1.0 if pg.get("recovery") else 0.0
    return out


# --------------------------------------------------------------------- baseline
def ceph_args(st: lab.LabState) -> str:
    return f"--id harbor -c {st.ceph_conf} --keyring {st.ceph_keyring}"


def env_value(node: lab.NodeState, key: str) -> str:
    for line in node.env_file.read_text().splitlines():
        if line.startswith(key + "="):
            return line.split("=", 1)[1]
    raise KeyError(key)


def compose_argv(node: lab.NodeState, *args: str) -> list[str]:
    return [
        *env_value(node, "HARBOR_HA_COMPOSE_COMMAND").split(),
        "-p",
        lab.PROJECT,
        "-f",
        str(node.path / "harbor" / "docker-compose.yml"),
        *args,
    ]


def start_baseline(st: lab.LabState, node: lab.NodeState, log: Path) -> subprocess.Popen[bytes]:
    log.unlink(missing_ok=True)
    env = {
        **os.environ,
        RBD_STATE_ENV: str(node.rbd_state),
        "DOCKER_HOST": node.docker_host,
        "BASE_VIP": st.vip_address,
        "BASE_IFACE": "eth0",
        "BASE_RBD": str(KRBD_STANDIN),
        "BASE_CEPH_ARGS": ceph_args(st),
        "BASE_IMAGE": "rbd/harbor",
        "BASE_FS_TYPE": "ext4",
        "BASE_MOUNT_OPTIONS": "noatime",
        "BASE_MOUNTPOINT": str(node.mountpoint),
        "BASE_COMPOSE": env_value(node, "HARBOR_HA_COMPOSE_COMMAND"),
        "BASE_COMPOSE_FILE": str(node.path / "harbor" / "docker-compose.yml"),
        "BASE_PROJECT": lab.PROJECT,
        "BASE_HTTPS_PORT": str(lab.HTTPS_PORT),
        "BASE_LOG": str(log),
        "BASE_EXPIRE_S": "86400",
    }
    with (log.parent / "baseline.out").open("ab") as out:
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{node.netns}", "bash", str(BASELINE)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    wait_for(lambda: log.exists() and "armed" in log.read_text(), 30, "baseline armed")
    return proc


def stamps(log: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in log.read_text().splitlines():
        k, _, v = line.partition(" ")
        out.setdefault(k, float(v))
    return out


def undo_node(st: lab.LabState, node: lab.NodeState) -> None:
    """Cleanly undo a baseline node's Harbor, mount and (fenced) mapping."""
    env = {**os.environ, "DOCKER_HOST": node.docker_host}
    subprocess.run(
        compose_argv(node, "down", "-t", "1", "--remove-orphans"),
        env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    if lab.running_containers(node):
        ids = lab.sh("docker", "-H", node.docker_host, "ps", "-aq", check=False).stdout.split()
        lab.sh("docker", "-H", node.docker_host, "rm", "-f", *ids, check=False)
    umount = lab.mounted_here(node) and lab.sh("umount", str(node.mountpoint), check=False)
    if umount and umount.returncode != 0:
        lab.sh("umount", "-l", str(node.mountpoint), check=False)
    renv = standin_env(node.rbd_state)
    for dev in lab.mapped_here(node):
        lab.sh(
            str(KRBD_STANDIN), "device", "unmap", "-o", "force", dev,
            check=False, env=renv, timeout=90,
        )  # fmt: skip
    if lab.mapped_here(node) or lab.mounted_here(node):
        raise lab.LabError(f"could not undo node {node.name}")


def serving(st: lab.LabState, client: Client) -> str | None:
    holders = lab.vip_holders(st)
    if len(holders) != 1:
        return None
    a = client.check()
    return holders[0] if a.ok and a.served_by == holders[0] else None


def run_baseline(
    st: lab.LabState, client: Client, runs: int, traffic: Traffic | None = None
) -> list[dict[str, float]]:
    for name in st.nodes:  # harbor-ha off on both; keepalived stays with its track files
        pid = st.nodes[name].pids.get("harbor-ha")
        if pid:
            lab.kill_pid(pid, signal.SIGKILL)
    lab.reap()
    logdir = Path(st.labdir) / "baseline"
    logdir.mkdir(exist_ok=True)
    src = wait_for(lambda: lab.vip_holders(st), 30, "a VIP holder")[0]
    # The script's standby runs nothing (no warm or pre-created containers of harbor-ha's).
    undo_node(st, st.nodes[next(n for n in st.nodes if n != src)])
    if serving(st, client) is None:  # cold start with the script itself on the VIP holder
        say(f"baseline: cold start on {src}")
        proc = start_baseline(st, st.nodes[src], logdir / "cold.log")
        proc.wait(timeout=120)
    results = []
    for i in range(runs):
        src = wait_for(lambda: serving(st, client), 60, "one node serving through the VIP")
        dst = next(n for n in st.nodes if n != src)
        log = logdir / f"run{i}.log"
        proc = start_baseline(st, st.nodes[dst], log)
        load = start_load(traffic)
        t0 = time.time()
        lab.kill_pid(st.nodes[src].pids["keepalived"], signal.SIGKILL)
        lab.reap()
        answer = client.first_healthy_after(t0, FAILOVER_WITHIN_S, node=dst)
        proc.wait(timeout=120)
        load_figures = end_load(load, t0, st.nodes[dst]) if load is not None else {}
        if not (answer.ok and answer.served_by == dst) or proc.returncode != 0:
            raise lab.LabError(f"baseline run {i}: {answer.detail}; see {log}")
        s = stamps(log)
        r = {
            "vip": s["vip"] - t0,
            "fence": s["fenced"] - s["vip"],
            "map": s["mapped"] - s["fenced"],
            "fsck": s["fsck"] - s["mapped"],
            "mount": s["mounted"] - s["fsck"],
            "compose_up": s["compose_up"] - s["mounted"],
            "healthy": s["healthy"] - s["compose_up"],
            "client": answer.at - s["mounted"],
            "total": answer.at - t0,
            # the script's node counts itself healthy as the usual keepalived check script
            # does (every container healthy in `docker ps`, :443 open): its "MASTER"
            "to_master": s["healthy"] - t0,
            **load_figures,
        }
        results.append(r)
        say(f"  baseline {i + 1}/{runs} {src}->{dst}: total {r['total']:.3f} s ({fmt(r)})")
        undo_node(st, st.nodes[src])
        lab.start_keepalived(st.nodes[src])
        st.save()
        wait_for(lambda d=dst: lab.vip_holders(st) == [d], 60, "stale VIP gone")
    return results


# ------------------------------------------------------------------------- report
def fmt(d: dict[str, float]) -> str:
    def one(k: str, v: float) -> str:
        if k.endswith("_ms"):
            return f"{k}={v:.0f}ms"
        return f"{k}={v:.0f}" if k.endswith("_n") else f"{k}={v:.3f}"

    return " ".join(one(k, v) for k, v in d.items())


def table(title: str, rows: list[dict[str, float]]) -> dict[str, float]:
    say(f"\n{title} (n={len(rows)})")
    say(f"  {'figure':<22}{'median':>10}{'max':>10}")
    med: dict[str, float] = {}
    for key in rows[0]:
        vals = [r[key] for r in rows if key in r]
        unit = "ms" if key.endswith("_ms") else "s"
        med[key] = statistics.median(vals)
        if unit == "ms":
            say(f"  {key:<22}{med[key]:>8.0f}ms{max(vals):>8.0f}ms")
        elif key.endswith("_n"):
            say(f"  {key:<22}{med[key]:>10.1f}{max(vals):>10.0f}")
        else:
            say(f"  {key + ' (s)':<22}{med[key]:>10.3f}{max(vals):>10.3f}")
    return med


FLOOR_LINKS = (
    ("vrrp", "vip", "detection: keepalived hands the VIP over after 3 missed adverts"),
    ("lease", None, "the stale judgment: no fence before the holder stopped renewing"),
    ("fence_commit", "fence", "one monitor commit: an exclusive map fails before it"),
    ("map", "map", "the device: fsck and mount need it"),
    ("fsck", "fsck", "the journal replayed before the mount"),
    ("mount", "mount", "safety rule 5: the data services start only on the verified mount"),
    ("client", "client", "the data services start, Harbor answers through the VIP"),
)
"""The serial chain of a crash failover: (our figure, the baseline's, why the next link
cannot start before this one ends).  Each link needs the one before it."""


def floor_table(ours: dict[str, float], base: dict[str, float]) -> float:
    """Print the crash failover's serial chain with both sides' medians and the best ratio
    harbor-ha could reach with these components: its own links as measured, the fence at its
    monitor commit (no watcher reads) and no time of its own between the links.  Returns that
    ratio (the floor)."""
    say("\nthe serial chain of a crash failover (medians, s): each link needs the one before")
    say(f"  {'link':<14}{'harbor-ha':>10}{'baseline':>10}  why the next cannot start sooner")
    floor = 0.0
    for key, bkey, why in FLOOR_LINKS:
        mine = ours.get(key, 0.0)
        floor += mine
        theirs = f"{base[bkey]:>10.3f}" if bkey and bkey in base else f"{'-':>10}"
        say(f"  {key:<14}{mine:>10.3f}{theirs}  {why}")
    total = base.get("total", float("nan"))
    say(f"  {'sum':<14}{floor:>10.3f}{total:>10.3f}  (baseline: its measured total)")
    ratio = floor / total
    lease = ours.get("lease", 0.0)
    say(
        f"  floor: ratio {ratio:.3f} with these links; {(floor - lease) / total:.3f} even "
        f"without the lease; harbor-ha's total {ours.get('total', float('nan')):.3f} s"
    )
    return ratio


def client_summary(label: str, rows: list[dict[str, float]]) -> float | None:
    """The registry client's cost of ``label``'s failovers in one line (the registry stack
    only): the first good pull after the outage (median, max), the sums of failed pulls, of
    pushes acknowledged then missing and of committed rows missing, and PostgreSQL's start to
    ready on the taker (median over the runs that ran crash recovery, and over the others).
    Returns the median first good pull (None: not the registry stack)."""
    if not any("first_pull" in r for r in rows):
        return None
    # nan: no good pull after the outage before the load stopped (a pull hung past it)
    pulls = [
        r["first_pull"] for r in rows if "first_pull" in r and r["first_pull"] == r["first_pull"]
    ]
    if not pulls:
        say(f"  registry client, {label} (n={len(rows)}): no good pull after any outage")
        return None

    def total(key: str) -> int:
        return int(sum(r.get(key, 0.0) for r in rows))

    def median(vals: list[float]) -> str:
        return f"{statistics.median(vals):.3f} s" if vals else "-"

    recov = [r["pg_ready"] for r in rows if "pg_ready" in r and r.get("pg_recovery_n")]
    clean = [r["pg_ready"] for r in rows if "pg_ready" in r and not r.get("pg_recovery_n")]
    say(
        f"  registry client, {label} (n={len(rows)}): first good pull median "
        f"{statistics.median(pulls):.3f} s, max {max(pulls):.3f} s (none within the load's "
        f"window: {len(rows) - len(pulls)}); pulls failed "
        f"{total('pulls_failed_n')}; pushes acked then missing {total('pushes_missing_n')} of "
        f"{total('pushes_acked_n')}; rows missing {total('rows_missing_n')} of "
        f"{total('rows_committed_n')}; PostgreSQL start -> ready on the taker: crash recovery "
        f"{median(recov)} (n={len(recov)}), clean start {median(clean)} (n={len(clean)})"
    )
    return statistics.median(pulls)


def headline(m: dict[str, float]) -> str:
    """The user-facing figures of one kind's medians: fault -> MASTER, fault -> the taker's
    /primary 200 (harbor-ha only), fault -> first good pull through the VIP (registry stack)."""
    keys = (("to_master", "fault_to_master_s"), ("to_primary", "fault_to_primary_s"),
            ("first_pull", "fault_to_first_pull_s"))  # fmt: skip
    return " ".join(f"{name}={m[key]:.3f}" for key, name in keys if key in m)


def gap_table(runs: list[Run]) -> None:
    keys: dict[str, list[float]] = {}
    for r in runs:
        for k, v in r.gaps.items():
            keys.setdefault(k, []).append(v)
    ranked = sorted(keys.items(), key=lambda kv: -sum(kv[1]) / len(runs))[:6]
    say("  largest gaps between external commands (mean ms per failover):")
    for k, vals in ranked:
        say(f"    {sum(vals) / len(runs):7.1f}  {k}")


def keep_logs(st: lab.LabState, labdir: Path) -> None:
    """Copy the nodes' logs (and the baseline's stamps) next to the lab dir (down removes it)."""
    dest = labdir.parent / f"{labdir.name}-logs" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest.mkdir(parents=True, exist_ok=True)
    for node in st.nodes.values():
        for f in (node.log, node.ka_log):
            if f.exists():
                shutil.copy(f, dest / f"{node.name}-{f.name}")
    base = labdir / "baseline"
    if base.is_dir():
        shutil.copytree(base, dest / "baseline", dirs_exist_ok=True)
    say(f"bench: logs kept in {dest}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kinds", default="crash,switchover,health")
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp/hhbench"))
    ap.add_argument("--prefix", default="hhbench")
    ap.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument(
        "--stack",
        choices=lab.STACKS,
        default="shape",
        help="Harbor project: shape (busybox) or registry (real programs, with pushes, pulls "
        "and row commits through the VIP during every failover)",
    )
    ap.add_argument(
        "--ab-precreate",
        action="store_true",
        help="after each crash run, one more with the standby's pre-created containers removed "
        "just before the fault (interleaved A/B of precreate_containers in the same lab)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra harbor-ha setting for both nodes' env files (A/B runs), e.g. "
        "HARBOR_HA_PRECREATE_CONTAINERS=false",
    )
    args = ap.parse_args()
    extra = "".join(f"{kv}\n" for kv in args.set)
    if extra:
        plain_env = lab.node_env

        def node_env(st: lab.LabState, node: lab.NodeState, compose: str) -> str:
            return plain_env(st, node, compose) + extra

        lab.node_env = node_env
        say(f"bench: extra settings: {' '.join(args.set)}")
    kinds = [k for k in args.kinds.split(",") if k]
    started = time.monotonic()
    say(f"bench: stack {args.stack}; {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
        f"uptime: {lab.sh('uptime').stdout.strip()}")  # fmt: skip
    st = lab.up(args.dir, prefix=args.prefix, log_level="debug", say=say, stack=args.stack)
    client = Client(st.client_netns, st.vip_address)
    traffic = None
    if args.stack == "registry":
        first_node = next(iter(st.nodes.values()))
        traffic = Traffic(st.client_netns, st.vip_address, first_node.ca_dir,
                          args.dir / "traffic")  # fmt: skip
    ours: dict[str, list[Run]] = {}
    base: list[dict[str, float]] = []
    try:
        wait_stable(st)
        for kind in kinds:
            ours[kind] = []
            for i in range(args.runs):
                r = run_ours(st, client, kind, traffic=traffic)
                ours[kind].append(r)
                say(f"  {kind} {i + 1}/{args.runs} {r.old}->{r.new}: {fmt(r.figures)}")
                if args.ab_precreate and kind == "crash":
                    label = "crash, standby without pre-created containers"
                    r = run_ours(st, client, kind, drop_created=True)
                    ours.setdefault(label, []).append(r)
                    say(f"  {label} {i + 1}/{args.runs} {r.old}->{r.new}: {fmt(r.figures)}")
        if not args.no_baseline:
            wait_stable(st)
            base = run_baseline(st, client, args.runs, traffic)
    finally:
        client.close()
        keep_logs(st, args.dir)
        if not args.keep:
            lab.down(args.dir, say=say)
    medians = {k: table(f"harbor-ha, {k}", [r.figures for r in v]) for k, v in ours.items()}
    for k, v in ours.items():
        say(f"\n{k}:")
        gap_table(v)
    bmed = table("baseline (sequential shell script), crash", base) if base else {}
    ratio = floor = float("nan")
    if bmed and "crash" in medians:
        ratio = medians["crash"]["total"] / bmed["total"]
        say(f"\nratio ours/baseline (crash, median total): {ratio:.3f}")
        floor = floor_table(medians["crash"], bmed)
    if args.stack == "registry":
        say("")
        pulls = {k: client_summary(k, [r.figures for r in v]) for k, v in ours.items()}
        base_pull = client_summary("baseline, crash", base) if base else None
        ours_pull = pulls.get("crash")
        if base_pull and ours_pull:
            say(f"first_pull_median_s={ours_pull:.3f} baseline_first_pull_median_s="
                f"{base_pull:.3f} first_pull_ratio_vs_sequential="
                f"{ours_pull / base_pull:.3f}")  # fmt: skip
    say("")
    for k, m in medians.items():
        say(f"{k}: " + headline(m))
    if bmed:
        say("baseline, crash: " + headline(bmed))
        if "crash" in medians:
            master_ratio = medians["crash"]["to_master"] / bmed["to_master"]
            say(f"master_ratio_vs_sequential={master_ratio:.3f}")
    say(f"\nuptime: {lab.sh('uptime').stdout.strip()}; wall {time.monotonic() - started:.0f} s")
    c = medians.get("crash", {})
    say(
        f"failover_total_median_s={c.get('total', float('nan')):.3f} "
        f"overhead_ms={c.get('overhead_ms', float('nan')):.0f} "
        f"ratio_vs_sequential={ratio:.3f} ratio_floor={floor:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
