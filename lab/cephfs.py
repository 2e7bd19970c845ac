"""A real CephFS on the lab's single-node cluster (lab/ceph.py): one MDS, two pools, one
filesystem, and a client user whose caps reach only that filesystem.

    fs = start_cephfs(cluster)          # MDS up:active, filesystem "harborfs"
    ...
    stop_cephfs(fs)                     # kill the MDS by its PID

This machine's kernel has no ceph module, so the kernel client cannot mount it; ceph-fuse
(FUSE works here) is the real client the tests mount it with.  No mgr (like lab/ceph.py): the
MDS' readiness is read from the monitor's FSMap (``ceph fs dump``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab.ceph import CephCluster, CephLabError, _spawn

READY_TIMEOUT_S = 60.0
FS_NAME = "harborfs"
CLIENT = "harborfs"
"""The client user of the filesystem (client.harborfs), with ``fs authorize``'s caps."""


@dataclass
class CephFS:
    cluster: CephCluster
    name: str
    client: str
    client_keyring: Path
    mds: subprocess.Popen[bytes]
    startup_s: float = 0.0

    @property
    def mon_addr(self) -> str:
        return self.cluster.mon_addr


def _mds_conf(cluster: CephCluster) -> None:
    """Add the MDS' section to the cluster's own ceph.conf (once)."""
    w = cluster.workdir
    text = cluster.conf.read_text(encoding="utf-8")
    if "[mds]" in text:
        return
    text += (
        f"\n[mds]\nmds data = {w}/mds.$id\nkeyring = {w}/mds.$id/keyring\n"
        f"admin socket = {w}/run/$name.asok\nlog file = {w}/log/$name.log\n"
        f"mds cache memory limit = 268435456\n"
    )
    cluster.conf.write_text(text, encoding="utf-8")


def _active(cluster: CephCluster, name: str) -> bool:
    dump = json.loads(cluster.admin("fs", "dump", "--format", "json").stdout)
    for fs in dump.get("filesystems", []):
        mdsmap = fs.get("mdsmap", {})
        if mdsmap.get("fs_name") != name:
            continue
        return any(i.get("state") == "up:active" for i in mdsmap.get("info", {}).values())
    return False


def start_cephfs(
    cluster: CephCluster, name: str = FS_NAME, *, session_timeout_s: int | None = None
) -> CephFS:
    """Start mds.a, create the pools and the filesystem (its session_timeout set when
    given: how long the MDS waits for a silent client before it takes back its capabilities),
    wait until the MDS is active, and create client.harborfs (``ceph fs authorize NAME
    client.harborfs / rw``)."""
    started = time.monotonic()
    _mds_conf(cluster)
    mds_dir = cluster.workdir / "mds.a"
    mds_dir.mkdir(exist_ok=True)
    keyring = mds_dir / "keyring"
    cluster.admin(
        "auth", "get-or-create", "mds.a", "mon", "allow profile mds", "osd", "allow rwx",
        "mds", "allow", "-o", str(keyring),
    )  # fmt: skip
    cluster.admin("osd", "pool", "create", f"{name}_meta", "8", "8")
    cluster.admin("osd", "pool", "create", f"{name}_data", "8", "8")
    cluster.admin("fs", "new", name, f"{name}_meta", f"{name}_data")
    if session_timeout_s is not None:
        cluster.admin("fs", "set", name, "session_timeout", str(session_timeout_s))
    mds = _spawn(
        [*cluster.ns_prefix(), "ceph-mds", "-c", str(cluster.conf), "-i", "a", "-f"],
        cluster.workdir / "log" / "mds.a.out",
    )
    cluster.procs["mds.a"] = mds
    cluster.pids["mds.a"] = mds.pid
    fs = CephFS(cluster, name, CLIENT, cluster.workdir / f"keyring.{CLIENT}", mds)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _active(cluster, name):
            if mds.poll() is not None:
                raise CephLabError(f"ceph-mds exited with {mds.returncode}; see {cluster.workdir}")
            if time.monotonic() > deadline:
                raise CephLabError(f"no active MDS for {name} after {READY_TIMEOUT_S:g} s")
            time.sleep(0.2)
        out = cluster.admin("fs", "authorize", name, f"client.{CLIENT}", "/", "rw").stdout
        fs.client_keyring.write_text(out, encoding="utf-8")
        fs.client_keyring.chmod(0o600)
    except BaseException:
        stop_cephfs(fs)
        raise
    fs.startup_s = time.monotonic() - started
    return fs


def stop_cephfs(fs: CephFS) -> None:
    """Kill the MDS we started (by its PID) and wait for it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(fs.mds.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        fs.mds.wait(timeout=10)
    fs.cluster.procs.pop("mds.a", None)
    fs.cluster.pids.pop("mds.a", None)


def fuse_pids(mountpoint: Path) -> list[int]:
    """The ceph-fuse processes serving ``mountpoint`` (its path is on their command line):
    the ones a test's mount started, to kill by PID."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"ceph-fuse") and str(mountpoint).encode() in argv:
            pids.append(int(proc.name))
    return pids


def kill_fuse(mountpoint: Path) -> list[int]:
    """SIGKILL the ceph-fuse processes of ``mountpoint`` (see :func:`fuse_pids`)."""
    pids = fuse_pids(mountpoint)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids
