"""The two-node harbor-ha lab on one machine, brought up and torn down: every part real, only
addresses in its own netns (the topology: lab/netns.py; a node: lab/node.py).

``up``: netns -> Ceph mon + OSD in P-ceph -> per node a containerd + dockerd, the Harbor-shaped
images and project, harbor-ha's env file and keepalived's config (``harbor-ha
render-keepalived``) -> ``harbor-ha format`` -> Harbor's secrets written on the image's
filesystem (as Harbor's prepare) -> harbor-ha, then keepalived, on each node.
``up(mode="replicated")`` (lab/replicated.py): netns without P-ceph -> per node a containerd +
dockerd and the Harbor project on the node's local data dir, Harbor's secrets written there ->
``compose up -d`` on each node, until both Harbors serve -> (registry stack) the pair's
credentials file and ``harbor-ha replication setup`` -> env files (HARBOR_HA_MODE=replicated,
the replication watch) and keepalived's configs -> harbor-ha, then keepalived, on each node.
krbd is missing from this kernel, so ``rbd`` is the krbd stand-in lab/krbd_standin.py
(rbd-fuse + loop device, named as such); each node's Ceph client has its own address, so
fencing by address is what production does.

Everything the lab starts is recorded in LABDIR/state.json (PIDs, netns, dirs), so
``down`` cleans up also after a crash of the lab itself; ``down`` also sweeps by prefix.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab.ceph import start_cluster
from lab.cephfs import kill_fuse
from lab.dockerd import compose_v2_binary
from lab.mappings import teardown_mappings
from lab.netns import make_lab_topology
from lab.node import (
    configure_node,
    harbor_ha,
    install_harbor,
    install_node,
    prepare_image,
    start_services,
)
from lab.procs import alive, kill_pid, mounts_under, reap, sh
from lab.replicated import setup_replication, start_harbor, wait_serving
from lab.state import (
    DEFAULT_LABDIR,
    HOSTS,
    MODES,
    NODE_NAMES,
    STACKS,
    VIP_HOST,
    LabState,
    NodeState,
    host,
)


def up(
    labdir: Path = DEFAULT_LABDIR,
    *,
    prefix: str = "hha",
    subnet: str = "10.99.0.0/24",
    advert_s: float = 0.1,
    nodes: tuple[str, ...] = NODE_NAMES,
    say: Any = print,
    log_level: str = "info",
    stack: str = "shape",
    mode: str = "rbd",
    cephfs_session_timeout_s: int | None = None,
    evict_after_s: float | None = None,
) -> LabState:
    """Bring the whole lab up; on failure everything made so far is torn down.

    ``log_level`` is harbor-ha's HARBOR_HA_LOG_LEVEL on both nodes; ``"debug"`` adds one
    ``command`` line (argv, rc, duration_ms) per external command (bench/failover.py uses
    it).  ``stack``: the Harbor project on the nodes, the busybox shape or the registry stack
    of real programs (lab/state.py STACKS).  ``mode``: harbor-ha's mode (lab/state.py MODES);
    "replicated" has no Ceph and runs each node's Harbor on its local data dir all the time.
    ``cephfs_session_timeout_s`` (shared mode): the CephFS's session_timeout (None: Ceph's
    default, 60 s); ``evict_after_s`` (shared mode): HARBOR_HA_SHARED_EVICT_AFTER_S of the
    nodes (None: lab/shared.py's EVICT_AFTER_S; 0: no eviction)."""
    if stack not in STACKS:
        raise ValueError(f"stack {stack!r}: one of {', '.join(STACKS)}")
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
    if mode == "shared":
        from lab.shared import EVICT_AFTER_S, up_shared

        evict = EVICT_AFTER_S if evict_after_s is None else evict_after_s
        return up_shared(labdir, prefix=prefix, subnet=subnet, advert_s=advert_s,
                         nodes=nodes, say=say, log_level=log_level,
                         session_timeout_s=cephfs_session_timeout_s,
                         evict_after_s=evict)  # fmt: skip
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
        vip=f"{host(subnet, VIP_HOST)}/{prefixlen}",
        client_netns=f"{prefix}-c",
        log_level=log_level,
        stack=stack,
        mode=mode,
    )
    st.save()
    t0 = time.monotonic()
    rbd = mode == "rbd"
    roles = tuple(role for role in HOSTS if rbd or role != "ceph")
    with torn_down_on_failure(labdir, st, say):
        make_lab_topology(st, roles)
        say(
            f"lab: network namespaces {prefix}-{{{','.join(('br', *roles))}}} on {subnet} "
            f"({time.monotonic() - t0:.1f} s)"
        )
        if rbd:
            ceph(st, say)
        v2 = compose_v2_binary()
        compose = v2 if v2 else "/usr/bin/docker-compose"
        for name in nodes:
            node = NodeState(
                name=name,
                netns=f"{prefix}-{name}",
                address=host(subnet, HOSTS[name]),
                dir=str(labdir / name),
            )
            st.nodes[name] = node
            for d in (node.path, node.run_dir, *([node.rbd_state] if rbd else []), node.mountpoint):
                d.mkdir(parents=True, exist_ok=True)
        if rbd:
            nodes_on_one_image(st, compose, say, t0)
        else:
            harbor_on_each_node(st, compose, say, t0)
        for name in nodes:
            start_services(st, name)
        say(
            f"lab: harbor-ha + keepalived running on {', '.join(nodes)} "
            f"({time.monotonic() - t0:.1f} s)"
        )
    return st


