"""Helpers for the end-to-end suite: polling with deadlines, the lab's "good state", Ceph's
blocklist, writes into a node's mountpoint, the read-only fsck of the image, printed figures.

Everything goes through the lab (lab/): addresses only inside the lab's netns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

import lab
from lab import timeline
from lab.client import Answer, Client
from lab.replicated import harbor_running
from lab.waiting import Timeout as WaitTimeout
from lab.waiting import poll

T = TypeVar("T")

FIGURES: list[str] = []
"""Measured figures of this run, printed again in the terminal summary."""


def figure(line: str) -> None:
    """Record (and print) one measured figure; timing is reported, never asserted."""
    FIGURES.append(line)
    print(f"figure: {line}", flush=True)


class Timeout(AssertionError):
    """A condition did not hold within its deadline (the message says what was last seen)."""


def wait_for(
    what: str,
    probe: Callable[[], tuple[T | None, str]],
    within_s: float,
    every_s: float = 0.2,
) -> T:
    """Poll ``probe() -> (value or None, description)`` until it gives a value or the deadline
    passes (then fail with the last description): lab.waiting.poll on that probe."""
    seen = [""]

    def cond() -> tuple[T] | None:
        value, seen[0] = probe()
        return None if value is None else (value,)

    try:
        found: tuple[T] = poll(cond, within_s, what, every_s)
    except WaitTimeout:
        raise Timeout(f"{what}: not within {within_s:g} s; last seen: {seen[0]}") from None
    return found[0]


# ------------------------------------------------------------------ node facts
def status(st: lab.LabState, name: str) -> dict[str, Any]:
    """The node's ``GET /status`` on its control socket (what `harbor-ha status --json` prints,
    without starting the CLI on every poll: this machine has 2 cores); {"state": "DOWN"} if
    the daemon does not answer."""
    sock = st.nodes[name].run_dir / "control.sock"

    async def get() -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(sock)), timeout=timeout
            ) as session,
            session.get("http://harbor-ha/status") as r,
        ):
            r.raise_for_status()
            data: dict[str, Any] = await r.json()
            return data

    try:
        return asyncio.run(get())
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        return {"state": "DOWN", "error": f"{type(exc).__name__}: {exc}"}


def statuses(st: lab.LabState) -> dict[str, dict[str, Any]]:
    return {name: status(st, name) for name in st.nodes}


def clean_backup(st: lab.LabState, name: str, s: dict[str, Any]) -> str:
    """'' when node ``name`` is a clean BACKUP (fault clear; in the rbd mode nothing mapped,
    mounted or running, in the replicated mode its whole Harbor running), else what is
    wrong."""
    node = st.nodes[name]
    problems = []
    if s.get("state") != "BACKUP":
        problems.append(f"state {s.get('state')}")
    if s.get("fault"):
        problems.append("fault set")
    if s.get("maintenance"):
        problems.append("maintenance on")
    if problems:  # cheap facts first; the rest only when the daemon says it is clean
        return ", ".join(problems)
    if st.mode == "replicated":
        return "" if harbor_running(node) else f"Harbor not all running: {harbor_services(node)}"
    if lab.mapped_here(node):
        problems.append(f"mapped {lab.mapped_here(node)}")
    if lab.mounted_here(node):
        problems.append("mounted")
    running = lab.running_containers(node)
    if running:
        problems.append(f"{len(running)} containers running")
    return ", ".join(problems)


def harbor_services(node: lab.NodeState) -> list[str]:
    """The compose services with a running container on ``node`` (sorted)."""
    return sorted(set(lab.running_all(node).values()))


def describe(s: dict[str, Any]) -> str:
    last = (s.get("last_transitions") or [{}])[-1]
    return (
        f"{s.get('state')} fault={s.get('fault')} maint={s.get('maintenance')} "
        f"healthy={s.get('harbor_healthy')} ready={s.get('standby_ready')} "
        f"last={last.get('from')}->{last.get('to')} ({last.get('reason', s.get('error', ''))})"
    )


def good_state(
    st: lab.LabState, client: Client, master: str | None = None
) -> tuple[tuple[str, str] | None, str]:
    """((master, backup), '') when the lab is in its known good state, else (None, why):
    exactly one MASTER (``master`` if given) with Harbor healthy holding the VIP, the client
    served by it; the other a clean BACKUP (:func:`clean_backup`), fault clear, ready to take
    over."""
    s = statuses(st)
    seen = "; ".join(f"{n}: {describe(v)}" for n, v in s.items())
    masters = [n for n, v in s.items() if v.get("state") == "MASTER"]
    if len(masters) != 1 or (master is not None and masters != [master]):
        return None, f"masters {masters}; {seen}"
    m = masters[0]
    b = next(n for n in st.nodes if n != m)
    if s[m].get("harbor_healthy") is not True or s[m].get("fault"):
        return None, f"master {m} not healthy/clear; {seen}"
    wrong = clean_backup(st, b, s[b])
    if wrong:
        return None, f"backup {b}: {wrong}; {seen}"
    # The replicated mode has no standby readiness of its own (no Ceph, no image): a BACKUP is
    # ready when its fault is clear and its Harbor runs, what clean_backup checked.
    if st.mode == "rbd" and s[b].get("standby_ready") is not True:
        return None, f"backup {b} not ready: {s[b].get('standby_problems')}; {seen}"
    holders = lab.vip_holders(st)
    if holders != [m]:
        return None, f"VIP on {holders}; {seen}"
    answer = client.check()
    if not (answer.ok and answer.served_by == m):
        return None, f"client: {answer.detail}; {seen}"
    return (m, b), ""


def wait_good(
    st: lab.LabState, client: Client, within_s: float = 120, master: str | None = None
) -> tuple[str, str]:
    """Wait for :func:`good_state`; returns (master, backup)."""
    return wait_for(
        "lab in its good state", lambda: good_state(st, client, master), within_s, every_s=0.3
    )


def wait_clean_backup(st: lab.LabState, name: str, within_s: float = 90) -> float:
    """Wait until ``name`` is a clean BACKUP with its fault clear; the time.time() it was seen."""

    def probe() -> tuple[float | None, str]:
        s = status(st, name)
        wrong = clean_backup(st, name, s)
        return (None, f"{name}: {wrong}; {describe(s)}") if wrong else (time.time(), "")

    return wait_for(f"node {name} a clean BACKUP", probe, within_s, every_s=0.3)


def wait_served_by(client: Client, t0: float, node: str, within_s: float = 90) -> Answer:
    """The first healthy answer through the VIP from ``node`` after t0 (fails on the deadline)."""
    answer = client.first_healthy_after(t0, within_s, node=node)
    if not (answer.ok and answer.served_by == node and answer.at >= t0):
        raise Timeout(f"no healthy answer from {node} within {within_s:g} s: {answer.detail}")
    return answer


def wait_master(st: lab.LabState, name: str, within_s: float = 90) -> dict[str, Any]:
    def probe() -> tuple[dict[str, Any] | None, str]:
        s = status(st, name)
        ok = s.get("state") == "MASTER" and s.get("harbor_healthy") is True
        return (s if ok else None), describe(s)

    return wait_for(f"node {name} MASTER with Harbor healthy", probe, within_s, every_s=0.3)


def left_master(st: lab.LabState, node: str, since: float) -> list[str]:
    """Reasons of ``node``'s transitions out of MASTER logged after ``since`` (time.time())."""
    return [
        str(e.fields.get("reason"))
        for e in timeline.read(st.nodes[node].log, node, since=since)
        if e.msg == "transition" and e.fields.get("from") == "MASTER"
    ]


