"""`harbor-ha check`: everything that can be checked without touching the image.  Per mode:
the replicated mode has no Ceph, lease or image tools to check, and its data volume is a
directory that must exist; the shared mode has no keepalived, Ceph image or lease: its
shared filesystem's tools and what is mounted at the mountpoint.  With HARBOR_HA_NODES, the
cluster's consistency across nodes (:mod:`harbor_ha.commands.cluster`)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

from harbor_ha.ceph import Ceph
from harbor_ha.ceph.errors import CephError
from harbor_ha.ceph.mds import mds_sessions_readable
from harbor_ha.commands.cluster import cluster_findings
from harbor_ha.compose import Compose
from harbor_ha.compose.install import install_findings
from harbor_ha.compose.parse import service_blocks
from harbor_ha.filesystem.mounted import mount_at
from harbor_ha.filesystem.shared import spec_of
from harbor_ha.filesystem.shared_spec import MountFinding
from harbor_ha.haproxy.render import detection_s
from harbor_ha.keepalived.render import check_config
from harbor_ha.lease.check import check_lease
from harbor_ha.machine import Mode
from harbor_ha.peer import PeerUnreachable, peer_status
from harbor_ha.probes.containers import ContainerProbe
from harbor_ha.replication.credentials import CredentialsError, pair_for
from harbor_ha.runner import ProcessRunner, Runner
from harbor_ha.settings import Settings

Finding = tuple[str, str]  # (OK | WARN | FAIL, message)


def _binaries(s: Settings) -> list[Finding]:
    out: list[Finding] = []
    needed = [("docker", s.docker_bin)]
    if s.mode is not Mode.SHARED:  # keepalived has no say in the shared mode
        needed.append(("keepalived", s.keepalived_bin))
    if s.mode is Mode.SHARED and not s.object_storage:
        needed += [("mount", s.mount_bin), ("umount", s.umount_bin), ("chattr", s.chattr_bin)]
        if s.shared_fs_type == "ceph-fuse":
            needed.append(("ceph-fuse", s.ceph_fuse_bin))
        else:  # mount -t ceph / nfs needs its helper (mount.ceph, mount.nfs)
            helper = "mount." + s.shared_fs_type.removesuffix("4")
            needed.append((helper, helper))
    if s.mode is Mode.RBD:  # the image's tools
        needed += [
            ("rbd", s.rbd_bin), ("ceph", s.ceph_bin), ("rados", s.rados_bin),
            ("mount", s.mount_bin), ("umount", s.umount_bin), ("fsck", s.fsck_bin),
            ("blkid", s.blkid_bin), ("chattr", s.chattr_bin),
        ]  # fmt: skip
    for what, name in needed:
        if shutil.which(name) is None:
            out.append(("FAIL", f"{what}: executable {name!r} not found on PATH"))
    return out


def _paths(s: Settings) -> list[Finding]:
    out: list[Finding] = []
    mp = s.mountpoint
    if mp.exists() and not mp.is_dir():
        out.append(("FAIL", f"mountpoint {mp} exists and is not a directory"))
    elif not mp.exists() and (s.mode is Mode.RBD or s.mode is Mode.SHARED):
        out.append(("WARN", f"mountpoint {mp} does not exist yet (created at first mount)"))
    elif not mp.exists():
        out.append(("FAIL", f"data volume {mp} does not exist (the replicated mode's Harbor "
                    "keeps its data there)"))  # fmt: skip
    fifo = s.keepalived_fifo
    if fifo.exists() and not stat.S_ISFIFO(fifo.stat().st_mode):
        out.append(("FAIL", f"keepalived_fifo {fifo} exists and is not a FIFO"))
    for f in (s.priority_file, s.fault_file):
        parent = f.parent
        if parent.exists() and not parent.is_dir():
            out.append(("FAIL", f"track file directory {parent} is not a directory"))
    if not s.compose_file.is_file():
        out.append(("FAIL", f"compose file {s.compose_file} not found"))
    return out


async def _install(settings: Settings, compose: Compose) -> list[Finding]:
    """The Harbor install dir beside the compose file: Harbor's services, harbor.yml's
    data_volume, the secrets on the data volume."""
    harbor_yml = settings.compose_file.parent / "harbor.yml"
    text = harbor_yml.read_text() if harbor_yml.is_file() else None
    services = service_blocks(await compose.config())
    # The replicated mode's data volume is a plain directory, always there (and the shared
    # mode's object-storage variant's: its blobs are elsewhere).
    mounted = (
        settings.mode is Mode.REPLICATED
        or settings.object_storage
        or mount_at(settings.mountpoint) is not None
    )
    return install_findings(text, services, settings.mountpoint, mounted, Path.exists)


async def peer_name_clash(s: Settings) -> list[Finding]:
    """The peer's /status (``peer_http_url``) names this node's own ``node_name``: the two
    would share the lease's cookie, and each would break the other's live lock as its own
    stale one (every VIP move then steals the lease from a renewing master and fences it).
    A peer that does not answer is a warning: the check could not be made."""
    if not s.peer_url:
        return []
    try:
        status = await peer_status(s.peer_url, s.peer_timeout_s)
    except PeerUnreachable as exc:
        return [("WARN", f"peer {s.peer_url}: cannot compare node names: {exc}")]
    if status.get("node") == s.node_name:
        return [
            (
                "FAIL",
                f"the peer at {s.peer_url} is also named {s.node_name!r}: the lease's "
                "cookie names the node; set HARBOR_HA_NODE_NAME differently on each node",
            )
        ]
    return []


def shared_mount(s: Settings) -> list[Finding]:
    """The shared mode: what is mounted at the mountpoint, against the configured shared
    filesystem (the daemon mounts it; another filesystem there is never unmounted)."""
    spec = spec_of(s)
    if not spec.mounts:
        return [("OK", "shared: object storage, nothing to mount (readiness includes the "
                 "registry reaching its storage)")]  # fmt: skip
    found, why = spec.finding(mount_at(s.mountpoint))
    if found is MountFinding.OURS:
        return [("OK", f"shared: {spec.describe()} mounted")]
    if found is MountFinding.NOT_MOUNTED:
        return [("OK", f"shared: {why} (the daemon mounts {spec.describe()})")]
    return [("FAIL", f"shared: {why}")]


def drain_covers_detection(s: Settings) -> list[Finding]:
    """The shared mode: a drain must wait at least the load balancer's detection time (the
    HAProxy render's checks, from the same settings), or Harbor stops while the balancer
    still sends new requests to it."""
    need = detection_s(s)
    if s.drain_wait_s < need:
        return [("WARN", f"shared: HARBOR_HA_DRAIN_WAIT_S={s.drain_wait_s:g} s is shorter than "
                 f"the load balancer's detection time, {need:g} s (HARBOR_HA_LB_CHECK_*: fall x "
                 "interval + timeout): requests sent during a drain's last "
                 f"{need - s.drain_wait_s:g} s fail")]  # fmt: skip
    return [("OK", f"shared: a drain waits {s.drain_wait_s:g} s >= the load balancer's "
             f"detection time, {need:g} s")]  # fmt: skip


def replication_credentials(s: Settings) -> list[Finding]:
    """The replicated mode's credentials file (what the daemon's replication watch and
    `harbor-ha replication setup` read): missing is a warning (nothing watches replication),
    wrong (loose mode, incomplete, no section for this node) a failure."""
    path = s.replication_credentials_file
    if not path.exists():
        return [("WARN", f"replication: {path} missing: the daemon does not watch "
                 "replication (docs/runbook.md, \"Replication between two Harbors\")")]  # fmt: skip
    try:
        here, peer, _ = pair_for(path, s.node_name)
    except CredentialsError as exc:
        return [("FAIL", f"replication: {exc}")]
    return [("OK", f"replication: {path} names this node [{here.name}] and its peer "
             f"[{peer.name}] ({peer.url})")]  # fmt: skip


async def _ceph(settings: Settings, runner: ProcessRunner) -> list[Finding]:
    findings: list[Finding] = []
    ceph = Ceph(settings, runner)
    try:
        findings += [("FAIL", f"ceph: {p}") for p in await ceph.check_access()]
    except Exception as exc:
        findings.append(("FAIL", f"ceph: {exc}"))
    problems, notes = await check_lease(settings, runner)
    return findings + [("FAIL", f"lease: {p}") for p in problems] + [("OK", n) for n in notes]


async def eviction_access(settings: Settings, runner: Runner) -> list[Finding]:
    """With HARBOR_HA_SHARED_EVICT_AFTER_S: can this node's Ceph user list the MDS's
    sessions (what an eviction starts with)?  A refusal FAILs: a dead node would then stall
    the others until the MDS's own session timeout."""
    if settings.shared_evict_after_s == 0:
        return []
    mds = f"mds.{settings.cephfs_name}:0"
    try:
        n = await mds_sessions_readable(runner, settings)
    except CephError as exc:
        return [("FAIL", f"cephfs eviction: {settings.ceph_user} cannot run MDS commands at "
                 f"{mds} (it needs mds 'allow *'): {exc}")]  # fmt: skip
    return [("OK", f"cephfs eviction: {mds} lists {n} session(s) to {settings.ceph_user}; a "
             f"node unanswered for {settings.shared_evict_after_s:g} s is evicted")]  # fmt: skip


