"""End-to-end: two nodes, real keepalived (VRRPv3), Ceph, dockerd, Harbor-shaped project, the
real harbor-ha CLI.  The client only sees Harbor through the VIP from its own netns.

No timed assertions: every duration is printed as a figure (see the terminal summary).
Deadlines are generous; they only bound a hang.
"""

from __future__ import annotations

import functools
import threading
import time

import pytest

import lab
from tests.e2e import helpers
from tests.e2e.conftest import LABDIR, Lab

pytestmark = pytest.mark.e2e


def test_cold_start_one_master_serves_other_clean(good_lab: Lab) -> None:
    """Cold start: exactly one node is MASTER and holds the VIP; the client gets Harbor's healthy
    answer through the VIP from that node; the other is BACKUP with nothing mapped, mounted or
    running."""
    st, m, b = good_lab.st, good_lab.master, good_lab.backup
    assert lab.masters(st) == [m]
    assert lab.vip_holders(st) == [m]
    answer = good_lab.client.check()
    assert answer.ok, answer.detail
    assert answer.served_by == m
    assert helpers.status(st, b)["state"] == "BACKUP"
    assert lab.mapped_here(st.nodes[b]) == []
    assert not lab.mounted_here(st.nodes[b])
    assert lab.running_containers(st.nodes[b]) == []

    # warm standby: only the stateless services (portal, log; the https proxy binds
    # data/secret/cert) run there, all of them.
    def warm() -> tuple[bool | None, str]:
        services = set(lab.running_all(st.nodes[b]).values())
        return (True if services == lab.STATELESS else None), f"running {sorted(services)}"

    helpers.wait_for("the standby's stateless services running", warm, 60)
    assert lab.mapped_here(st.nodes[m]) and lab.mounted_here(st.nodes[m])
    assert lab.running_containers(st.nodes[m])


def test_crash_of_master_backup_fences_and_takes_over(good_lab: Lab) -> None:
    """kill -9 of the master's keepalived + harbor-ha (Harbor, mapping and mount stay, as in a
    host hang): the backup blocklists the old master's Ceph client (its watcher address is in
    `ceph osd blocklist ls`), maps, mounts, starts Harbor and serves the client through the VIP;
    the old node's mount can no longer be written (write + fsync fails with EIO/EROFS, or hangs);
    once its services restart, the old node converges by itself to a clean BACKUP, fault clear."""
    st, client, m, b = good_lab.st, good_lab.client, good_lab.master, good_lab.backup
    old_watchers = [w for w in helpers.watchers(st) if w.startswith(st.nodes[m].address + ":")]
    assert old_watchers, f"no watcher of the image from {m}: {helpers.watchers(st)}"

    t0 = time.time()
    lab.kill_services(st, m)
    answer = helpers.wait_served_by(client, t0, b)
    took = answer.at - t0
    helpers.figure(f"crash: client's first healthy answer from {b} {took:.2f} s after the kill")
    helpers.wait_master(st, b)
    helpers.promotion_figures(st, b, t0, "crash")

    listed = helpers.blocklist(st)
    assert set(old_watchers) <= set(listed), f"old watchers {old_watchers}, blocklist {listed}"

    t1 = time.monotonic()
    result = helpers.write_fsync(st.nodes[m].mountpoint / "e2e-fenced-write")
    took = time.monotonic() - t1
    helpers.figure(f"crash: write+fsync on the fenced {m}: {result} ({took:.2f} s)")
    assert result in ("EIO", "EROFS", "hung"), f"the fenced node could write: {result}"

    t2 = time.time()
    lab.start_services(st, m)
    seen = helpers.wait_clean_backup(st, m)
    helpers.figure(f"crash: restarted {m} a clean BACKUP (fault clear) {seen - t2:.2f} s later")
    answer = client.check()
    assert answer.ok and answer.served_by == b, answer.detail


def test_unhealthy_master_hands_over(good_lab: Lab) -> None:
    """Harbor's core unhealthy on the master: the master gives the VIP away, the other node takes
    over and serves; the old master ends a clean BACKUP, and after its backoff its fault clears."""
    st, client, m, b = good_lab.st, good_lab.client, good_lab.master, good_lab.backup
    t0 = time.time()
    lab.set_unhealthy(st, m, "core", True)
    try:
        answer = helpers.wait_served_by(client, t0, b)
        helpers.figure(
            f"unhealthy: client's first healthy answer from {b} {answer.at - t0:.2f} s after the "
            "switch"
        )
        helpers.wait_master(st, b)
        helpers.promotion_figures(st, b, t0, "unhealthy")
        reasons = helpers.left_master(st, m, t0)
        assert reasons and "harbor unhealthy" in reasons[0], f"{m} left MASTER for: {reasons}"
        seen = helpers.wait_clean_backup(st, m)  # includes: fault clear (backoff over)
        helpers.figure(f"unhealthy: {m} a clean BACKUP with fault clear {seen - t0:.2f} s after")
    finally:
        lab.set_unhealthy(st, m, "core", False)