def promotion_figures(st: lab.LabState, node: str, t0: float, label: str) -> None:
    """Print the promotion's steps from ``node``'s log (entries after t0)."""
    entries = timeline.read(st.nodes[node].log, node, since=t0)
    steps = timeline.step_durations(entries)
    total = [e.fields.get("total_s") for e in entries if e.msg == "promotion_complete"]
    to_master = [
        e.at - t0 for e in entries if e.msg == "transition" and e.fields.get("from") == "BACKUP"
    ]
    parts = [
        f"{k} {v:.2f} s"
        for k, v in steps.items()
        if k in ("lease", "fence", "map", "mount", "start")
    ]
    figure(
        f"{label}: node {node} left BACKUP +{to_master[0]:.2f} s after the trigger; "
        f"steps {', '.join(parts) or '?'}; promotion total {total[-1] if total else '?'} s"
        if to_master
        else f"{label}: no BACKUP->* transition of {node} in its log"
    )


# ------------------------------------------------------------------------ Ceph
def ceph_admin(st: lab.LabState, *args: str, tool: str = "ceph", timeout: float = 30) -> str:
    """``ceph``/``rbd`` as client.admin, run inside the lab's Ceph netns."""
    res = lab.sh(
        "nsenter",
        f"--net=/run/netns/{st.prefix}-ceph",
        f"/usr/bin/{tool}",
        "-c",
        st.ceph_conf,
        "--id",
        "admin",
        "--keyring",
        str(Path(st.ceph_dir) / "keyring.admin"),
        *args,
        timeout=timeout,
    )
    return res.stdout


