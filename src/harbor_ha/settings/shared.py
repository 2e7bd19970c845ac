"""Settings of the shared mode (N Harbors on one shared filesystem, or on object storage,
behind a load balancer); the other modes ignore them.  Harbor's data volume is
``mountpoint`` (the filesystem settings); the backoff before a node rejoins after a failure
is the machine's backoff (``backoff_initial_s``, ``backoff_max_s``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, NonNegativeFloat

from harbor_ha.settings.units import Seconds

SharedFsType = Literal["", "ceph", "ceph-fuse", "nfs", "nfs4", "none"]
SHARED_FS_TYPES = ("ceph", "ceph-fuse", "nfs", "nfs4", "none")
"""The shared filesystems a node mounts: CephFS with the kernel client or with ceph-fuse,
NFS; ``none`` for the object-storage variant (Harbor's registry keeps its blobs in S3, Swift
or Ceph RGW: nothing to mount)."""


class SharedSettings(BaseModel):
    """What the shared filesystem is and how a node leaves the load balancer's pool."""

    shared_fs_type: SharedFsType = Field(
        default="",
        description=(
            "Shared mode, required: the shared filesystem at the mountpoint. ceph: CephFS "
            "with the kernel client (mount -t ceph); ceph-fuse: CephFS with ceph-fuse (as "
            "HARBOR_HA_CEPH_USER, with HARBOR_HA_CEPH_CONF and HARBOR_HA_CEPH_KEYRING when "
            "set); nfs, nfs4: mount -t nfs / nfs4; none: the object-storage variant (the "
            "registry's blobs in S3/Swift/RGW), nothing is mounted and readiness includes "
            "the registry reaching its storage (the health API's registry component). "
            "Never fsck'ed, never formatted."
        ),
    )
    shared_fs_source: str = Field(
        default="",
        description=(
            "Shared mode, required unless the type is none: what is mounted, exactly as "
            "/proc/self/mountinfo shows it, since the mount is verified against it: "
            "`mon1:6789,mon2:6789:/harbor` (ceph, ceph-fuse: the monitors, then the "
            "CephFS path), `server:/export` (nfs). ceph-fuse mounts show the source "
            "`ceph-fuse` whatever the path: only the type is verified for them."
        ),
    )
    shared_fs_options: str = Field(
        default="",
        description=(
            "Shared mode: options for mount -o (ceph: e.g. name=harbor,secretfile=...; nfs: "
            "e.g. hard,vers=4.1), or FUSE options for ceph-fuse -o. Empty: none."
        ),
    )
    ceph_fuse_bin: str = Field(
        default="ceph-fuse",
        description="Shared mode: the ceph-fuse executable (HARBOR_HA_SHARED_FS_TYPE=ceph-fuse).",
    )
    drain_wait_s: Seconds = Field(
        default=10.0,
        description=(
            "Shared mode: seconds a draining node keeps Harbor running after its readiness "
            "and /serving turned 503, before it stops Harbor: the load balancer's detection "
            "time. 10 s: HAProxy's default health check (inter 2 s, fall 3) takes a node out "
            "within 6 s, plus one more interval and the requests in flight. Set it to the "
            "balancer's check interval x its fall count + one interval."
        ),
    )
    shared_evict_after_s: NonNegativeFloat = Field(
        default=0.0,
        description=(
            "Shared mode on CephFS (ceph, ceph-fuse), with HARBOR_HA_NODES of three nodes or "
            "more: seconds another node's harbor-ha may go unanswered before this node evicts "
            "that node's CephFS sessions at the MDS (the sessions from its address in "
            "HARBOR_HA_NODES). A node that dies with its CephFS client otherwise leaves the "
            "others waiting for the capabilities it held until the MDS times its session out "
            "(the filesystem's session_timeout: 60 s by default, 30 s at the least): pushes "
            "and pulls stall for that long. Eviction blocklists the client, a fence: a node "
            "evicts only while it reaches a majority of the nodes (itself included), so a "
            "node cut from the others never evicts them. 0 (the default): never; evicting "
            "needs HARBOR_HA_CEPHFS_NAME and a Ceph user (HARBOR_HA_CEPH_USER) allowed MDS "
            "commands. Set it above the balancer's detection time: 10 s is a fair start."
        ),
    )
    cephfs_name: str = Field(
        default="",
        description=(
            "Shared mode on CephFS: the filesystem's name (`ceph fs ls`), whose rank 0 MDS "
            "evicts a dead node's sessions (`ceph tell mds.NAME:0 ...`). Required with "
            "HARBOR_HA_SHARED_EVICT_AFTER_S."
        ),
    )
