"""Priority 7: data.  20+ failovers of mixed kinds; before and during each, records are
appended to a ledger file on the serving node's mount and fsync'd; every acknowledged
record (fsync returned success) must be in the ledger at the end, and the filesystem must
check clean (`e2fsck -fn`, the image mapped by the test while both nodes are in
maintenance)."""

from __future__ import annotations

import functools
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import lab
from lab import LabState
from tests.faults import faultlab as fl

pytestmark = [pytest.mark.e2e, pytest.mark.full, pytest.mark.timeout(2400)]

FAILOVERS = 20
KINDS = (
    "switchover",
    "kill9-node-services",
    "keepalived-sigterm",
    "harbor-unhealthy",
    "daemon-crash-then-switchover",
)


def peer_took_over(st: LabState, old_master: str) -> bool:
    """Some node other than ``old_master`` is the (only) MASTER now."""
    return lab.masters(st) not in ([], [old_master])


def failover(st: LabState, kind: str, master: str) -> None:
    node = st.nodes[master]
    if kind == "switchover":
        lab.harbor_ha(node, "switchover")
    elif kind == "kill9-node-services":
        lab.kill_services(st, master)
    elif kind == "keepalived-sigterm":
        lab.kill_pid(node.pids["keepalived"], signal.SIGTERM, wait_s=15)
        lab.reap()
    elif kind == "harbor-unhealthy":
        lab.set_unhealthy(st, master, "core", True)
    elif kind == "daemon-crash-then-switchover":
        fl.crash_daemon(st, master)
        fl.restart_daemon(st, master)
        fl.wait_state(st, master, "MASTER", 60)
        lab.harbor_ha(node, "switchover")


def test_no_acknowledged_record_lost_across_failovers(fault_lab: LabState, record: Any) -> None:
    """20 failovers of mixed kinds with fsync'd ledger writes around them: no acknowledged
    record is lost, and the filesystem checks clean at the end."""
    st = fault_lab
    rng = random.Random(20261122)
    acked: list[str] = []
    attempted = 0
    kinds_done: list[str] = []
    times: list[float] = []
    seq = 0
    released: list[str] = []
    for i in range(FAILOVERS):
        master = fl.serving(st)
        for _ in range(5):
            seq += 1
            attempted += 1
            rec = f"rec {seq} on {master} before failover {i}"
            if fl.try_write(st.nodes[master], rec):
                acked.append(rec)
        kind = KINDS[i % len(KINDS)] if i < len(KINDS) else rng.choice(KINDS)
        kinds_done.append(kind)
        t0 = time.monotonic()
        failover(st, kind, master)
        # keep writing to whoever is mounted while the failover plays out
        end = time.monotonic() + 3
        while time.monotonic() < end:
            for name, node in st.nodes.items():
                if not fl.mounted_from_mapped(node):
                    continue
                seq += 1
                attempted += 1
                rec = f"rec {seq} on {name} during failover {i}"
                if fl.try_write(node, rec, 2.0):
                    acked.append(rec)
            time.sleep(0.1)
        # bring back what the failover took down, then wait for the one good shape
        if kind == "harbor-unhealthy":
            fl.poll(
                functools.partial(peer_took_over, st, master),
                120,
                "peer took over",
                every_s=0.5,
            )
            lab.set_unhealthy(st, master, "core", False)
        fl.ensure_services(st)
        released += fl.release_stuck_writers()
        fl.wait_converged(st, 180)
        times.append(time.monotonic() - t0)
    master = fl.serving(st)
    ledger = (st.nodes[master].mountpoint / "faults-ledger.txt").read_text()
    present = set(ledger.splitlines())
    lost = [r for r in acked if r not in present]
    print(f"[data] {len(acked)}/{attempted} acknowledged, {len(lost)} lost")
    assert not lost, lost[:10]
    with fl.image_offline(st) as dev:
        raw = subprocess.run(["e2fsck", "-fn", dev], capture_output=True, text=True)
        replay = "skipping journal recovery" in raw.stdout + raw.stderr
        if replay:
            # the journal still holds committed transactions: replay it (as every mount
            # does) before judging the filesystem; e2fsck -n cannot replay
            mp = Path(st.labdir) / "test-mnt"
            mp.mkdir(exist_ok=True)
            lab.sh("mount", dev, str(mp))
            lab.sh("umount", str(mp))
        res = subprocess.run(["e2fsck", "-fn", dev], capture_output=True, text=True)
    fl.wait_converged(st, 180)
    problems = [
        ln.strip()
        for ln in res.stdout.splitlines()
        if ln.strip() and not ln.startswith(("Pass ", "e2fsck ", "/dev/"))
    ][:6]
    print("e2fsck -fn output:\n" + res.stdout[-3000:])
    record(
        injected=f"{FAILOVERS} failovers: "
        + ", ".join(f"{k} x{kinds_done.count(k)}" for k in KINDS),
        runs=FAILOVERS,
        expected="no acknowledged (fsync'd) record lost; e2fsck -fn clean at the end",
        observed=f"{len(acked)}/{attempted} writes acknowledged, {len(lost)} lost; "
        f"{len(released)} releases of test probes stuck in D on fenced nodes; "
        f"journal needed replay: {replay} (e2fsck -fn before replay exit {raw.returncode}); "
        f"e2fsck -fn exit {res.returncode}"
        + (f": {' / '.join(problems)}" if res.returncode else ""),
        figures="failover -> converged: median "
        f"{sorted(times)[len(times) // 2]:.1f} s, max {max(times):.1f} s",
    )
    assert not lost, lost[:10]
    assert res.returncode == 0, res.stdout[-2000:]
