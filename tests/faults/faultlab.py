"""Helpers of the fault suite: watch a node's log, crash and restart its daemon, check the
invariants of the two-node lab (one node serving, nothing leaked, never Harbor on a bare
mountpoint, at most one writer).  Every check reads the real system (mountinfo, ``ip addr``,
``docker ps``, the real CLI's ``status --json``), never the daemon's own opinion alone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lab
from lab import LabState, NodeState
from lab.client import Client
from lab.mappings import teardown_mappings
from lab.waiting import Timeout as Timeout
from lab.waiting import poll as poll

SERVING_STATES = ("MASTER",)


def backup_unmapped(st: LabState, name: str) -> bool:
    """The node is BACKUP and maps nothing (what maintenance on converges to)."""
    return lab.status(st, name).get("state") == "BACKUP" and not lab.mapped_here(st.nodes[name])


# ------------------------------------------------------------------ log tail
class LogTail:
    """Follows a node's harbor-ha JSON log from its current end (a crash truncates nothing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pos = path.stat().st_size if path.exists() else 0
        self._buf = b""
        self.seen: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            with self.path.open("rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return out
        self._pos += len(data)
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for raw in lines:
            if raw.startswith(b"{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(raw))
        self.seen.extend(out)
        return out

    def wait(
        self, match: Callable[[dict[str, Any]], bool], within_s: float, every_s: float = 0.003
    ) -> dict[str, Any]:
        """Return the first new record matching ``match`` (tight poll: for catching states)."""
        deadline = time.monotonic() + within_s
        while True:
            for rec in self.read():
                if match(rec):
                    return rec
            if time.monotonic() > deadline:
                raise Timeout(f"no log record matching in {self.path} within {within_s:g} s")
            time.sleep(every_s)

    def count(self, msg: str) -> int:
        """How many records with this ``msg`` since the tail began (reads new ones first)."""
        self.read()
        return sum(1 for r in self.seen if r.get("msg") == msg)

    def transitions(self) -> list[dict[str, Any]]:
        self.read()
        return [r for r in self.seen if r.get("msg") == "transition"]


def entered(state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r.get("msg") == "transition" and r.get("to") == state


# ---------------------------------------------------------------- processes
def daemon_pid(node: NodeState) -> int:
    return node.pids["harbor-ha"]


def crash_daemon(st: LabState, name: str) -> None:
    """kill -9 of the node's harbor-ha process only (not its children, not keepalived)."""
    node = st.nodes[name]
    pid = daemon_pid(node)
    os.kill(pid, signal.SIGKILL)
    lab.kill_pid(pid, signal.SIGKILL, group=False, wait_s=10)
    lab.reap()


def daemon_alive(node: NodeState) -> bool:
    pid = node.pids.get("harbor-ha")
    return pid is not None and pid > 0 and lab.alive(pid)


def keepalived_alive(node: NodeState) -> bool:
    pid = node.pids.get("keepalived")
    return pid is not None and pid > 0 and lab.alive(pid)


def restart_daemon(st: LabState, name: str) -> None:
    """Start the node's harbor-ha again (as systemd's Restart= would); keepalived untouched."""
    lab.start_harbor_ha(st.nodes[name])
    st.save()


def ensure_services(st: LabState) -> None:
    """Start whatever of harbor-ha / keepalived / dockerd is not running on each node."""
    for name, node in st.nodes.items():
        if not (node.pids.get("dockerd") and lab.alive(node.pids["dockerd"])):
            raise lab.LabError(f"dockerd of node {name} is not running")
        if not daemon_alive(node):
            restart_daemon(st, name)
        if not keepalived_alive(node):
            lab.start_keepalived(node)
            st.save()


def set_env(st: LabState, name: str, **values: str) -> None:
    """Override settings in the node's env file (last assignment wins); takes effect at the
    next start of its harbor-ha."""
    node = st.nodes[name]
    text = node.env_file.read_text()
    keep = [ln for ln in text.splitlines() if ln.split("=", 1)[0] not in values]
    keep += [f"{k}={v}" for k, v in values.items()]
    node.env_file.write_text("\n".join(keep) + "\n")


# ------------------------------------------------------------------- facts
def mount_source(mountpoint: Path) -> tuple[int, int] | None:
    """major:minor of what is mounted on top at ``mountpoint`` (from /proc/self/mountinfo)."""
    top = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4].replace("\\040", " ") == str(mountpoint):
                major, minor = parts[2].split(":")
                top = (int(major), int(minor))
    return top


def mount_count(mountpoint: Path) -> int:
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4].replace("\\040", " ") == str(mountpoint))