@contextlib.contextmanager
def torn_down_on_failure(labdir: Path, st: LabState, say: Any) -> Iterator[None]:
    """A lab's bring-up: on any failure (Ctrl-C included) the nodes' logs are copied beside
    ``labdir`` (``down`` removes labdir) and everything made so far is torn down."""
    try:
        yield
    except BaseException:
        kept = labdir.parent / f"{labdir.name}-failed-up"
        say(f"lab: bring-up failed; node logs copied to {kept}; tearing down")
        with contextlib.suppress(Exception):
            collect_logs(st, kept)
        down(labdir, say=say)
        raise


def ceph(st: LabState, say: Any) -> None:
    """The rbd mode's Ceph cluster (mon + memstore OSD) in P-ceph, its PIDs recorded."""
    cluster = start_cluster(
        Path(st.labdir) / "ceph", f"{st.prefix}-ceph", host(st.subnet, HOSTS["ceph"]),
        image_size_mb=256,
    )  # fmt: skip
    st.ceph_dir, st.ceph_conf = str(cluster.workdir), str(cluster.conf)
    no_client_cache(cluster.conf)
    st.ceph_keyring, st.ceph_pids = str(cluster.harbor_keyring), dict(cluster.pids)
    st.save()
    say(f"lab: ceph mon + osd in {st.prefix}-ceph ({cluster.startup_s:.1f} s)")


def nodes_on_one_image(st: LabState, compose: str, say: Any, t0: float) -> None:
    """The rbd mode's nodes: each one's dockerd, Harbor project, env file and keepalived's
    config; then ``harbor-ha format`` of the image on the first node and Harbor's secrets
    written on its filesystem."""
    for node in st.nodes.values():
        install_node(st, node, compose)
    say(f"lab: dockerd + {st.stack} images on each node ({time.monotonic() - t0:.1f} s)")
    first = next(iter(st.nodes.values()))
    harbor_ha(first, "format", "--yes-i-know-this-image-is-new", timeout=120)
    prepare_image(st, first)
    say("lab: image formatted (harbor-ha format), Harbor's secrets written on it")


def harbor_on_each_node(st: LabState, compose: str, say: Any, t0: float) -> None:
    """The replicated mode's nodes: each one's dockerd and Harbor project on its local data dir
    (Harbor's secrets written there), ``compose up -d`` on EACH node, both Harbors serving
    (bounded), with the registry stack the replication set up (endpoint + event-based policy
    on each Harbor, by the real CLI), then each env file (HARBOR_HA_MODE=replicated) and
    keepalived's config."""
    for node in st.nodes.values():
        install_harbor(st, node, compose)
    say(f"lab: dockerd + {st.stack} images on each node ({time.monotonic() - t0:.1f} s)")
    for node in st.nodes.values():
        start_harbor(node, compose)
    wait_serving(st, say=say)
    if st.stack == "registry":
        setup_replication(st, say)
    for node in st.nodes.values():
        configure_node(st, node, compose)
    say("lab: env files (HARBOR_HA_MODE=replicated) and keepalived configs rendered")


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


def collect_logs(st: LabState, dest: Path) -> None:
    """Copy each node's harbor-ha and keepalived logs to ``dest``, with its containers' list
    and each container's log (``docker logs -t``; what PostgreSQL said, for one)."""
    dest.mkdir(parents=True, exist_ok=True)
    for node in st.nodes.values():
        for f in (node.log, node.ka_log):
            if f.exists():
                shutil.copy(f, dest / f"{node.name}-{f.name}")
        if not (node.pids.get("dockerd") and alive(node.pids["dockerd"])):
            continue
        docker = ("docker", "-H", node.docker_host)
        ps = sh(*docker, "ps", "-a", "--format", "{{.Names}} {{.Status}}", check=False)
        (dest / f"{node.name}-containers.txt").write_text(ps.stdout + ps.stderr)
        for line in ps.stdout.splitlines():
            name = line.split(" ", 1)[0]
            res = sh(*docker, "logs", "-t", name, check=False, timeout=30)
            (dest / f"{node.name}-container-{name}.log").write_text(res.stdout + res.stderr)


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
        for pid in st.extra_pids.values():  # the shared lab's HAProxy, PostgreSQL, ...
            kill_pid(pid, signal.SIGTERM, wait_s=10)
        for node in st.nodes.values():
            for mnt in mounts_under(str(node.mountpoint)):
                sh("umount", "-l", mnt, check=False)
            kill_fuse(node.mountpoint)  # the shared lab's ceph-fuse
            teardown_mappings(node.rbd_state)
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
    for mnt in mounts_under(root):
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


@contextlib.contextmanager
def lab_session(labdir: Path) -> Iterator[LabState]:
    st = LabState.load(labdir)
    try:
        yield st
    finally:
        st.save()