def test_switchover_via_cli(good_lab: Lab) -> None:
    """`harbor-ha switchover` on the master: the other node becomes MASTER and serves; the old
    master ends a clean BACKUP.  The client-visible outage is printed."""
    st, client, m, b = good_lab.st, good_lab.client, good_lab.master, good_lab.backup
    out: dict[str, object] = {}

    def switchover() -> None:
        try:
            out["res"] = lab.harbor_ha(st.nodes[m], "switchover", check=False)
        except Exception as exc:  # reported below
            out["res"] = exc

    last_ok: float | None = None
    first_bad: float | None = None
    t0 = time.time()
    thread = threading.Thread(target=switchover)
    thread.start()
    deadline = time.monotonic() + 90
    answer = client.check()
    while not (answer.ok and answer.served_by == b):
        assert time.monotonic() < deadline, f"no healthy answer from {b}: {answer.detail}"
        if answer.ok and answer.served_by == m and first_bad is None:
            last_ok = answer.at
        elif not answer.ok and first_bad is None:
            first_bad = answer.at
        time.sleep(0.02)
        answer = client.check()
    thread.join(60)
    res = out.get("res")
    assert not isinstance(res, Exception), res
    assert getattr(res, "returncode", None) == 0, res
    start = first_bad if first_bad is not None else answer.at
    helpers.figure(
        f"switchover: client outage {answer.at - start:.2f} s (first failed answer "
        f"+{start - t0:.2f} s, first healthy from {b} +{answer.at - t0:.2f} s; last healthy from "
        f"{m} +{(last_ok or t0) - t0:.2f} s)"
    )
    helpers.wait_master(st, b)
    helpers.promotion_figures(st, b, t0, "switchover")
    reasons = helpers.left_master(st, m, t0)
    assert reasons and "switchover" in reasons[0], f"{m} left MASTER for: {reasons}"
    seen = helpers.wait_clean_backup(st, m)
    helpers.figure(f"switchover: {m} a clean BACKUP (fault clear) {seen - t0:.2f} s after")


def _failover(kind: str, lab_: Lab, m: str, b: str) -> None:
    """One failover of ``kind`` from m to b, until b serves and m is a clean BACKUP again."""
    st, client = lab_.st, lab_.client
    t0 = time.time()
    if kind == "crash":
        lab.kill_services(st, m)
    elif kind == "switchover":
        lab.harbor_ha(st.nodes[m], "switchover")
    else:
        lab.set_unhealthy(st, m, "core", True)
    answer = helpers.wait_served_by(client, t0, b)
    helpers.figure(f"records/{kind}: first healthy answer from {b} +{answer.at - t0:.2f} s")
    helpers.wait_master(st, b)
    if kind == "crash":
        lab.start_services(st, m)
    if kind == "unhealthy":
        helpers.wait_for(
            f"{m} out of MASTER",
            lambda: (True, "") if helpers.status(st, m).get("state") == "BACKUP" else (None, "?"),
            90,
        )
        lab.set_unhealthy(st, m, "core", False)
    helpers.wait_clean_backup(st, m)
    helpers.wait_good(st, client, master=b)


def test_no_acknowledged_record_lost_across_failovers(good_lab: Lab) -> None:
    """A writer appends numbered records to the master's mount, fsync'ing each and only then
    acknowledging it in a file outside the mount.  Across three failovers (crash, switchover,
    unhealthy), with a new writer on each new master continuing the numbering, every
    acknowledged record is on the final master's mount; after both nodes are put in
    maintenance (clean BACKUPs), `e2fsck -f -n` of the image (mapped read-only by hand) is clean;
    maintenance off leaves the lab good again."""
    st, client, m, b = good_lab.st, good_lab.client, good_lab.master, good_lab.backup
    work = LABDIR / "e2e-records"  # outside both mounts; removed by lab.down
    work.mkdir(parents=True, exist_ok=True)
    ack, err = work / "acked", work / "writer.err"
    ack.unlink(missing_ok=True)
    writers: list[helpers.Writer] = []
    try:
        for kind in ("crash", "switchover", "unhealthy"):
            w = helpers.start_writer(st, m, ack, err)
            writers.append(w)
            helpers.wait_acked(ack, 20)
            _failover(kind, good_lab, m, b)
            code = w.stop()  # normally already gone: I/O error, or killed by the unmount
            helpers.figure(
                f"records/{kind}: writer on {m} numbered from {w.first}, exit {code}, "
                f"{len(helpers.acked(ack))} acknowledged so far"
            )
            m, b = b, m
        w = helpers.start_writer(st, m, ack, err)
        writers.append(w)
        helpers.wait_acked(ack, 20)
        w.stop()
        done = helpers.acked(ack)
        present = {
            int(x)
            for x in (st.nodes[m].mountpoint / "records" / "log").read_text().split("\n")
            if x.strip().isdigit()
        }
        missing = sorted(set(done) - present)
        helpers.figure(
            f"records: {len(done)} acknowledged, {len(present)} distinct on {m}'s mount, "
            f"{len(missing)} missing"
        )
        assert not missing, f"acknowledged records missing on the final master: {missing[:20]}"
        assert len(set(done)) == len(done), "a record number was acknowledged twice"

        # Both nodes in maintenance (backup first, so the VIP has nowhere to go), then fsck.
        for name in (b, m):
            lab.harbor_ha(st.nodes[name], "maintenance", "on")
        for name in (b, m):
            helpers.wait_for(
                f"{name} BACKUP in maintenance, nothing held",
                functools.partial(_maint_clean, st, name),
                90,
                every_s=0.3,
            )
        res = helpers.fsck_image(st, m)
        helpers.figure(f"records: e2fsck -f -n exit {res.returncode}")
        assert res.returncode == 0, res.stdout + res.stderr
    finally:
        for w in writers:
            w.stop()
        for n in st.nodes.values():
            lab.harbor_ha(n, "maintenance", "off", check=False)
    helpers.wait_good(st, client)


def _maint_clean(st: lab.LabState, name: str) -> tuple[bool | None, str]:
    s = helpers.status(st, name)
    if s.get("state") != "BACKUP" or not s.get("maintenance"):
        return None, helpers.describe(s)
    node = st.nodes[name]
    if lab.mapped_here(node) or lab.mounted_here(node) or lab.running_containers(node):
        return None, "still holds something"
    return True, ""