def mounted_from_mapped(node: NodeState) -> bool:
    """The node's mountpoint is mounted from the device the image is mapped to on that node."""
    src = mount_source(node.mountpoint)
    if src is None:
        return False
    for dev in lab.mapped_here(node):
        with contextlib.suppress(OSError):
            rdev = os.stat(dev).st_rdev
            if (os.major(rdev), os.minor(rdev)) == src:
                return True
    return False


@dataclass
class NodeFacts:
    name: str
    state: str
    vip: bool
    mapped: list[str]
    mounted: bool
    mounted_ok: bool
    containers: int
    fault: bool | None

    def short(self) -> str:
        return (
            f"{self.name}:{self.state} vip={int(self.vip)} mapped={len(self.mapped)} "
            f"mounted={int(self.mounted)} containers={self.containers} fault={self.fault}"
        )


def facts(st: LabState) -> dict[str, NodeFacts]:
    holders = lab.vip_holders(st)
    out = {}
    for name, node in st.nodes.items():
        s = lab.status(st, name)
        out[name] = NodeFacts(
            name=name,
            state=str(s.get("state")),
            vip=name in holders,
            mapped=lab.mapped_here(node),
            mounted=lab.mounted_here(node),
            mounted_ok=mounted_from_mapped(node),
            containers=len(lab.running_containers(node)),
            fault=s.get("fault"),
        )
    return out


def converged(st: LabState, client: Client | None = None) -> str | None:
    """None when the lab is in its one good shape, else what is wrong.

    Good shape: exactly one node MASTER holding the VIP, mapped, mounted from its mapping,
    Harbor running (and the client served by it through the VIP); every other node BACKUP,
    no VIP, nothing mapped, nothing mounted, no container.
    """
    f = facts(st)
    masters = [n for n in f.values() if n.state == "MASTER"]
    if len(masters) != 1:
        return "masters=" + ",".join(n.name for n in masters) + " | " + _all(f)
    m = masters[0]
    if not (m.vip and len(m.mapped) == 1 and m.mounted_ok and m.containers > 0):
        return "master not whole | " + _all(f)
    if mount_count(st.nodes[m.name].mountpoint) != 1:
        return f"{m.name}: mounted {mount_count(st.nodes[m.name].mountpoint)} times"
    for n in f.values():
        if n is m:
            continue
        if n.state != "BACKUP" or n.vip or n.mapped or n.mounted or n.containers:
            return "standby not clean | " + _all(f)
    if client is not None:
        a = client.check()
        if not (a.ok and a.served_by == m.name):
            return f"client: {a.detail} | " + _all(f)
    return None


def _all(f: dict[str, NodeFacts]) -> str:
    return " ; ".join(n.short() for n in f.values())


def wait_converged(st: LabState, within_s: float = 90, client: Client | None = None) -> float:
    """Poll until converged(); return how long it took (seconds)."""
    t0 = time.monotonic()
    last: list[str | None] = [None]

    def ok() -> bool:
        last[0] = converged(st, client)
        return last[0] is None

    try:
        poll(ok, within_s, "lab converged", every_s=0.5)
    except Timeout as exc:
        raise Timeout(f"lab did not converge within {within_s:g} s: {last[0]}") from exc
    return time.monotonic() - t0


def serving(st: LabState) -> str:
    """The one MASTER (asserts there is exactly one)."""
    m = lab.masters(st)
    assert len(m) == 1, f"expected one MASTER, got {m}"
    return m[0]