async def _keepalived(settings: Settings, runner: ProcessRunner) -> list[Finding]:
    conf: Path = settings.keepalived_conf
    if not conf.is_file():
        return [("WARN", f"keepalived config {conf} missing: run render-keepalived")]
    try:
        problems = await check_config(runner, settings, conf)
    except Exception as exc:
        return [("FAIL", f"keepalived: {exc}")]
    return [("FAIL", f"keepalived: {p}") for p in problems]


async def preflight(settings: Settings) -> list[Finding]:
    """Everything that can be checked without touching the image; FAIL items block a takeover."""
    runner = ProcessRunner()
    findings = _binaries(settings) + _paths(settings)
    if settings.mode is Mode.RBD:  # Ceph, the image and the lease
        findings += await _ceph(settings, runner)
        findings += await peer_name_clash(settings)
    elif settings.mode is Mode.SHARED:
        findings += shared_mount(settings) + drain_covers_detection(settings)
        findings += await eviction_access(settings, runner)
    else:
        findings += replication_credentials(settings)
    if settings.mode is not Mode.SHARED:  # no keepalived on a node of the shared mode
        findings += await _keepalived(settings, runner)
    probe = ContainerProbe(settings)
    try:
        if not await probe.ping():
            findings.append(("FAIL", f"docker: engine at {settings.docker_host} not answering"))
        elif settings.compose_file.is_file():
            compose = Compose(settings, runner)
            problems = await compose.validate()
            findings += [("FAIL", f"compose: {p}") for p in problems]
            if not problems:
                findings += [
                    ("WARN", f"compose: service {name!r} binds {settings.mountpoint} itself and "
                     "nothing below it: after a dockerd restart its restart policy can start it "
                     "on the bare mountpoint; bind a sub-directory too (as Harbor's core binds "
                     "ca_download)")
                    for name in await compose.bare_startable()
                ]  # fmt: skip
                findings += await _install(settings, compose)
            missing = await probe.missing_images(await compose.images())
            if missing:
                findings.append(("FAIL", "harbor images missing: " + ", ".join(missing)))
    except Exception as exc:
        findings.append(("FAIL", f"docker/compose: {exc}"))
    finally:
        await probe.close()
    findings += await cluster_findings(settings)
    return findings
