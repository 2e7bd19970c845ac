"""One node of the lab: its env file, its harbor-ha and keepalived (started, killed and
restarted as systemd would), and what can be asked of it (state, VIP, mapping, mount,
containers) or done to it (a Harbor component made unhealthy).

harbor-ha runs as a user runs it: ``harbor-ha --env-file NODE/harbor-ha.env run``, entered
into the node's netns with ``nsenter --net`` (NOT ``ip netns exec``, which gives it a private
mount namespace: its mounts would be invisible to the node's dockerd).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from lab.dockerd import start_dockerd
from lab.harbor_secrets import prepare_data_volume
from lab.harbor_shape import HarborShape, build_images
from lab.keepalived import keepalived_argv, wait_previous_gone
from lab.mappings import KRBD_STANDIN, standin_env
from lab.procs import LabError, adopt, alive, kill_pid, mounts_under, reap, sh, spawn
from lab.registry_stack.images import ensure_images
from lab.registry_stack.stack import RegistryStack, prepare_stack_data
from lab.state import HARBOR_HA, HTTPS_PORT, PROJECT, LabState, NodeState

HTTP_PORT = 9105
"""Each node's HARBOR_HA_HTTP_PORT (/metrics, /status, /primary, ...)."""
FAILSAFE_PORT = 9106
"""Each node's failsafe listener (harbor-ha to harbor-ha), next to the HTTP port 9105."""
REPLICATION_WATCH_S = 2.0
"""The lab's HARBOR_HA_REPLICATION_WATCH_INTERVAL_S (the default 30 s; a 2 s look makes the
peer count as down after ~4 s of outage and the catch-up start ~2 s after its return)."""
RBD_ONLY = ("HARBOR_HA_CEPH_", "HARBOR_HA_RBD_BIN", "HARBOR_HA_LEASE_", "HARBOR_HA_FAILSAFE_")
"""Prefixes of the settings the replicated mode does not have (no Ceph, lease or failsafe)."""


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
        "HARBOR_HA_STATE_DIR": str(node.path / "state"),
        "HARBOR_HA_CEPH_CONF": st.ceph_conf,
        "HARBOR_HA_CEPH_KEYRING": st.ceph_keyring,
        "HARBOR_HA_CEPH_USER": "harbor",
        "HARBOR_HA_CEPH_POOL": "rbd",
        "HARBOR_HA_CEPH_IMAGE": "harbor",
        "HARBOR_HA_RBD_BIN": str(KRBD_STANDIN),
        "HARBOR_HA_MOUNTPOINT": str(node.mountpoint),
        "HARBOR_HA_COMPOSE_FILE": str(node.compose_file),
        "HARBOR_HA_COMPOSE_PROJECT": PROJECT,
        "HARBOR_HA_COMPOSE_COMMAND": compose,
        # Both of the lab's stacks run Harbor's ten containers of an install with trivy.
        "HARBOR_HA_HARBOR_EXPECTED_CONTAINERS": "10",
        "HARBOR_HA_DOCKER_HOST": node.docker_host,
        "HARBOR_HA_HTTPS_PORT": str(HTTPS_PORT),
        "HARBOR_HA_HTTP_PORT": str(HTTP_PORT),
        "HARBOR_HA_PEER_HTTP_URL": f"http://{peer.address}:{HTTP_PORT}" if peer else "",
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
    if peer:  # the failsafe between the two nodes (a lab secret; deployments set their own)
        lines["HARBOR_HA_FAILSAFE_SECRET"] = "harbor-ha-lab-failsafe"
        lines["HARBOR_HA_FAILSAFE_PEER"] = f"{peer.address}:{FAILSAFE_PORT}"
        lines["HARBOR_HA_FAILSAFE_LISTEN"] = f"{node.address}:{FAILSAFE_PORT}"
    if st.mode == "replicated":
        kept = {k: v for k, v in lines.items() if not k.startswith(RBD_ONLY)}
        lines = {"HARBOR_HA_MODE": "replicated", **kept}
        # The pair's accounts (written by lab/replicated.py for the registry stack; the shape
        # has no replication API: no file, the watch says "not configured").  The watch looks
        # every 2 s instead of 30 s so a test sees the catch-up run within seconds.
        lines["HARBOR_HA_REPLICATION_CREDENTIALS_FILE"] = str(credentials_file(st))
        lines["HARBOR_HA_REPLICATION_WATCH_INTERVAL_S"] = str(REPLICATION_WATCH_S)
        lines["HARBOR_HA_REPLICATION_TIMEOUT_S"] = "2"
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def credentials_file(st: LabState) -> Path:
    """The replicated pair's accounts (HARBOR_HA_REPLICATION_CREDENTIALS_FILE), in the lab dir."""
    return Path(st.labdir) / "replication.ini"