def other(st: LabState, name: str) -> str:
    return next(n for n in st.nodes if n != name)


# ----------------------------------------------------------- watch invariants
@dataclass
class Watch:
    """Samples the nodes in a thread while a fault plays out; collects violations.

    - bare: containers running on a node whose mountpoint is not mounted from its mapping
      (sampled mount, containers, mount again: both mount samples must miss to count);
    - double: a node with its mountpoint mounted more than once (stacked mounts).
    """

    st: LabState
    every_s: float = 0.3
    violations: list[str] = field(default_factory=list)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            for name, node in self.st.nodes.items():
                try:
                    m1 = mounted_from_mapped(node)
                    running = lab.running_containers(node) if not m1 else []
                    if running and not mounted_from_mapped(node):
                        self.violations.append(
                            f"{time.time():.3f} {name}: {len(running)} containers running, "
                            "mountpoint not mounted from the mapped device"
                        )
                    if mount_count(node.mountpoint) > 1:
                        self.violations.append(f"{time.time():.3f} {name}: mounted twice")
                except Exception as exc:  # a sampling error is not a violation
                    self.violations.append(f"sample error (ignored) {exc}")
                    self.violations.pop()
            self.samples += 1
            self._stop.wait(self.every_s)

    def __enter__(self) -> Watch:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


# ------------------------------------------------------------ write probe
WRITER = r"""
import os, sys
p = sys.argv[1]
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.write(fd, (sys.argv[2] + "\n").encode())
os.fsync(fd)
os.close(fd)
print("ok")
"""


