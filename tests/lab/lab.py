"""The two-node harbor-ha lab on one machine: every part real, only addresses in its own netns.

Topology (prefix P, subnet 10.99.0.0/24 by default)::

    netns P-br:   bridge br0
    netns P-a:    eth0 .11  keepalived + harbor-ha + containerd/dockerd (Harbor-shaped project)
    netns P-b:    eth0 .12  the same
    netns P-c:    eth0 .13  the client (reaches Harbor through the VIP .100)
    netns P-ceph: eth0 .20  ceph-mon + memstore ceph-osd

harbor-ha runs as a user runs it: ``harbor-ha --env-file NODE/harbor-ha.env run``, entered
into the node's netns with ``nsenter --net`` (NOT ``ip netns exec``, which gives it a private
mount namespace: its mounts would be invisible to the node's dockerd). keepalived's config
comes from ``harbor-ha render-keepalived``. krbd is missing from this kernel, so ``rbd`` is
the test stand-in tests/integration/tools/rbd (rbd-fuse + loop device, named as such); each
node's Ceph client has its own address, so fencing by address is what production does.

Everything the lab starts is recorded in LABDIR/state.json (PIDs, netns, dirs), so
``down`` cleans up also after a crash of the lab itself; ``down`` also sweeps by prefix.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.fixtures.ceph import RBD_STATE_ENV, RBD_WRAPPER, start_cluster
from tests.integration.fixtures.docker import (
    HarborShape,
    build_images,
    compose_v2_binary,
    start_dockerd,
)

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
HARBOR_HA = str(VENV_BIN / "harbor-ha")
DEFAULT_LABDIR = Path("/var/tmp/harbor-ha-lab")
NODE_NAMES = ("a", "b")
HOSTS = {"a": 11, "b": 12, "c": 13, "ceph": 20}
VIP_HOST = 100
HTTPS_PORT = 443
PROJECT = "harbor"


class LabError(RuntimeError):
    """The lab could not do what was asked (the message says what and where the logs are)."""


def sh(
    *argv: str, check: bool = True, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env)
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {res.returncode}: {res.stderr.strip()[-800:]}")
    return res


# ----------------------------------------------------------------------- state
@dataclass
class NodeState:
    name: str
    netns: str
    address: str
    dir: str
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def env_file(self) -> Path:
        return self.path / "harbor-ha.env"

    @property
    def run_dir(self) -> Path:
        return self.path / "run"

    @property
    def mountpoint(self) -> Path:
        return self.path / "data"

    @property
    def rbd_state(self) -> Path:
        return self.path / "rbd"

    @property
    def log(self) -> Path:
        return self.path / "harbor-ha.log"

    @property
    def ka_log(self) -> Path:
        return self.path / "keepalived.log"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}/docker/docker.sock"

    @property
    def control_dir(self) -> Path:
        return self.path / "harbor" / "control"


@dataclass
class LabState:
    prefix: str
    subnet: str
    labdir: str
    advert_s: float
    vip: str
    netns: list[str] = field(default_factory=list)
    nodes: dict[str, NodeState] = field(default_factory=dict)
    ceph_dir: str = ""
    ceph_conf: str = ""
    ceph_keyring: str = ""
    ceph_pids: dict[str, int] = field(default_factory=dict)
    client_netns: str = ""
    blackholes: list[list[str]] = field(default_factory=list)
    log_level: str = "info"  # HARBOR_HA_LOG_LEVEL of both nodes ("debug": one line per command)

    @property
    def vip_address(self) -> str:
        return self.vip.split("/")[0]

    def save(self) -> None:
        path = Path(self.labdir) / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, labdir: Path) -> LabState:
        data = json.loads((labdir / "state.json").read_text())
        data["nodes"] = {k: NodeState(**v) for k, v in data["nodes"].items()}
        return cls(**data)


def _host(subnet: str, n: int) -> str:
    return str(list(ipaddress.ip_network(subnet).hosts())[n - 1])


# --------------------------------------------------------------------- process
def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def kill_pid(
    pid: int, sig: int = signal.SIGTERM, *, group: bool = True, wait_s: float = 10.0
) -> None:
    """Signal a process (and its group) we started, wait for it; SIGKILL after wait_s."""
    if not alive(pid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    deadline = time.monotonic() + wait_s
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if alive(pid) and sig != signal.SIGKILL:
        kill_pid(pid, signal.SIGKILL, group=group, wait_s=5)


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Processes this Python process started: reaped by reap() (the VM's PID 1 reaps lazily)."""


