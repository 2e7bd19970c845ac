"""Faults of one node of the shared lab (lab/shared.py) under continuous skopeo pushes and
pulls through the VIP, and what each cost the client: failed requests while it lasted, the
time until the balancer sent the client elsewhere, acknowledged pushes missing afterwards
(through the VIP and from each serving node directly).  Used by tests/e2e/test_shared.py and
bench/shared.py.

The balancer keeps a client on one node (``stick on src``): the lab's client is one address,
so every fault is made on the node the client is on at that moment (Harbor's health through
the VIP names it: ``served_by``).

    drain      ``harbor-ha drain`` on the node; rejoined by ``harbor-ha maintenance off``
    kill       kill -9 of harbor-ha and of the node's Harbor containers (a crash of the
               daemon and of Harbor; its ceph-fuse stays: a dead client's CephFS session
               would hold its capabilities until the MDS evicts it); restarted as systemd
               would, harbor-ha starts Harbor again
    unhealthy  the registry stack's unhealthy switch for core (a critical component);
               switched off, the node rejoins by itself
    cephfs     kill -9 of the node's ceph-fuse (its shared mount is lost); it rejoins by
               itself (unmount, backoff, mount again)
    crash      the node as a whole: kill -9 of harbor-ha, the Harbor containers and
               ceph-fuse together (what is left of a node that died); restarted
               NODE_DOWN_S later, as after a reboot: harbor-ha mounts again and starts
               Harbor.  Meanwhile the other nodes evict its CephFS session once its
               harbor-ha is unanswered for HARBOR_HA_SHARED_EVICT_AFTER_S (the lab's
               EVICT_AFTER_S); without that (0) their registries wait for the dead
               client's capabilities until the MDS times its session out
    crash-evict  the crash, then what the runbook tells an operator to do by hand (with the
               nodes' eviction off): evict the dead node's CephFS sessions at the MDS
               (``session ls``, the sessions from the node's address, ``client evict
               id=...``, as client.admin)
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harbor_ha.ceph.mds import sessions_from
from lab.cephfs import FS_NAME, kill_fuse
from lab.client import Client, http_get
from lab.node import HTTP_PORT, harbor_ha, running_all, set_unhealthy, start_harbor_ha
from lab.procs import kill_pid, sh
from lab.state import LabState
from lab.traffic import Load, Traffic

NODE_DOWN_S = 20.0
"""How long a crashed node stays down before its harbor-ha starts again (a reboot)."""
FAULTS = ("drain", "kill", "unhealthy", "cephfs", "crash", "crash-evict")


def serving(st: LabState, name: str) -> bool:
    """The node's ``GET /serving`` (what the balancer checks) answers 200."""
    node = st.nodes[name]
    code, _ = http_get(st.client_netns, f"http://{node.address}:{HTTP_PORT}/serving", 2.0)
    return code == 200


def evictions_of(st: LabState, name: str) -> int:
    """How often the other nodes evicted ``name``'s CephFS sessions (the sum of their
    harbor_ha_cephfs_evictions_total{node=name,outcome="done"})."""
    total = 0
    for other, node in st.nodes.items():
        if other == name:
            continue
        _, body = http_get(st.client_netns, f"http://{node.address}:{HTTP_PORT}/metrics", 3.0)
        for line in body.splitlines():
            if line.startswith("harbor_ha_cephfs_evictions_total{") and (
                f'node="{name}"' in line and 'outcome="done"' in line
            ):
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


def serving_nodes(st: LabState) -> list[str]:
    return [n for n in st.nodes if serving(st, n)]


def wait_all_serving(st: LabState, within_s: float) -> float:
    """Seconds until every node's /serving answers 200 (RuntimeError after ``within_s``)."""
    t0 = time.monotonic()
    while True:
        up = serving_nodes(st)
        if len(up) == len(st.nodes):
            return time.monotonic() - t0
        if time.monotonic() - t0 > within_s:
            raise RuntimeError(f"only {up} serving after {within_s:g} s")
        time.sleep(1.0)


def wait_all_in_rotation(st: LabState, within_s: float) -> float:
    """Seconds until every node's /serving answers 200 and HAProxy has every node UP (its
    ``rise`` checks passed): the point from which a request through the VIP can work."""
    from lab.balancer import wait_in_rotation

    t0 = time.monotonic()
    wait_all_serving(st, within_s)
    wait_in_rotation(st, max(within_s - (time.monotonic() - t0), 10.0))
    return time.monotonic() - t0