def watchers(st: lab.LabState) -> list[str]:
    """Addresses (IP:0/NONCE) watching the image, per ``rbd status``."""
    data = json.loads(ceph_admin(st, "status", "rbd/harbor", "--format", "json", tool="rbd"))
    return [str(w["address"]) for w in data.get("watchers", [])]


ADDR = re.compile(r"\b\d+\.\d+\.\d+\.\d+:\d+/\d+\b")


def blocklist(st: lab.LabState) -> list[str]:
    """Addresses in ``ceph osd blocklist ls`` (plain output: one 'ADDR UNTIL' per line)."""
    return ADDR.findall(ceph_admin(st, "osd", "blocklist", "ls"))


# ------------------------------------------------------------------ mount I/O
WRITE_FSYNC = r"""
import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"written as the old Harbor would\n" * 128)
    os.fsync(fd)
    os.close(fd)
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)), e, flush=True)
    sys.exit(3)
print("OK", flush=True)
"""


def write_fsync(path: Path, timeout_s: float = 20) -> str:
    """Write + fsync ``path`` in a subprocess; 'OK', the errno name (EIO, EROFS, ...), or 'hung'
    when it did not return within timeout_s (then it is killed; a fenced fs may hang)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITE_FSYNC, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        return "hung"
    words = out.split()
    return words[0] if words else f"exit {proc.returncode}"


WRITER = r"""
import os, sys, time
log, ack, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(os.path.dirname(log), exist_ok=True)
fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
afd = os.open(ack, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
while True:
    os.write(fd, b"%d\n" % n)
    os.fsync(fd)  # the record is durable: only now acknowledge it
    os.write(afd, b"%d\n" % n)
    os.fsync(afd)
    n += 1
    time.sleep(0.01)
"""


@dataclass
class Writer:
    """A record writer on one node's mount (numbered records, fsync'd, acknowledged outside)."""

    node: str
    proc: subprocess.Popen[bytes]
    first: int

    def stop(self) -> int | None:
        """Kill it if still running; its exit code (None if it could not be reaped)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        return self.proc.poll()


def acked(ack: Path) -> list[int]:
    if not ack.exists():
        return []
    return [int(x) for x in ack.read_text().split("\n") if x.strip().isdigit()]


def start_writer(st: lab.LabState, node: str, ack: Path, err: Path) -> Writer:
    """Start a writer on ``node``'s mount, numbering on from the last acknowledged record."""
    done = acked(ack)
    first = (max(done) + 1) if done else 1
    log = st.nodes[node].mountpoint / "records" / "log"
    with err.open("ab") as out:
        proc = subprocess.Popen(
            [
                *("nsenter", f"--net=/run/netns/{st.nodes[node].netns}", sys.executable, "-c"),
                *(WRITER, str(log), str(ack), str(first)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Writer(node, proc, first)


def wait_acked(ack: Path, more: int, within_s: float = 30) -> int:
    """Wait until ``more`` records beyond the present count are acknowledged; the new count."""
    target = len(acked(ack)) + more

    def probe() -> tuple[int | None, str]:
        n = len(acked(ack))
        return (n if n >= target else None), f"{n} of {target} acknowledged"

    return wait_for("the writer acknowledges records", probe, within_s, every_s=0.05)


# ------------------------------------------------------------------- fsck
def rbd_as_harbor(st: lab.LabState, node: str, *args: str, timeout: float = 60) -> str:
    """The krbd stand-in on ``node`` (its netns, its mapping state), as the harbor user."""
    return lab.rbd_as_harbor(st, st.nodes[node], *args, timeout=timeout)


def fsck_image(st: lab.LabState, node: str) -> subprocess.CompletedProcess[str]:
    """Map the image on ``node`` (without the exclusive lock: nothing is written), run
    ``e2fsck -f -n`` on it (opens the device read-only, changes nothing), unmap; the result.

    Not ``blockdev --setro`` on the loop device: that flag outlives the loop's detach, and the
    next map that gets the same /dev/loopN (any lab on this machine) fails with EPERM."""
    dev = rbd_as_harbor(st, node, "device", "map", "rbd/harbor")
    try:
        return lab.sh("e2fsck", "-f", "-n", dev, check=False, timeout=120)
    finally:
        rbd_as_harbor(st, node, "device", "unmap", dev)