def install_node(st: LabState, node: NodeState, compose: str) -> None:
    """A node's containerd + dockerd (in its netns), the Harbor-shaped images and project, its
    env file and keepalived's config (``harbor-ha render-keepalived``); every PID recorded."""
    install_harbor(st, node, compose)
    configure_node(st, node, compose)


def install_harbor(st: LabState, node: NodeState, compose: str) -> None:
    """A node's containerd + dockerd (in its netns, PIDs recorded) and its Harbor project
    (``st.stack``) with data dir = the node's mountpoint: an unmounted mountpoint in the rbd
    mode (the lab prepares the image's filesystem once), a plain directory in the replicated
    mode, where Harbor's secrets are written now, as Harbor's prepare would."""
    local_data = st.mode == "replicated"
    d = start_dockerd(node.path / "docker", node.netns)
    assert d.proc is not None and d.containerd is not None
    node.pids["dockerd"] = d.proc.pid
    node.pids["containerd"] = d.containerd.pid
    adopt(d.proc)
    adopt(d.containerd)
    st.save()
    if st.stack == "registry":
        control_dir = install_registry_stack(st, node, d.host, compose)
    else:
        build_images(d.host)
        shape = HarborShape.render(
            node.path / "harbor",
            d.host,
            project=PROJECT,
            data_dir=node.mountpoint,
            https_bind="0.0.0.0",
            https_port=HTTPS_PORT,
            prepare=local_data,
        )
        control_dir = shape.control_dir
    (control_dir / "node-name").write_text(node.name)


def configure_node(st: LabState, node: NodeState, compose: str) -> None:
    """A node's env file and keepalived's config (``harbor-ha render-keepalived``)."""
    node.env_file.write_text(node_env(st, node, compose))
    harbor_ha(node, "render-keepalived")


def install_registry_stack(st: LabState, node: NodeState, docker_host: str, compose: str) -> Path:
    """The registry stack on a node: its images loaded from the lab cache's tar (built there
    once), its project rendered with ONE certificate for both nodes (the first node's CA and
    server certificate, valid for the VIP and both addresses), no data layout on the unmounted
    mountpoint of the rbd mode (the replicated mode's local data dir gets it, with that
    certificate).  Returns its control dir."""
    loaded = ensure_images(docker_host)
    first = next(iter(st.nodes.values()))
    certs = None if first is node else first.path / "harbor" / "config" / "cert"
    stack = RegistryStack.render(
        node.path / "harbor",
        docker_host,
        tag=loaded.tag,
        data_dir=node.mountpoint,
        compose=[compose],
        https_bind="0.0.0.0",
        https_port=HTTPS_PORT,
        project=PROJECT,
        cert_names=(st.vip_address, *(n.address for n in st.nodes.values())),
        certs_from=certs,
        make_data_layout=st.mode == "replicated",
    )
    return stack.control_dir


def prepare_image(st: LabState, node: NodeState) -> None:
    """Harbor's prepare on the formatted RBD image (what an install writes onto the data
    volume before the first start): map it on ``node`` with the krbd stand-in, mount it on
    NODE/prepare, write Harbor's secrets and the proxy's certificate (lab/harbor_secrets.py;
    the registry stack's is its lab CA's server certificate), unmount, unmap.  Both stacks bind
    them with the long syntax, so without them Docker creates no core, registry or
    trivy-adapter container."""
    dev = rbd_as_harbor(st, node, "device", "map", "rbd/harbor")
    mnt = node.path / "prepare"
    mnt.mkdir(exist_ok=True)
    try:
        sh("mount", dev, str(mnt), timeout=60)
        try:
            if st.stack == "registry":
                prepare_stack_data(mnt, node.path / "harbor" / "config" / "cert")
            else:
                prepare_data_volume(mnt)
        finally:
            sh("umount", str(mnt), timeout=60)
    finally:
        rbd_as_harbor(st, node, "device", "unmap", dev)
    mnt.rmdir()


def harbor_ha(
    node: NodeState, *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real CLI, as an operator runs it on that node."""
    env = standin_env(node.rbd_state)
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
    env = standin_env(node.rbd_state)
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
    wait_previous_gone(node.path)
    node.pids["keepalived"] = spawn(
        keepalived_argv(node.netns, node.path / "keepalived.conf", node.path), node.ka_log
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


def status(st: LabState, name: str) -> dict[str, Any]:
    res = harbor_ha(st.nodes[name], "status", "--json", check=False, timeout=15)
    if res.returncode not in (0, 1, 2):  # status exits 0/1/2 by verdict, 3 unreachable
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
    env = standin_env(node.rbd_state)
    res = sh(str(KRBD_STANDIN), "device", "list", "--format", "json", check=False, env=env)
    try:
        return [d["device"] for d in json.loads(res.stdout or "[]")]
    except json.JSONDecodeError:
        return []


def rbd_as_harbor(
    st: LabState, node: NodeState, *args: str, state_dir: Path | None = None, timeout: float = 60
) -> str:
    """The krbd stand-in run in ``node``'s netns as the harbor user, with ``node``'s mapping
    state (or ``state_dir``: a test's own mapping); returns stdout."""
    env = standin_env(state_dir or node.rbd_state)
    res = sh(
        "nsenter", f"--net=/run/netns/{node.netns}", str(KRBD_STANDIN),
        "-c", st.ceph_conf, "--id", "harbor", "--keyring", st.ceph_keyring, *args,
        timeout=timeout, env=env,
    )  # fmt: skip
    return res.stdout.strip()


def mounted_here(node: NodeState) -> bool:
    return bool(mounts_under(str(node.mountpoint)))


STATELESS = frozenset(("log", "portal"))
"""The services a warm standby runs: those not in harbor-ha's default harbor_data_services
(Harbor's data-bearing services) whose compose config names no path under the mountpoint, in
both of the lab's projects (Harbor's https proxy binds data/secret/cert, so not the proxy)."""


def running_all(node: NodeState) -> dict[str, str]:
    """Every running container of the Harbor project on ``node``: id -> compose service."""
    res = sh(
        "docker", "-H", node.docker_host, "ps", "--filter",
        f"label=com.docker.compose.project={PROJECT}",
        "--format", '{{.ID}} {{.Label "com.docker.compose.service"}}', check=False,
    )  # fmt: skip
    out = {}
    for line in res.stdout.splitlines():
        cid, _, service = line.partition(" ")
        if cid:
            out[cid] = service
    return out


def running_containers(node: NodeState) -> list[str]:
    """Running containers of the data-bearing services: "Harbor runs here" (a warm standby
    keeps only the stateless ones up)."""
    return [cid for cid, svc in running_all(node).items() if svc not in STATELESS]


def masters(st: LabState) -> list[str]:
    return [n for n in st.nodes if status(st, n).get("state") == "MASTER"]


# ---------------------------------------------------------------- faults
def set_unhealthy(st: LabState, name: str, service: str, on: bool) -> None:
    flag = st.nodes[name].control_dir / f"unhealthy-{service}"
    if on:
        flag.touch()
    else:
        flag.unlink(missing_ok=True)