def reap() -> None:
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[pid]


# --------------------------------------------------------------------- netns
def make_topology(st: LabState) -> None:
    p = st.prefix
    br = f"{p}-br"
    sh("ip", "netns", "add", br)
    st.netns.append(br)
    st.save()
    sh("ip", "-n", br, "link", "set", "lo", "up")
    sh("ip", "-n", br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
    sh("ip", "-n", br, "link", "set", "br0", "up")
    prefixlen = ipaddress.ip_network(st.subnet).prefixlen
    for role, host in HOSTS.items():
        ns = f"{p}-{role}"
        sh("ip", "netns", "add", ns)
        st.netns.append(ns)
        st.save()
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        port = f"v{role}"
        sh("ip", "-n", br, "link", "add", port, "type", "veth", "peer", "eth0", "netns", ns)
        sh("ip", "-n", br, "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{_host(st.subnet, host)}/{prefixlen}", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")


# --------------------------------------------------------------------- nodes
def node_env(st: LabState, node: NodeState, compose: str) -> str:
    peer = next((n for n in st.nodes.values() if n.name != node.name), None)
    run = node.run_dir
    lines = {
        "HARBOR_HA_NODE_NAME": node.name,
        "HARBOR_HA_INTERFACE": "eth0",
        "HARBOR_HA_VIP": st.vip,
        "HARBOR_HA_KEEPALIVED_ROLE": "MASTER" if node.name == "a" else "BACKUP",
        "HARBOR_HA_VRRP_ROUTER_ID": "51",
        "HARBOR_HA_VRRP_ADVERT_INTERVAL_S": str(st.advert_s),
        "HARBOR_HA_VRRP_UNICAST_SRC_IP": node.address if peer else "",
        "HARBOR_HA_VRRP_UNICAST_PEERS": peer.address if peer else "",
        "HARBOR_HA_KEEPALIVED_FIFO": str(run / "keepalived.fifo"),
        "HARBOR_HA_PRIORITY_FILE": str(run / "priority"),
        "HARBOR_HA_FAULT_FILE": str(run / "fault"),
        "HARBOR_HA_KEEPALIVED_CONF": str(node.path / "keepalived.conf"),
        "HARBOR_HA_RUNTIME_DIR": str(run),
        "HARBOR_HA_CEPH_CONF": st.ceph_conf,
        "HARBOR_HA_CEPH_KEYRING": st.ceph_keyring,
        "HARBOR_HA_CEPH_USER": "harbor",
        "HARBOR_HA_CEPH_POOL": "rbd",
        "HARBOR_HA_CEPH_IMAGE": "harbor",
        "HARBOR_HA_RBD_BIN": str(RBD_WRAPPER),
        "HARBOR_HA_MOUNTPOINT": str(node.mountpoint),
        "HARBOR_HA_COMPOSE_FILE": str(node.path / "harbor" / "docker-compose.yml"),
        "HARBOR_HA_COMPOSE_PROJECT": PROJECT,
        "HARBOR_HA_COMPOSE_COMMAND": compose,
        "HARBOR_HA_DOCKER_HOST": node.docker_host,
        "HARBOR_HA_HTTPS_PORT": str(HTTPS_PORT),
        "HARBOR_HA_HTTP_PORT": "9105",
        "HARBOR_HA_PROBE_INTERVAL_S": "1.0",
        "HARBOR_HA_PROBE_FALL": "2",
        "HARBOR_HA_BACKOFF_INITIAL_S": "5",
        "HARBOR_HA_SWITCHOVER_HOLD_S": "5",
        "HARBOR_HA_FENCED_SELF_RETRY_S": "5",
        "HARBOR_HA_LEASE_OBJECT": "harbor-ha.lease",
        "HARBOR_HA_LEASE_DURATION_S": "5",
        "HARBOR_HA_LEASE_RENEW_INTERVAL_S": "0.5",
        "HARBOR_HA_LOG_FORMAT": "json",
        "HARBOR_HA_LOG_LEVEL": st.log_level,
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def harbor_ha(
    node: NodeState, *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real CLI, as an operator runs it on that node."""
    env = {**os.environ, RBD_STATE_ENV: str(node.rbd_state)}
    return sh(
        "nsenter",
        f"--net=/run/netns/{node.netns}",
        HARBOR_HA,
        "--env-file",
        str(node.env_file),
        *args,
        check=check,
        timeout=timeout,
        env=env,
    )


def start_harbor_ha(node: NodeState) -> None:
    env = {**os.environ, RBD_STATE_ENV: str(node.rbd_state)}
    sock = node.run_dir / "control.sock"
    sock.unlink(missing_ok=True)  # left by a kill -9: wait for the new one
    node.pids["harbor-ha"] = spawn(
        [
            "nsenter",
            f"--net=/run/netns/{node.netns}",
            HARBOR_HA,
            "--env-file",
            str(node.env_file),
            "run",
        ],
        node.log,
        env,
    )
    # harbor-ha creates the FIFO and the track files (fault set) and reconciles before
    # keepalived starts (systemd: Before=keepalived.service, Type=notify).
    deadline = time.monotonic() + 30
    while not sock.exists():
        if not alive(node.pids["harbor-ha"]) or time.monotonic() > deadline:
            raise LabError(f"harbor-ha on {node.name} did not start; see {node.log}")
        time.sleep(0.05)


def start_keepalived(node: NodeState) -> None:
    p = node.path
    node.pids["keepalived"] = spawn(
        [
            "ip",
            "netns",
            "exec",
            node.netns,
            "keepalived",
            "-n",
            "-l",
            "-D",
            "-f",
            str(p / "keepalived.conf"),
            "-p",
            str(p / "keepalived.pid"),
            "-r",
            str(p / "vrrp.pid"),
            "-c",
            str(p / "checkers.pid"),
            "-b",
            str(p / "bfd.pid"),
        ],
        node.ka_log,
    )


def start_services(st: LabState, name: str) -> None:
    """(Re)start a node's harbor-ha and keepalived, as systemd would after a crash."""
    node = st.nodes[name]
    start_harbor_ha(node)
    start_keepalived(node)
    st.save()


def kill_services(st: LabState, name: str, sig: int = signal.SIGKILL) -> None:
    """kill -9 (default) of a node's keepalived and harbor-ha (Harbor is left running)."""
    node = st.nodes[name]
    for what in ("keepalived", "harbor-ha"):
        pid = node.pids.get(what)
        if pid:
            kill_pid(pid, sig, wait_s=15)
    reap()


# ---------------------------------------------------------------------- up
def up(
    labdir: Path = DEFAULT_LABDIR,
    *,
    prefix: str = "hha",
    subnet: str = "10.99.0.0/24",
    advert_s: float = 0.1,
    nodes: tuple[str, ...] = NODE_NAMES,
    say: Any = print,
    log_level: str = "info",
) -> LabState:
    """Bring the whole lab up; on failure everything made so far is torn down.

    ``log_level`` is harbor-ha's HARBOR_HA_LOG_LEVEL on both nodes; ``"debug"`` adds one
    ``command`` line (argv, rc, duration_ms) per external command (bench/failover.py uses it)."""
    if (labdir / "state.json").exists():
        say(f"lab: tearing down the previous lab in {labdir}")
        down(labdir, say=say)
    labdir.mkdir(parents=True, exist_ok=True)
    prefixlen = ipaddress.ip_network(subnet).prefixlen
    st = LabState(
        prefix=prefix,
        subnet=subnet,
        labdir=str(labdir),
        advert_s=advert_s,
        vip=f"{_host(subnet, VIP_HOST)}/{prefixlen}",
        client_netns=f"{prefix}-c",
        log_level=log_level,
    )
    st.save()
    t0 = time.monotonic()
    try:
        make_topology(st)
        say(
            f"lab: network namespaces {prefix}-{{br,a,b,c,ceph}} on {subnet} "
            f"({time.monotonic() - t0:.1f} s)"
        )
        cluster = start_cluster(
            labdir / "ceph", f"{prefix}-ceph", _host(subnet, HOSTS["ceph"]), image_size_mb=256
        )
        st.ceph_dir, st.ceph_conf = str(cluster.workdir), str(cluster.conf)
        no_client_cache(cluster.conf)
        st.ceph_keyring, st.ceph_pids = str(cluster.harbor_keyring), dict(cluster.pids)
        st.save()
        say(f"lab: ceph mon + osd in {prefix}-ceph ({cluster.startup_s:.1f} s)")
        v2 = compose_v2_binary()
        compose = v2 if v2 else "/usr/bin/docker-compose"
        for name in nodes:
            node = NodeState(
                name=name,
                netns=f"{prefix}-{name}",
                address=_host(subnet, HOSTS[name]),
                dir=str(labdir / name),
            )
            st.nodes[name] = node
            for d in (node.path, node.run_dir, node.rbd_state, node.mountpoint):
                d.mkdir(parents=True, exist_ok=True)
        for node in st.nodes.values():
            d = start_dockerd(node.path / "docker", node.netns)
            assert d.proc is not None and d.containerd is not None
            node.pids["dockerd"] = d.proc.pid
            node.pids["containerd"] = d.containerd.pid
            _CHILDREN[d.proc.pid] = d.proc
            _CHILDREN[d.containerd.pid] = d.containerd
            st.save()
            build_images(d.host)
            shape = HarborShape.render(
                node.path / "harbor",
                d.host,
                project=PROJECT,
                data_dir=node.mountpoint,
                https_bind="0.0.0.0",
                https_port=HTTPS_PORT,
            )
            relax_healthchecks(shape.compose_file)
            (shape.control_dir / "node-name").write_text(node.name)
            node.env_file.write_text(node_env(st, node, compose))
            harbor_ha(node, "render-keepalived")
        say(f"lab: dockerd + Harbor-shaped images on each node ({time.monotonic() - t0:.1f} s)")
        first = st.nodes[nodes[0]]
        harbor_ha(first, "format", "--yes-i-know-this-image-is-new", timeout=120)
        say("lab: image formatted (harbor-ha format)")
        for name in nodes:
            start_services(st, name)
        say(
            f"lab: harbor-ha + keepalived running on {', '.join(nodes)} "
            f"({time.monotonic() - t0:.1f} s)"
        )
    except BaseException:
        # Outside labdir: down() removes labdir.
        kept = labdir.parent / f"{labdir.name}-failed-up"
        say(f"lab: bring-up failed; node logs copied to {kept}; tearing down")
        with contextlib.suppress(Exception):
            collect_logs(st, kept)
        down(labdir, say=say)
        raise
    return st


def no_client_cache(conf: Path) -> None:
    """``rbd cache = false`` for the lab's clients (krbd has no client-side cache).  With
    librbd's cache, the krbd stand-in (rbd-fuse + loop) can acknowledge a write + fsync on a
    node that is being blocklisted and lose it: measured with tests/e2e/repro_fenced_ack.py
    (ext4, fsync'd records, blocklist mid-stream, fresh map): the last acknowledged record was
    missing in 2 of 4 rounds with the cache, 0 of 6 without."""
    text = conf.read_text()
    if text.rstrip().rsplit("\n[", 1)[-1].startswith("client]"):
        conf.write_text(text.rstrip("\n") + "\nrbd cache = false\n")
    else:
        conf.write_text(text.rstrip("\n") + "\n\n[client]\nrbd cache = false\n")


HEALTH_TIMEOUT_S = 5
HEALTH_RETRIES = 3
"""The lab's Docker healthchecks: the shape's 1 s timeout with 1 retry makes a master flap
(unhealthy -> failover -> unhealthy ...) when this 2-core machine is loaded by other labs;
Harbor's own images allow several retries.  A switched-unhealthy service still fails at once,
so it is seen after HEALTH_RETRIES checks (interval 1 s)."""


def relax_healthchecks(compose_file: Path) -> None:
    text = compose_file.read_text()
    text = text.replace("timeout: 1s", f"timeout: {HEALTH_TIMEOUT_S}s")
    text = text.replace("retries: 1\n", f"retries: {HEALTH_RETRIES}\n")
    compose_file.write_text(text)


def collect_logs(st: LabState, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for node in st.nodes.values():
        for f in (node.log, node.ka_log):
            if f.exists():
                shutil.copy(f, dest / f"{node.name}-{f.name}")


# -------------------------------------------------------------------- down
def _mounts_under(root: str) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == root or mnt.startswith(root + "/"):
                out.append(mnt)
    return sorted(out, key=len, reverse=True)


def down(labdir: Path = DEFAULT_LABDIR, *, say: Any = print) -> None:
    """Tear down everything the lab made (also after a crash of the lab or of a test)."""
    st: LabState | None = None
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, TypeError):
        st = LabState.load(labdir)
    if st is not None:
        for node in st.nodes.values():
            for what in ("keepalived", "harbor-ha"):
                if node.pids.get(what):
                    kill_pid(node.pids[what], signal.SIGKILL)
        for node in st.nodes.values():
            # Containers first (they hold the mount), through the node's own dockerd.
            if node.pids.get("dockerd") and alive(node.pids["dockerd"]):
                ids = sh("docker", "-H", node.docker_host, "ps", "-aq", check=False).stdout.split()
                if ids:
                    sh("docker", "-H", node.docker_host, "rm", "-f", *ids, check=False, timeout=60)
        for node in st.nodes.values():
            for mnt in _mounts_under(str(node.mountpoint)):
                sh("umount", "-l", mnt, check=False)
            state = node.rbd_state
            if state.is_dir():
                for entry in sorted(state.iterdir()):
                    if entry.is_dir():
                        env = {**os.environ, RBD_STATE_ENV: str(state)}
                        sh(
                            str(RBD_WRAPPER),
                            "_teardown",
                            entry.name,
                            check=False,
                            env=env,
                            timeout=60,
                        )
            for what in ("dockerd", "containerd"):
                if node.pids.get(what):
                    kill_pid(node.pids[what], signal.SIGTERM, wait_s=20)
        for pid in st.ceph_pids.values():
            kill_pid(pid, signal.SIGTERM, wait_s=10)
        for ns in reversed(st.netns):
            sh("ip", "netns", "del", ns, check=False)
    # Sweep whatever is left under the lab dir (loop devices, FUSE and overlay mounts).
    root = str(labdir)
    loops = sh("losetup", "-l", "-n", "-O", "NAME,BACK-FILE", check=False).stdout
    for mnt in _mounts_under(root):
        sh("umount", "-l", mnt, check=False)
    for line in loops.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].startswith(root):
            sh("losetup", "-d", parts[0], check=False)
    if st is not None:
        for ns in sh("ip", "netns", "list", check=False).stdout.split("\n"):
            name = ns.split(" ")[0]
            if name.startswith(st.prefix + "-"):
                sh("ip", "netns", "del", name, check=False)
    if labdir.exists():
        sh("chattr", "-R", "-i", str(labdir), check=False, timeout=60)
        shutil.rmtree(labdir, ignore_errors=True)
    reap()
    say(f"lab: down ({labdir} removed)")


# ----------------------------------------------------------------- queries
def status(st: LabState, name: str) -> dict[str, Any]:
    res = harbor_ha(st.nodes[name], "status", "--json", check=False, timeout=15)
    if res.returncode != 0:
        return {"state": "DOWN", "error": res.stderr.strip()}
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def vip_holders(st: LabState) -> list[str]:
    out = []
    for node in st.nodes.values():
        res = sh("ip", "-n", node.netns, "-j", "addr", "show", "dev", "eth0", check=False)
        if st.vip_address in res.stdout:
            out.append(node.name)
    return out


def mapped_here(node: NodeState) -> list[str]:
    env = {**os.environ, RBD_STATE_ENV: str(node.rbd_state)}
    res = sh(str(RBD_WRAPPER), "device", "list", "--format", "json", check=False, env=env)
    try:
        return [d["device"] for d in json.loads(res.stdout or "[]")]
    except json.JSONDecodeError:
        return []


def rbd_as_harbor(
    st: LabState, node: NodeState, *args: str, state_dir: Path | None = None, timeout: float = 60
) -> str:
    """The krbd stand-in run in ``node``'s netns as the harbor user, with ``node``'s mapping
    state (or ``state_dir``: a test's own mapping); returns stdout."""
    env = {**os.environ, RBD_STATE_ENV: str(state_dir or node.rbd_state)}
    res = sh(
        "nsenter", f"--net=/run/netns/{node.netns}", str(RBD_WRAPPER),
        "-c", st.ceph_conf, "--id", "harbor", "--keyring", st.ceph_keyring, *args,
        timeout=timeout, env=env,
    )  # fmt: skip
    return res.stdout.strip()


def mounted_here(node: NodeState) -> bool:
    return bool(_mounts_under(str(node.mountpoint)))


def running_containers(node: NodeState) -> list[str]:
    res = sh(
        "docker",
        "-H",
        node.docker_host,
        "ps",
        "-q",
        "--filter",
        f"label=com.docker.compose.project={PROJECT}",
        check=False,
    )
    return res.stdout.split()


def masters(st: LabState) -> list[str]:
    return [n for n in st.nodes if status(st, n).get("state") == "MASTER"]


# ---------------------------------------------------------------- faults
def set_unhealthy(st: LabState, name: str, service: str, on: bool) -> None:
    flag = st.nodes[name].control_dir / f"unhealthy-{service}"
    if on:
        flag.touch()
    else:
        flag.unlink(missing_ok=True)


def _drop(st: LabState, netns: str, peer: str) -> None:
    """iptables DROP of everything to and from ``peer`` in ``netns``.  (Blackhole routes do not
    cut keepalived: it sends on a socket bound to eth0, which ignores them — measured.)"""
    for chain, flag in (("INPUT", "-s"), ("OUTPUT", "-d")):
        rule = [chain, flag, f"{peer}/32", "-j", "DROP"]
        sh("ip", "netns", "exec", netns, "iptables", "-I", *rule)
        st.blackholes.append([netns, *rule])
    st.save()


def partition(st: LabState, a: str = "a", b: str = "b") -> None:
    """Cut the two nodes from each other, VRRP included (both keep Ceph and the client)."""
    na, nb = st.nodes[a], st.nodes[b]
    _drop(st, na.netns, nb.address)
    _drop(st, nb.netns, na.address)


def isolate_from_ceph(st: LabState, name: str) -> None:
    """Cut one node from the Ceph netns (it keeps its peer and the client)."""
    _drop(st, st.nodes[name].netns, _host(st.subnet, HOSTS["ceph"]))


def heal(st: LabState) -> None:
    for netns, *rule in st.blackholes:
        sh("ip", "netns", "exec", netns, "iptables", "-D", *rule, check=False)
    st.blackholes.clear()
    st.save()


@contextlib.contextmanager
def lab_session(labdir: Path) -> Iterator[LabState]:
    st = LabState.load(labdir)
    try:
        yield st
    finally:
        st.save()
