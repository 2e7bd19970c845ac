"""The harbor-ha lab: a two-node cluster on one machine, every part real (keepalived, Ceph,
dockerd, the product's own CLI), only addresses inside its own network namespaces.

Not part of the product (not in its wheel): it is run from the repository top, where tests/
(pytest's ``pythonpath = ["."]``), bench/ and scripts/demo (``python -m lab``) import it.

Modules, from the bottom up:

    procs.py         run a command, spawn/kill/reap the lab's own processes, mounts under a path
    state.py         the lab's fixed layout (addresses, names) and its record LABDIR/state.json
    netns.py         netns, bridge + veth topology, reaching into a netns (thread, Runner)
    ceph.py          a single-node Ceph cluster (mon + memstore OSD), a test image on it
    krbd_standin.py  the ``rbd`` CLI stand-in for krbd (rbd-fuse + loop device), an executable
    mappings.py      the stand-in's mappings: one state dir per simulated node, forced teardown
    dockerd.py       a private containerd + dockerd, optionally in a netns; compose binaries
    harbor_shape/    the Harbor-shaped compose project (busybox image + compose template)
    registry_stack/  the Harbor-like stack of real programs (its core replicates with skopeo)
    harbor_api.py    Harbor's replication API (in memory; the registry stack's core runs it)
    keepalived.py    real keepalived in a netns (command line, one process, node settings)
    loopdev.py       loop devices, ext4 on them, real damage, a device that fails with EIO
    node.py          one lab node: its dockerd + Harbor shape, harbor-ha, keepalived, queries
    replicated.py    the replicated mode: Harbor started on each node by the lab, serving checks,
                     the replication setup (registry stack)
    pair_images.py   the replicated pair's images: pushes, what each node has, its executions
    partitions.py    iptables cuts between the netns, and heal
    twonode.py       up / down of the whole two-node lab
    shared.py        the shared mode's lab: three nodes on one CephFS (ceph-fuse) behind HAProxy
    external.py      the shared lab's external PostgreSQL and Redis (Debian's, in their netns)
    balancer.py      the shared lab's HAProxy + keepalived with the VIP (harbor-ha's renders)
    shared_faults.py a shared node drained, killed, unhealthy or cut from CephFS under load
    client.py        the client: HTTPS to Harbor through the VIP, from its own netns
    timeline.py      the nodes' JSON logs read back as a failover timeline
    demo.py          the demo (``scripts/demo``): kill the master, print the failover live
    __main__.py      ``python -m lab COMMAND`` (up, status, kill-master, ..., down, demo)

The two-node lab's operations are re-exported here, so a test reads ``lab.up(...)``,
``lab.partition(st)``, ``lab.status(st, "a")``.
"""

from lab.node import (
    STATELESS,
    harbor_ha,
    install_node,
    kill_services,
    mapped_here,
    masters,
    mounted_here,
    node_env,
    rbd_as_harbor,
    running_all,
    running_containers,
    set_unhealthy,
    start_harbor_ha,
    start_keepalived,
    start_services,
    status,
    vip_holders,
)
from lab.partitions import heal, isolate_from_ceph, partition
from lab.procs import LabError, alive, kill_pid, reap, sh, spawn
from lab.state import (
    DEFAULT_LABDIR,
    HARBOR_HA,
    HOSTS,
    HTTPS_PORT,
    MODES,
    NODE_NAMES,
    PROJECT,
    STACKS,
    LabState,
    NodeState,
)
from lab.twonode import collect_logs, down, lab_session, up

__all__ = [
    "DEFAULT_LABDIR",
    "HARBOR_HA",
    "HOSTS",
    "HTTPS_PORT",
    "MODES",
    "NODE_NAMES",
    "PROJECT",
    "STACKS",
    "STATELESS",
    "LabError",
    "LabState",
    "NodeState",
    "alive",
    "collect_logs",
    "down",
    "harbor_ha",
    "heal",
    "install_node",
    "isolate_from_ceph",
    "kill_pid",
    "kill_services",
    "lab_session",
    "mapped_here",
    "masters",
    "mounted_here",
    "node_env",
    "partition",
    "rbd_as_harbor",
    "reap",
    "running_all",
    "running_containers",
    "set_unhealthy",
    "sh",
    "spawn",
    "start_harbor_ha",
    "start_keepalived",
    "start_services",
    "status",
    "up",
    "vip_holders",
]