def try_write(node: NodeState, record: str, timeout_s: float = 3.0) -> bool:
    """Append ``record`` to a file on the node's mountpoint and fsync it, in a subprocess
    with a timeout (a fenced mount may hang in D state): True when fsync succeeded.

    Writes only when the mountpoint is mounted from the node's mapping (never onto the
    root filesystem below it)."""
    if not mounted_from_mapped(node):
        return False
    target = node.mountpoint / "faults-ledger.txt"
    proc = subprocess.Popen(
        ["python3", "-c", WRITER, str(target), record],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()  # may sit in D state on a fenced device: do not wait for it
        _STUCK.append(proc)
        _STUCK_ON[proc.pid] = node
        return False
    return proc.returncode == 0 and out.strip() == "ok"


_STUCK: list[subprocess.Popen[str]] = []
"""Writer processes killed after their timeout (reaped by reap_writers)."""


_STUCK_ON: dict[int, NodeState] = {}


def reap_writers() -> None:
    for proc in list(_STUCK):
        if proc.poll() is not None:
            _STUCK.remove(proc)
            _STUCK_ON.pop(proc.pid, None)


def release_stuck_writers(grace_s: float = 3.0) -> list[str]:
    """The test's own write probes stuck in D state on a FENCED node's stand-in mapping (the
    rbd-fuse mount is poisoned after fencing, see lab/krbd_standin.py; krbd would return EIO
    instead) hold its mount busy, so that node's demotion could never unmount.  Kill -9 that
    node's rbd-fuse (the stand-in's 'kernel mapping'): the FUSE connection drops, the probes
    get an error and exit.  Returns what was done (for the table)."""
    deadline = time.monotonic() + grace_s
    while _STUCK and time.monotonic() < deadline:
        reap_writers()
        time.sleep(0.2)
    reap_writers()
    done = []
    for node in {id(n): n for n in _STUCK_ON.values()}.values():
        for entry in sorted(node.rbd_state.glob("*/fuse_pid")):
            with contextlib.suppress(ValueError, OSError):
                pid = int(entry.read_text().strip())
                if lab.alive(pid):
                    os.kill(pid, signal.SIGKILL)
                    done.append(f"killed {node.name}'s poisoned rbd-fuse {pid}")
    reap_writers()
    return done


@contextlib.contextmanager
def client_for(st: LabState) -> Iterator[Client]:
    c = Client(st.client_netns, st.vip_address)
    try:
        yield c
    finally:
        c.close()


# ------------------------------------------------------------ image offline
def wait_state(st: LabState, name: str, state: str, within_s: float = 60) -> None:
    poll(lambda: lab.status(st, name).get("state") == state, within_s, f"{name} in {state}")


def rbd_tool(st: LabState, state_dir: Path, *args: str, timeout: float = 60) -> str:
    """The test's own use of the rbd stand-in (its own state dir: not a node's mapping),
    run in node a's netns (where Ceph is reachable), with the harbor user's credentials."""
    node = next(iter(st.nodes.values()))
    return lab.rbd_as_harbor(st, node, *args, state_dir=state_dir, timeout=timeout)


@contextlib.contextmanager
def image_offline(st: LabState) -> Iterator[str]:
    """Both nodes in maintenance (nobody serves, nobody maps), the image mapped by the test
    itself (a loop device over rbd-fuse); yields the device.  On exit: unmapped, maintenance
    off on both nodes (the lab then elects and promotes as after a cold start)."""
    names = list(st.nodes)
    for name in names:
        lab.harbor_ha(st.nodes[name], "maintenance", "on")
    for name in names:
        poll(
            functools.partial(backup_unmapped, st, name),
            90,
            f"{name} BACKUP and unmapped in maintenance",
        )
    state_dir = Path(st.labdir) / "test-rbd"
    state_dir.mkdir(exist_ok=True)
    try:
        device = rbd_tool(st, state_dir, "device", "map", "rbd/harbor")
    except lab.LabError:  # the stand-in's losetup can time out under load: once more
        teardown_mappings(state_dir)
        device = rbd_tool(st, state_dir, "device", "map", "rbd/harbor")
    try:
        yield device
    finally:
        rbd_tool(st, state_dir, "device", "unmap", device)
        for name in names:
            lab.harbor_ha(st.nodes[name], "maintenance", "off")


def fsck_running() -> list[str]:
    """Command lines of fsck / e2fsck processes on the machine right now."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            comm = (d / "comm").read_text().strip()
            if comm.startswith(("fsck", "e2fsck")):
                out.append((d / "cmdline").read_text().replace("\0", " ").strip())
    return out


# ----------------------------------------------------------------- dockerd
def restart_dockerd(st: LabState, name: str) -> float:
    """SIGTERM the node's dockerd by PID (containerd stays), wait for it to exit, start it
    again with the same arguments in the node's netns; returns seconds it was down."""
    node = st.nodes[name]
    pid = node.pids["dockerd"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
    t0 = time.monotonic()
    lab.kill_pid(pid, signal.SIGTERM, group=False, wait_s=60)
    lab.reap()
    log = node.path / "docker" / "dockerd.log"
    node.pids["dockerd"] = lab.spawn(["nsenter", f"--net=/run/netns/{node.netns}", *argv], log)
    st.save()
    poll(
        lambda: lab.sh("docker", "-H", node.docker_host, "version", check=False).returncode == 0,
        60,
        f"dockerd of {name} answering",
    )
    return time.monotonic() - t0


# ---------------------------------------------------------------- partition
@contextlib.contextmanager
def real_partition(st: LabState) -> Iterator[None]:
    """Cut the two nodes from each other for real: iptables DROP rules in each node's netns for
    every packet to and from the peer (VRRP included).  lab.partition's blackhole routes do not
    stop keepalived's unicast adverts (keepalived sends on a socket bound to eth0, and a route
    lookup with an output interface ignores the blackhole route: measured, no takeover).
    Both nodes keep Ceph and the client.  The rules are deleted on exit."""
    added: list[list[str]] = []
    try:
        for name, node in st.nodes.items():
            peer = st.nodes[other(st, name)].address
            for chain, flag in (("INPUT", "-s"), ("OUTPUT", "-d")):
                rule = [chain, flag, f"{peer}/32", "-j", "DROP"]
                lab.sh("ip", "netns", "exec", node.netns, "iptables", "-I", *rule)
                added.append([node.netns, *rule])
        yield
    finally:
        for ns, *rule in added:
            lab.sh("ip", "netns", "exec", ns, "iptables", "-D", *rule, check=False)
