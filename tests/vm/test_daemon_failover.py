"""The daemon's own promotion and demotion on the real krbd, across two VM nodes.

In each VM: the real keepalived (VRRP on the lab bridge), ``harbor-ha run`` from this checkout,
dockerd with a one-service Harbor-shaped project, and every storage step on the real krbd
(lab/vm/daemon_node.py).  The client writes through the VIP from the bridge's netns; a write is
acknowledged only once the service's fdatasync returned.  One cluster serves the module's
scenarios in turn (a boot and two promotions cost minutes under TCG): each finds the current
master, hurts it, checks the takeover, and lets the hurt node rejoin as BACKUP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.vm import daemon_node as dn
from lab.vm import net
from lab.vm.daemon_node import Node
from lab.vm.twonode import on_each
from tests.vm.conftest import VmLab

IMAGE = "daemon"
OSD_TIMEOUT_S = float(dn.OSD_REQUEST_TIMEOUT_S)
TAKEOVER_BOUND_S = 300.0
"""The taker's whole promotion after the master is gone: VRRP dead interval (~3.5 s), fence,
map (krbd breaks the lock), fsck, mount, compose up, healthy; 50-70 s measured under TCG."""

# A master cut from Ceph: the monitor sees the storage probe fail (storage debounce: two
# probes of probe_interval_s + probe_timeout_s), then the demotion runs stop, unmount and
# unmap, each bounded by its timeout; a step past its bound ends FENCED_SELF.
CUT_BOUND_S = (
    2 * (float(dn.NODE_SETTINGS["PROBE_INTERVAL_S"]) + float(dn.NODE_SETTINGS["PROBE_TIMEOUT_S"]))
    + float(dn.NODE_SETTINGS["STOP_TIMEOUT_S"])
    + float(dn.NODE_SETTINGS["UNMOUNT_TIMEOUT_S"])
    + float(dn.NODE_SETTINGS["UNMAP_TIMEOUT_S"])
    + 30.0  # the status poll and the guest's own slowness under TCG
)


@dataclass
class Cluster:
    lab: VmLab
    nodes: dict[str, Node]

    def states(self) -> dict[str, str]:
        return {name: node.state() for name, node in self.nodes.items()}

    def settled(self) -> tuple[str, str] | None:
        """(master, backup) once one node is MASTER and the other a ready BACKUP."""
        st = {name: node.status() for name, node in self.nodes.items()}
        masters = [n for n, s in st.items() if s and s["state"] == "MASTER"]
        backups = [n for n, s in st.items()
                   if s and s["state"] == "BACKUP" and s["standby_ready"] is True]  # fmt: skip
        if len(masters) == 1 and len(backups) == 1:
            return masters[0], backups[0]
        return None

    def wait_settled(self, timeout_s: float = TAKEOVER_BOUND_S) -> tuple[str, str]:
        pair: tuple[str, str] = dn.wait_for(
            f"one MASTER and one ready BACKUP (now {self.states()})", self.settled, timeout_s
        )
        return pair

    def write(self, prefix: str, n: int) -> list[str]:
        """``n`` client writes through the VIP; the acknowledged records."""
        return [
            r for r in (f"{prefix}{i}" for i in range(n)) if dn.write_record(self.lab, dn.VIP, r)
        ]

    def records(self, name: str) -> list[str]:
        return self.nodes[name].sh(f"cat {dn.MOUNTPOINT}/records").check().stdout.split()

    def wait_master(self, name: str, timeout_s: float = TAKEOVER_BOUND_S) -> float:
        started = time.monotonic()
        dn.wait_for(f"{name} MASTER", lambda: self.nodes[name].state() == "MASTER", timeout_s)
        return time.monotonic() - started


@pytest.fixture(scope="module")
def cluster(vm_lab: VmLab) -> Iterator[Cluster]:
    """The image formatted once; docker, the project, env and keepalived in both VMs; both
    daemons and keepalived started; one MASTER and one ready BACKUP.  Teardown stops all of it
    in the guests by PID, unmounts and unmaps, and removes the image, also after a failure."""
    vm_lab.cluster.create_image(IMAGE, 64)
    nodes: dict[str, Node] = {}
    try:
        s = vm_lab.settings(IMAGE, "vm-a", mountpoint=Path(dn.MOUNTPOINT))
        r = vm_lab.steps("vm-a", s, "map", "format", "unmap")
        assert all(x["ok"] for x in r), r

        def install(name: str) -> None:
            nodes[name] = dn.install(vm_lab, name, IMAGE)
            nodes[name].start()

        on_each(list(vm_lab.vms), install)
        dn.client_setup(vm_lab)
        c = Cluster(vm_lab, nodes)
        started = time.monotonic()
        print(f"\nsettled {c.wait_settled()} in {time.monotonic() - started:.1f} s")
        yield c
    finally:
        for node in nodes.values():
            if node.lab.vms[node.name].alive():
                print(f"--- {node.name} harbor-ha log tail ---\n{node.log_tail(30)}")
                dn.teardown(node)
        vm_lab.cluster.remove_image(IMAGE)


def _taker_fsck_clean(node: Node) -> None:
    """The taker's own e2fsck before it mounted (the mount step) exited 0 or 1; and now, with
    the filesystem frozen (journal flushed), `e2fsck -fn` of the device finds nothing."""
    done = node.log_lines("fsck_done")
    assert done and done[-1]["rc"] in (0, 1), done
    dev = node.status()
    assert dev and dev["device"], dev
    r = node.sh(f"fsfreeze -f {dn.MOUNTPOINT} && e2fsck -fn {dev['device']}; rc=$?; "
                f"fsfreeze -u {dn.MOUNTPOINT}; exit $rc", timeout_s=180)  # fmt: skip
    assert r.rc == 0, r


@pytest.mark.timeout(900)
def test_master_cut_from_ceph_ends_within_its_bound(cluster: Cluster) -> None:
    """The master's link cut (Ceph and VRRP gone): a writer's fsync there fails (EIO) within
    about osd_request_timeout (the tier maps with 20 s) instead of hanging in D state; the
    peer takes over and serves every acknowledged record; the cut master's daemon keeps
    answering throughout and ends BACKUP or FENCED_SELF within CUT_BOUND_S (storage probe,
    stop, unmount, unmap bounds); a FENCED_SELF reason names the step and, for a step past its
    bound, the command that did not return (and its D state when it sat in the kernel). After
    the link heals the node rejoins as a ready BACKUP (the next scenario then promotes it: its
    map after the fence works, noshare)."""
    master, taker = cluster.wait_settled()
    acked = cluster.write("cut-pre", 2)
    assert len(acked) == 2, acked
    vm = cluster.lab.vms[master]
    cut_at = time.monotonic()
    net.cut(cluster.lab.bridge_ns, vm.tap)
    writer = vm.agent.start(
        ["dd", "if=/dev/zero", f"of={dn.MOUNTPOINT}/after-cut", "bs=64k", "count=4",
         "conv=fsync", "status=none"],
        timeout_s=OSD_TIMEOUT_S * 4,
    )  # fmt: skip
    seen: list[tuple[float, str, str]] = []
    try:

        def ended() -> bool:
            st = cluster.nodes[master].status()
            assert st is not None, f"{master}'s daemon did not answer while cut: {seen}"
            seen.append((round(time.monotonic() - cut_at, 1), st["state"], ""))
            return bool(st["state"] in ("BACKUP", "FENCED_SELF"))

        dn.wait_for(f"{master} BACKUP or FENCED_SELF", ended, CUT_BOUND_S + 60, 3.0)
        ended_s = time.monotonic() - cut_at
        final = cluster.nodes[master].status()
        assert final is not None
        print(f"\ncut: {master} {final['state']} {ended_s:.1f} s after the cut; states {seen}")
        assert ended_s <= CUT_BOUND_S, (ended_s, CUT_BOUND_S)
        if final["state"] == "FENCED_SELF":
            reason = final["last_transitions"][-1]["reason"]
            print(f"FENCED_SELF reason: {reason}")
            assert reason.startswith(("stop", "unmount", "unmap")), reason
            if "timed out" in reason:  # the reason names what did not return, D state or not
                assert "; did not return: " in reason, reason
        w = writer.wait()
        print(f"fsync on the cut node: rc {w.rc} in {w.duration_s:.1f} s: {w.stderr.strip()}")
        assert not w.timed_out and not w.ok, w
        assert w.duration_s <= OSD_TIMEOUT_S * 2 + 10, w.duration_s
        dn.wait_for(f"{taker} MASTER", lambda: cluster.nodes[taker].state() == "MASTER", 200)
        new = cluster.write("cut-post", 1)
        assert len(new) == 1, new
        recs = cluster.records(taker)
        assert [r for r in recs if r.startswith("cut-")] == acked + new, recs
    finally:
        net.heal(cluster.lab.bridge_ns, vm.tap)
    healed_at = time.monotonic()
    assert cluster.wait_settled() == (taker, master)
    print(f"{master} a ready BACKUP {time.monotonic() - healed_at:.1f} s after the heal")


@pytest.mark.timeout(900)
def test_crash_of_master_with_live_ceph_client(cluster: Cluster) -> None:
    """kill -9 of the master's harbor-ha and keepalived (its krbd mapping, mount and Harbor
    stay): the peer's daemon takes over at its first attempt (the lease: the dead holder
    stopped renewing; fence, map, fsck, mount, start;
    after the cut scenario that peer is the node that was fenced: noshare); the old side's writes
    are not acknowledged; every acknowledged record is on the taker, in order; the taker's
    filesystem is clean. The old node, restarted as systemd would, demotes what it had left
    (stop, unmount, unmap) and rejoins as a ready BACKUP."""
    master, taker = cluster.wait_settled()
    acked = cluster.write("crash-pre", 3)
    assert len(acked) == 3, acked
    before = len(cluster.nodes[taker].transitions())
    cluster.nodes[master].kill()
    took = cluster.wait_master(taker)
    promotion = cluster.nodes[taker].transitions()[before:]
    path = ["LEASING", "FENCING", "MAPPING", "MOUNTING", "STARTING", "MASTER"]
    assert [t["to"] for t in promotion] == path, promotion
    print(f"\ncrash: {taker} MASTER {took:.1f} s after the kill of {master}'s services")
    old = dn.client_get(cluster.lab, cluster.lab.vms[master].ip, "/cgi-bin/write?r=crash-old")
    assert old != "ok crash-old", old
    new = cluster.write("crash-post", 2)
    assert len(new) == 2, new
    recs = cluster.records(taker)
    assert [r for r in recs if r.startswith("crash-")] == acked + new, recs
    _taker_fsck_clean(cluster.nodes[taker])
    cluster.nodes[master].start()
    assert cluster.wait_settled() == (taker, master)


@pytest.mark.timeout(900)
def test_paused_master_writes_are_not_acknowledged(cluster: Cluster) -> None:
    """The master VM frozen (QMP stop): the peer takes over while it is frozen; after QMP cont
    the old master's writes are not acknowledged, the cluster settles with one MASTER, every
    acknowledged record is on it, and its filesystem is clean."""
    master, taker = cluster.wait_settled()
    acked = cluster.write("pause-pre", 2)
    assert len(acked) == 2, acked
    vm = cluster.lab.vms[master]
    vm.qmp("stop")
    try:
        took = cluster.wait_master(taker)
        print(f"\npause: {taker} MASTER {took:.1f} s after {master} was frozen")
        during = cluster.write("pause-during", 2)
        assert len(during) == 2, during
    finally:
        vm.qmp("cont")
    old = [dn.client_get(cluster.lab, vm.ip, f"/cgi-bin/write?r=pause-old{i}") for i in range(3)]
    assert not [b for b in old if b.startswith("ok")], old
    final_master, _ = cluster.wait_settled()
    after = cluster.write("pause-after", 1)
    assert len(after) == 1, after
    recs = cluster.records(final_master)
    assert [r for r in recs if r.startswith("pause-") and "old" not in r] == (
        acked + during + after
    ), recs
    _taker_fsck_clean(cluster.nodes[final_master])
    transitions = [(t["from"], t["to"], t["reason"]) for t in cluster.nodes[master].transitions()]
    print(f"{master} after the resume: {transitions[-5:]}")
