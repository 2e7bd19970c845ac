"""The shared lab: N Harbors (three by default) on one CephFS behind HAProxy and its VIP.

What runs where (netns ``PREFIX-*`` on one bridge):

    ceph      mon + memstore OSD + MDS, the CephFS ``harborfs`` (lab/ceph.py, lab/cephfs.py)
    ext       the external PostgreSQL and Redis (lab/external.py), shared by every node
    lb        HAProxy (``harbor-ha render-haproxy``) + keepalived holding the VIP
              (``render-keepalived --for lb``) (lab/balancer.py)
    a, b, c   each: its dockerd and the registry stack WITHOUT its postgresql and redis
              services (core's checks pointed at ``ext``), Harbor's data volume = the CephFS
              mount harbor-ha makes with ceph-fuse (this kernel has no ceph module), harbor-ha
              in the shared mode with HARBOR_HA_NODES listing every node
    cl        the client (skopeo through the VIP: lab/traffic.py)

Harbor's secrets are on the data volume (written once onto the CephFS: every node reads the
same files), the proxy's certificate is the first node's (copied to the others), and the
registry's HTTP secret is one value in every node's compose file.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import Any

import yaml

from harbor_ha.haproxy import detection_s
from harbor_ha.settings import load_settings
from lab.balancer import start_balancer
from lab.ceph import CephCluster, start_cluster
from lab.cephfs import CLIENT, FS_NAME, start_cephfs
from lab.dockerd import compose_v2_binary, start_dockerd
from lab.external import PG_PORT, REDIS_PORT, start_external
from lab.netns import make_lab_topology
from lab.node import HTTP_PORT, install_registry_stack, start_harbor_ha
from lab.procs import adopt, sh
from lab.registry_stack.stack import DATA_SUBDIRS, prepare_stack_data
from lab.state import HTTPS_PORT, PROJECT, VIP_HOST, LabState, NodeState, host

SHARED_HOSTS = {"a": 11, "b": 12, "c": 13, "d": 14, "ceph": 20, "ext": 30, "lb": 31, "cl": 40}
"""Host numbers of the shared lab's netns (the two-node lab's client is ``c``; here ``cl``)."""
SHARED_NODES = ("a", "b", "c")
HARBOR_NET = "172.30.250.0/24"
"""The registry stack's compose network inside each node's dockerd (docker-compose.yml.tmpl)."""
EXTERNAL_SERVICES = ("postgresql", "redis")
EXPECTED_CONTAINERS = 8
"""Harbor's ten containers less the external PostgreSQL and Redis."""
REGISTRY_HTTP_SECRET = "harbor-ha-lab-registry-http-secret"
"""The registry's HTTP secret, the same on every node (a lab value; Harbor's prepare makes one)."""
LB_CHECK = {"HARBOR_HA_LB_CHECK_INTERVAL_S": "1", "HARBOR_HA_LB_CHECK_TIMEOUT_S": "1",
            "HARBOR_HA_LB_CHECK_FALL": "2", "HARBOR_HA_LB_CHECK_RISE": "2"}  # fmt: skip
"""The balancer's checks of /serving (HAProxy's inter, timeout check, fall, rise)."""
DRAIN_MARGIN_S = 2.0
EVICT_AFTER_S = 5.0
"""A node whose harbor-ha goes unanswered this long is dead to the others, who evict its
CephFS sessions (above HAProxy's 3 s detection time: a node the balancer still sends to is
never evicted)."""
"""A drain waits the balancer's detection time plus this (requests in flight)."""


def cluster_env(st: LabState) -> dict[str, str]:
    """The settings every machine of the cluster shares (nodes and balancer)."""
    return {
        "HARBOR_HA_MODE": "shared",
        "HARBOR_HA_INTERFACE": "eth0",
        "HARBOR_HA_VIP": st.vip,
        "HARBOR_HA_VRRP_ROUTER_ID": "52",
        "HARBOR_HA_VRRP_ADVERT_INTERVAL_S": str(st.advert_s),
        "HARBOR_HA_NODES": ",".join(f"{n.name}={n.address}" for n in st.nodes.values()),
        "HARBOR_HA_HTTPS_PORT": str(HTTPS_PORT),
        "HARBOR_HA_HTTP_PORT": str(HTTP_PORT),
        **LB_CHECK,
        "HARBOR_HA_LOG_FORMAT": "json",
        "HARBOR_HA_LOG_LEVEL": st.log_level,
    }


def lb_detection_s(st: LabState) -> float:
    """The rendered HAProxy's worst-case detection time (harbor_ha.haproxy.detection_s)."""
    return detection_s(load_settings(None, {**cluster_env(st), "HARBOR_HA_SHARED_FS_TYPE": "none",
                                            "HARBOR_HA_NODE_NAME": "lb"}))  # fmt: skip