def client_node(st: LabState, client: Client, within_s: float = 30.0) -> str:
    """The node a healthy answer through the VIP came from (the client's node)."""
    deadline = time.monotonic() + within_s
    while True:
        a = client.check()
        if a.ok and a.served_by:
            return a.served_by
        if time.monotonic() > deadline:
            raise RuntimeError(f"no healthy answer through the VIP: {a.detail}")
        time.sleep(0.2)


class PushPullLoad(Load):
    """lab/traffic.Load without its row writer (the shared lab's PostgreSQL is not behind the
    VIP): a pusher and a puller."""

    def start(self) -> None:
        self.base = self._take()
        digest = self.t.push(self.base)
        if digest is None:
            raise RuntimeError(
                f"push of {self.t.ref(self.base)} failed on a healthy lab: {self.t.last_error}"
            )
        self.base_digest = digest
        for fn in (self._push_loop, self._pull_loop):
            th = threading.Thread(target=fn, daemon=True)
            th.start()
            self._threads.append(th)


@dataclass
class FaultFigures:
    fault: str
    node: str
    pushes: int = 0
    pushes_failed: int = 0
    pulls: int = 0
    pulls_failed: int = 0
    out_of_rotation_s: float | None = None  # fault -> first healthy answer from another node
    back_s: float = 0.0  # fault -> every node serving again
    client_back_s: float | None = None  # fault -> a push and a pull begun after it succeeded
    acked_in_window: int = 0
    evicted: int = 0  # evictions of the node's CephFS sessions by the others (their metric)
    missing_via_vip: list[int] = field(default_factory=list)
    missing_on: dict[str, list[int]] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.pushes_failed + self.pulls_failed

    @property
    def missing(self) -> int:
        return len(self.missing_via_vip) + sum(len(v) for v in self.missing_on.values())

    def line(self) -> str:
        out = "n/a" if self.out_of_rotation_s is None else f"{self.out_of_rotation_s:.1f} s"
        per_node = ", ".join(f"{k} {len(v)}" for k, v in self.missing_on.items())
        return (
            f"shared {self.fault} of {self.node}: failed requests {self.failed} "
            f"(pushes {self.pushes_failed}/{self.pushes}, pulls {self.pulls_failed}/{self.pulls}); "
            f"out of rotation after {out}; all serving again after {self.back_s:.1f} s; "
            f"pushes and pulls through the VIP succeed again after {self.client_back_s} s; "
            f"acknowledged pushes missing {self.missing} of {self.acked_in_window} "
            f"(via VIP {len(self.missing_via_vip)}; {per_node}); its CephFS sessions evicted "
            f"by the others {self.evicted}x"
        )


def inject(st: LabState, fault: str, name: str) -> None:
    node = st.nodes[name]
    if fault == "drain":
        harbor_ha(node, "drain")
    elif fault in ("kill", "crash", "crash-evict"):
        kill_pid(node.pids["harbor-ha"], signal.SIGKILL, wait_s=15)
        ids = list(running_all(node))
        if ids:
            sh("docker", "-H", node.docker_host, "kill", *ids, check=False, timeout=60)
        if fault != "kill" and not kill_fuse(node.mountpoint):
            raise RuntimeError(f"no ceph-fuse serving {node.mountpoint}")
        if fault == "crash-evict" and not evict_sessions(st, node.address):
            raise RuntimeError(f"no CephFS session from {node.address} at the MDS")
    elif fault == "unhealthy":
        set_unhealthy(st, name, "core", True)
    elif fault == "cephfs":
        if not kill_fuse(node.mountpoint):
            raise RuntimeError(f"no ceph-fuse serving {node.mountpoint}")
    else:
        raise ValueError(f"fault {fault!r}: one of {', '.join(FAULTS)}")


def _admin(st: LabState, *args: str) -> str:
    """``ceph ARGS`` as client.admin in the lab's Ceph netns; its stdout."""
    return sh(
        "nsenter", f"--net=/run/netns/{st.prefix}-ceph", "ceph", "-c", st.ceph_conf,
        "--id", "admin", "--keyring", str(Path(st.ceph_dir) / "keyring.admin"), *args,
        timeout=30,
    ).stdout  # fmt: skip


def evict_sessions(st: LabState, address: str) -> list[int]:
    """Evict every CephFS session from ``address`` at the MDS (the runbook's procedure);
    the evicted session ids."""
    rank = f"mds.{FS_NAME}:0"
    ids = sessions_from(_admin(st, "tell", rank, "session", "ls", "--format", "json"), address)
    for sid in ids:
        _admin(st, "tell", rank, "client", "evict", f"id={sid}")
    return ids


def recover(st: LabState, fault: str, name: str, within_s: float) -> None:
    """Undo ``fault`` as an operator (or systemd) would; the node then rejoins by itself."""
    node = st.nodes[name]
    if fault == "drain":
        deadline = time.monotonic() + within_s
        while _state(st, name) != "DOWN":  # the drain ends with Harbor stopped, unmounted
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not DOWN {within_s:g} s after its drain")
            time.sleep(0.5)
        harbor_ha(node, "maintenance", "off")
    elif fault in ("kill", "crash", "crash-evict"):
        # down a little while, as a crashed daemon before systemd restarts it; a node that
        # died comes back after a reboot at the earliest
        time.sleep(2.0 if fault == "kill" else NODE_DOWN_S)
        start_harbor_ha(node)
        st.save()
    elif fault == "unhealthy":
        deadline = time.monotonic() + within_s
        while serving(st, name):  # left rotation before the switch goes off
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} still serving {within_s:g} s after its fault")
            time.sleep(0.5)
        set_unhealthy(st, name, "core", False)


def wait_client_served(load: Load, t0: float, within_s: float) -> float:
    """Seconds from ``t0`` until a push and a pull both begun after the last failure since
    ``t0`` have succeeded (the client is served again: a CephFS client that vanished holds
    its capabilities until the MDS times its session out, and the other nodes' registries
    wait for them); RuntimeError after ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        attempts = [(at, ok) for at, ok in list(load.pushes.attempts) if at >= t0]
        failed = [at for at, ok in attempts if not ok]
        since = max(failed, default=t0)
        pushed = [at for at, ok in attempts if ok and at > since]
        if pushed and load.pulled_since(since):
            pulls = [at for at, ok in list(load.pulls.attempts) if ok and at > since]
            return round(max(pushed[0], pulls[0] if pulls else pushed[0]) - t0, 1)
        time.sleep(0.5)
    raise RuntimeError(f"pushes or pulls through the VIP still failing after {within_s:g} s")


def _state(st: LabState, name: str) -> str:
    res = harbor_ha(st.nodes[name], "status", "--json", check=False, timeout=15)
    try:
        return str(json.loads(res.stdout).get("state", ""))
    except json.JSONDecodeError:
        return ""


def run_fault(
    st: LabState, load: Load, client: Client, fault: str, ca_dir: Path, workdir: Path,
    *, settle_s: float = 5.0, within_s: float = 240.0,
) -> FaultFigures:  # fmt: skip
    """Make ``fault`` on the client's node while ``load`` runs; wait until it left rotation
    and every node serves again; count what the client saw in that window and check every
    push acknowledged in it through the VIP and on each serving node."""
    name = client_node(st, client)
    time.sleep(settle_s)
    evicted_before = evictions_of(st, name)
    t0 = time.time()
    inject(st, fault, name)
    fig = FaultFigures(fault, name)
    deadline = time.monotonic() + within_s
    while fig.out_of_rotation_s is None and time.monotonic() < deadline:
        a = client.check()
        if a.ok and a.served_by and a.served_by != name:
            fig.out_of_rotation_s = round(a.at - t0, 2)
        else:
            time.sleep(0.1)
    recover(st, fault, name, within_s)
    wait_all_serving(st, within_s)
    fig.back_s = round(time.time() - t0, 1)
    fig.client_back_s = wait_client_served(load, t0, within_s)
    time.sleep(settle_s)
    t1 = time.time()
    in_window = [(at, ok) for at, ok in load.pushes.attempts if t0 <= at <= t1]
    pulls = [(at, ok) for at, ok in load.pulls.attempts if t0 <= at <= t1]
    fig.pushes, fig.pushes_failed = len(in_window), sum(1 for _, ok in in_window if not ok)
    fig.pulls, fig.pulls_failed = len(pulls), sum(1 for _, ok in pulls if not ok)
    acked = {n: d for n, (at, d) in list(load.pushes.acked.items()) if t0 <= at <= t1}
    fig.acked_in_window = len(acked)
    fig.evicted = evictions_of(st, name) - evicted_before
    vip = load.t
    fig.missing_via_vip = [n for n, d in sorted(acked.items()) if vip.pull(n) != d]
    for other in serving_nodes(st):
        direct = Traffic(st.client_netns, st.nodes[other].address, ca_dir, workdir / other)
        fig.missing_on[other] = [
            n for n, d in sorted(acked.items()) if direct.manifest_digest(n) != d
        ]
    return fig