def shared_node_env(st: LabState, node: NodeState, compose: str) -> str:
    run = node.run_dir
    lines = {
        **cluster_env(st),
        "HARBOR_HA_NODE_NAME": node.name,
        "HARBOR_HA_SHARED_FS_TYPE": "ceph-fuse",
        "HARBOR_HA_SHARED_FS_SOURCE": f"{host(st.subnet, SHARED_HOSTS['ceph'])}:6789:/",
        "HARBOR_HA_CEPH_CONF": st.ceph_conf,
        "HARBOR_HA_CEPH_KEYRING": st.ceph_keyring,
        "HARBOR_HA_CEPH_USER": CLIENT,
        "HARBOR_HA_MOUNTPOINT": str(node.mountpoint),
        "HARBOR_HA_DRAIN_WAIT_S": str(lb_detection_s(st) + DRAIN_MARGIN_S),
        "HARBOR_HA_SHARED_EVICT_AFTER_S": str(st.evict_after_s),
        "HARBOR_HA_CEPHFS_NAME": FS_NAME,
        "HARBOR_HA_KEEPALIVED_FIFO": str(run / "keepalived.fifo"),
        "HARBOR_HA_PRIORITY_FILE": str(run / "priority"),
        "HARBOR_HA_FAULT_FILE": str(run / "fault"),
        "HARBOR_HA_RUNTIME_DIR": str(run),
        "HARBOR_HA_STATE_DIR": str(node.path / "state"),
        "HARBOR_HA_COMPOSE_FILE": str(node.compose_file),
        "HARBOR_HA_COMPOSE_PROJECT": PROJECT,
        "HARBOR_HA_COMPOSE_COMMAND": compose,
        "HARBOR_HA_HARBOR_EXPECTED_CONTAINERS": str(EXPECTED_CONTAINERS),
        "HARBOR_HA_DOCKER_HOST": node.docker_host,
        "HARBOR_HA_PROBE_INTERVAL_S": "1.0",
        "HARBOR_HA_PROBE_FALL": "2",
        "HARBOR_HA_BACKOFF_INITIAL_S": "5",
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def allow_mds_commands(cluster: CephCluster, fs_name: str) -> None:
    """The nodes' Ceph user as ``fs authorize`` made it, but allowed MDS commands (``mds
    'allow *'``): harbor-ha evicts a dead node's sessions with it."""
    cluster.admin(
        "auth", "caps", f"client.{CLIENT}", "mon", f"allow r fsname={fs_name}",
        "mds", "allow *", "osd", f"allow rw tag cephfs data={fs_name}",
    )  # fmt: skip


def without_external(compose_file: Path, ext_address: str) -> None:
    """The node's compose file without its postgresql and redis services: core's checks
    pointed at the external ones, the registry's HTTP secret the cluster's."""
    doc = yaml.safe_load(compose_file.read_text())
    services = doc["services"]
    for name in EXTERNAL_SERVICES:
        del services[name]
    for svc in services.values():
        deps = svc.get("depends_on")
        if isinstance(deps, list):
            svc["depends_on"] = [d for d in deps if d not in EXTERNAL_SERVICES]
    services["core"].setdefault("environment", {}).update({
        "POSTGRESQL_ADDRESS": ext_address, "PGPORT": str(PG_PORT),
        "REDIS_ADDRESS": ext_address, "REDIS_PORT": str(REDIS_PORT),
    })  # fmt: skip
    services["registry"].setdefault("environment", {})["REGISTRY_HTTP_SECRET"] = (
        REGISTRY_HTTP_SECRET
    )
    compose_file.write_text(yaml.safe_dump(doc, sort_keys=False))


def masquerade(netns: str) -> None:
    """The node's dockerd runs without iptables: let its containers reach ``ext`` (forwarding
    and a MASQUERADE of the compose network in the node's netns)."""
    ns = ["ip", "netns", "exec", netns]
    sh(*ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh(*ns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", HARBOR_NET,
       "!", "-d", HARBOR_NET, "-j", "MASQUERADE")  # fmt: skip


def prepare_cephfs(st: LabState, node: NodeState) -> None:
    """Harbor's data layout and secrets written once onto the CephFS (what Harbor's prepare
    writes on the data volume): ceph-fuse in ``node``'s netns on NODE/prepare, then unmount."""
    mnt = node.path / "prepare"
    mnt.mkdir(exist_ok=True)
    sh("nsenter", f"--net=/run/netns/{node.netns}", "ceph-fuse", "-c", st.ceph_conf,
       "--id", CLIENT, "-k", st.ceph_keyring, str(mnt), timeout=60)  # fmt: skip
    try:
        for sub in DATA_SUBDIRS:
            (mnt / sub).mkdir(parents=True, exist_ok=True)
        prepare_stack_data(mnt, node.path / "harbor" / "config" / "cert")
    finally:
        sh("umount", str(mnt), timeout=60)
    mnt.rmdir()


def up_shared(
    labdir: Path,
    *,
    prefix: str,
    subnet: str,
    advert_s: float,
    nodes: tuple[str, ...],
    say: Any,
    log_level: str,
    session_timeout_s: int | None = None,
    evict_after_s: float = EVICT_AFTER_S,
) -> LabState:
    """Bring the shared lab up (module doc); on failure everything is torn down."""
    from lab.twonode import down, torn_down_on_failure

    nodes = SHARED_NODES if nodes == ("a", "b") else nodes
    if (labdir / "state.json").exists():
        say(f"lab: tearing down the previous lab in {labdir}")
        down(labdir, say=say)
    labdir.mkdir(parents=True, exist_ok=True)
    prefixlen = ipaddress.ip_network(subnet).prefixlen
    st = LabState(
        prefix=prefix, subnet=subnet, labdir=str(labdir), advert_s=advert_s,
        vip=f"{host(subnet, VIP_HOST)}/{prefixlen}", client_netns=f"{prefix}-cl",
        log_level=log_level, stack="registry", mode="shared", evict_after_s=evict_after_s,
    )  # fmt: skip
    st.save()
    t0 = time.monotonic()
    roles = (*nodes, "ceph", "ext", "lb", "cl")
    with torn_down_on_failure(labdir, st, say):
        make_lab_topology(st, roles, SHARED_HOSTS)
        say(f"lab: netns {prefix}-{{br,{','.join(roles)}}} on {subnet}")
        cluster = start_cluster(
            labdir / "ceph", f"{prefix}-ceph", host(subnet, SHARED_HOSTS["ceph"]),
            image_size_mb=16,
        )  # fmt: skip
        st.ceph_dir, st.ceph_conf = str(cluster.workdir), str(cluster.conf)
        st.ceph_pids = dict(cluster.pids)
        st.save()
        fs = start_cephfs(cluster, session_timeout_s=session_timeout_s)
        allow_mds_commands(cluster, fs.name)
        st.ceph_keyring, st.ceph_pids = str(fs.client_keyring), dict(cluster.pids)
        st.save()
        timeout = "Ceph's default" if session_timeout_s is None else f"{session_timeout_s} s"
        say(f"lab: ceph mon + osd + mds, CephFS {fs.name}, session_timeout {timeout} "
            f"({time.monotonic() - t0:.1f} s)")  # fmt: skip
        ext = host(subnet, SHARED_HOSTS["ext"])
        start_external(st, labdir / "ext", ext)
        say(f"lab: PostgreSQL + Redis in {prefix}-ext at {ext} ({time.monotonic() - t0:.1f} s)")
        v2 = compose_v2_binary()
        compose = v2 if v2 else "/usr/bin/docker-compose"
        for name in nodes:
            address = host(subnet, SHARED_HOSTS[name])
            node = NodeState(name, f"{prefix}-{name}", address, str(labdir / name))
            st.nodes[name] = node
            for path in (node.path, node.run_dir, node.mountpoint):
                path.mkdir(parents=True, exist_ok=True)
        st.save()
        for node in st.nodes.values():
            d = start_dockerd(node.path / "docker", node.netns)
            assert d.proc is not None and d.containerd is not None
            node.pids["dockerd"], node.pids["containerd"] = d.proc.pid, d.containerd.pid
            adopt(d.proc)
            adopt(d.containerd)
            st.save()
            masquerade(node.netns)
            control = install_registry_stack(st, node, d.host, compose)
            (control / "node-name").write_text(node.name)
            without_external(node.compose_file, ext)
            node.env_file.write_text(shared_node_env(st, node, compose))
        say(f"lab: dockerd + registry stack on {', '.join(nodes)} ({time.monotonic() - t0:.1f} s)")
        prepare_cephfs(st, next(iter(st.nodes.values())))
        cfg = start_balancer(st, labdir / "lb", cluster_env(st))
        say(f"lab: HAProxy ({cfg}) + keepalived with the VIP {st.vip} in {prefix}-lb")
        for node in st.nodes.values():
            start_harbor_ha(node)
            st.save()
        say(
            f"lab: harbor-ha (shared) running on {', '.join(nodes)} ({time.monotonic() - t0:.1f} s)"
        )
    return st
