"""End-to-end, harbor-ha's replicated mode (HARBOR_HA_MODE=replicated): each node runs its whole
Harbor all the time on its own local data directory (the lab started it with the project's
``compose up -d``; ``restart: always`` keeps it), no Ceph, no lease, no fence, no mount;
keepalived moves the VIP; harbor-ha probes Harbor and writes keepalived's track files from the
verdict (fault file up while Harbor is unhealthy, so keepalived gives the VIP away).  MASTER
means "the VIP is here and Harbor is healthy"; a demotion only gives the VIP away, Harbor keeps
running.

This module brings up its own lab (module-scoped ``lab`` and ``client``: /var/tmp/hhe2p, netns
prefix hhe2p, 10.98.0.0/24, the busybox shape); the conftest runs it before the session's lab,
so the two labs are never up together.  No timed assertions: durations are printed as figures;
deadlines only bound a hang.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab as labmod
from lab import timeline
from lab.client import Client
from lab.replicated import harbor_serves, primary
from tests.e2e import helpers
from tests.e2e.conftest import Lab, bring_up, vip_client

pytestmark = pytest.mark.e2e

LABDIR = Path("/var/tmp/hhe2p")
PREFIX = "hhe2p"
SUBNET = "10.98.0.0/24"
HOLD_S = 5.0
"""How long a settled VIP is watched to stay where it is (50 adverts at the lab's 0.1 s)."""


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[labmod.LabState]:
    """The two-node lab in the replicated mode (see conftest.bring_up)."""
    with bring_up(request, LABDIR, PREFIX, subnet=SUBNET, mode="replicated") as st:
        yield st


@pytest.fixture(scope="module")
def client(lab: labmod.LabState) -> Iterator[Client]:
    """Harbor's health through the VIP (what the good-state restore waits for)."""
    with vip_client(lab) as c:
        yield c


# ------------------------------------------------------------------ node facts
def containers(node: labmod.NodeState) -> dict[str, str]:
    """The Harbor project's running containers on ``node``: name -> "ID status StartedAt"
    (the same value later = the same container, never stopped or restarted since)."""
    ids = list(labmod.running_all(node))
    if not ids:
        return {}
    fmt = "{{.Name}} {{.Id}} {{.State.Status}} {{.State.StartedAt}}"
    out = labmod.sh("docker", "-H", node.docker_host, "inspect", "-f", fmt, *ids).stdout
    return dict(line.lstrip("/").split(" ", 1) for line in out.splitlines() if line.strip())


def flap_core(st: labmod.LabState, name: str, times: int = 4, period_s: float = 3.0) -> None:
    """Harbor's core on node ``name`` unhealthy ``period_s``, healthy ``period_s``, ``times``
    times (the sleeps are the fault's own cadence); healthy again whatever happens."""
    try:
        for _ in range(times):
            labmod.set_unhealthy(st, name, "core", True)
            time.sleep(period_s)
            labmod.set_unhealthy(st, name, "core", False)
            time.sleep(period_s)
    finally:
        labmod.set_unhealthy(st, name, "core", False)


def fault_file(node: labmod.NodeState) -> str:
    """The content of the node's fault track file ('1' = FAULT, '0' = clear)."""
    try:
        return (node.run_dir / "fault").read_text().strip()
    except FileNotFoundError:
        return "missing"


def keepalived_conf(node: labmod.NodeState) -> tuple[bool, int]:
    """(nopreempt, base priority) of the node's rendered keepalived.conf."""
    text = (node.path / "keepalived.conf").read_text()
    priority = re.search(r"^\s*priority\s+(\d+)", text, re.MULTILINE)
    assert priority, f"no priority in {node.path / 'keepalived.conf'}"
    return bool(re.search(r"^\s*nopreempt\b", text, re.MULTILINE)), int(priority.group(1))


def holder_after_recovery(st: labmod.LabState, back: str, taker: str) -> str:
    """Who holds the VIP once ``back`` runs clean again while ``taker`` is MASTER, as the
    rendered configs imply: keepalived preempts only without ``nopreempt`` in ``back``'s config
    and with ``back``'s priority above ``taker``'s (both track the same files, same weight)."""
    nopreempt, prio_back = keepalived_conf(st.nodes[back])
    _, prio_taker = keepalived_conf(st.nodes[taker])
    return back if not nopreempt and prio_back > prio_taker else taker


def transitions(st: labmod.LabState, name: str, since: float) -> list[str]:
    """Node ``name``'s transitions logged after ``since`` (time.time()): "FROM->TO (reason)"."""
    return [
        f"{e.fields.get('from')}->{e.fields.get('to')} ({e.fields.get('reason')})"
        for e in timeline.read(st.nodes[name].log, name, since=since)
        if e.msg == "transition"
    ]


def master_overlaps(st: labmod.LabState, since: float, states: dict[str, str]) -> list[str]:
    """The moments both nodes' logs put them in MASTER at once, after ``since`` (time.time()),
    from the nodes' ``states`` then: each node's logged transitions replayed in time order (one
    machine, one clock), every overlap as "+S s: NODE went MASTER (reason) while PEER was
    MASTER, for D s"."""
    entries = sorted(
        (e for name, node in st.nodes.items() for e in timeline.read(node.log, name, since=since)
         if e.msg == "transition"),
        key=lambda e: e.at,
    )  # fmt: skip
    state, out, began = dict(states), [], ""
    for e in entries:
        state[e.node] = str(e.fields.get("to"))
        both = all(v == "MASTER" for v in state.values())
        if both and not began:
            peer = next(n for n in state if n != e.node)
            began = f"+{e.at - since:.2f} s: {e.node} went MASTER ({e.fields.get('reason')}) "
            began += f"while {peer} was MASTER"
            start = e.at
        elif began and not both:
            out.append(f"{began}, for {e.at - start:.2f} s")
            began = ""
    return [*out, f"{began}, still"] if began else out


def wait_vip_on(st: labmod.LabState, name: str, within_s: float = 60) -> float:
    """Wait until ``name`` holds the VIP; the time.time() it was first seen there."""

    def probe() -> tuple[float | None, str]:
        holders = labmod.vip_holders(st)
        return (time.time() if name in holders else None), f"VIP on {holders}"

    return helpers.wait_for(f"the VIP on {name}", probe, within_s, every_s=0.05)


def settles_on(st: labmod.LabState, client: Client, expected: str, t0: float, label: str) -> None:
    """Wait for the good state with ``expected`` MASTER (the other a clean BACKUP, the VIP on
    ``expected`` only), print when, then watch HOLD_S that the VIP and MASTER stay there."""
    helpers.wait_good(st, client, master=expected)
    helpers.figure(f"{label}: settled, {expected} MASTER, {time.time() - t0:.2f} s after")
    end = time.monotonic() + HOLD_S
    while time.monotonic() < end:
        holders, masters = labmod.vip_holders(st), helpers.statuses(st)
        on = [n for n, s in masters.items() if s.get("state") == "MASTER"]
        assert holders == [expected] and on == [expected], f"VIP on {holders}, MASTER {on}"
        time.sleep(0.2)


class MasterWatch:
    """Samples both nodes' /status (control socket) in a thread; ``doubles`` lists the
    samples where both said MASTER at once: a reads MASTER, then b, then a again (a race
    with a handover, where one leaves as the other enters, is not counted), with the VIP's
    holders and both nodes' /primary then."""

    def __init__(self, st: labmod.LabState) -> None:
        self.st = st
        self.doubles: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        a, b = list(self.st.nodes)
        while not self._stop.is_set():
            first = helpers.status(self.st, a)
            other = helpers.status(self.st, b)
            again = helpers.status(self.st, a)
            self.samples += 1
            if all(s.get("state") == "MASTER" for s in (first, other, again)):
                holders = labmod.vip_holders(self.st)
                codes = {n: primary(self.st, n) for n in (a, b)}
                self.doubles.append(
                    f"{time.time():.2f}: both MASTER, VIP on {holders}, /primary {codes}"
                )
            self._stop.wait(0.1)

    def __enter__(self) -> MasterWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


# ------------------------------------------------------------------ the tests
def test_both_nodes_run_harbor_one_master(good_lab: Lab) -> None:
    """Both nodes run their whole Harbor and serve on their own address; exactly one node is
    MASTER and holds the VIP, its /primary answers 200 and the client gets Harbor's healthy
    answer from it through the VIP; the other is BACKUP with its fault file clear, /primary
    503, and its Harbor running (every service's container)."""
    st, m, b = good_lab.st, good_lab.master, good_lab.backup
    assert labmod.masters(st) == [m]
    assert labmod.vip_holders(st) == [m]
    assert primary(st, m) == 200
    assert primary(st, b) == 503
    s = labmod.status(st, b)
    assert s["state"] == "BACKUP", helpers.describe(s)
    assert fault_file(st.nodes[b]) == "0"
    for name in (m, b):
        why = harbor_serves(st.nodes[name])
        assert why == "", f"Harbor on {name}: {why}"
    answer = good_lab.client.check()
    assert answer.ok and answer.served_by == m, answer.detail


def test_unhealthy_master_gives_the_vip_away_and_keeps_harbor(good_lab: Lab) -> None:
    """Harbor's core unhealthy on the master (the lab's switch: core's component in Harbor's
    health API reads unhealthy at once; the shape's core healthcheck fails too): the master's
    fault file goes up, keepalived gives the VIP to the peer, which becomes MASTER (/primary
    200) and serves the client; the old master's Harbor keeps running, the very same
    containers never stopped or restarted (a demotion only gives the VIP away).  Switched back:
    the old master becomes BACKUP with its fault file cleared, and the VIP ends where the
    rendered keepalived.conf implies (nopreempt: it stays on the peer)."""
    st, client, m, b = good_lab.st, good_lab.client, good_lab.master, good_lab.backup
    before = containers(st.nodes[m])
    t0 = time.time()
    labmod.set_unhealthy(st, m, "core", True)
    try:
        at = wait_vip_on(st, b)
        helpers.figure(f"replicated/unhealthy: VIP on {b} {at - t0:.2f} s after core unhealthy")
        helpers.wait_master(st, b)
        answer = helpers.wait_served_by(client, t0, b)
        helpers.figure(
            f"replicated/unhealthy: client's first healthy answer from {b} {answer.at - t0:.2f} s"
        )
        s = helpers.status(st, m)
        reasons = helpers.left_master(st, m, t0)
        helpers.figure(f"replicated/unhealthy: {m} now {helpers.describe(s)}; left for {reasons}")
        assert s.get("state") != "MASTER", helpers.describe(s)
        assert fault_file(st.nodes[m]) == "1"
        assert (primary(st, b), primary(st, m)) == (200, 503)
        assert containers(st.nodes[m]) == before, f"Harbor on {m} was stopped or restarted"
    finally:
        labmod.set_unhealthy(st, m, "core", False)
    t1 = time.time()
    seen = helpers.wait_clean_backup(st, m)
    helpers.figure(f"replicated/unhealthy: {m} BACKUP, fault clear {seen - t1:.2f} s after")
    assert fault_file(st.nodes[m]) == "0"
    expected = holder_after_recovery(st, m, b)
    settles_on(st, client, expected, t1, "replicated/unhealthy cleared")
    assert containers(st.nodes[m]) == before, f"Harbor on {m} was stopped or restarted"


def test_crash_of_master_services_moves_vip_restart_converges(good_lab: Lab) -> None:
    """kill -9 of the master's harbor-ha and keepalived (Harbor keeps running there): the peer
    takes the VIP and becomes MASTER with Harbor healthy, serving the client; the crashed
    node's Harbor is untouched.  Restarted as systemd would: the node comes back BACKUP (or
    MASTER, as the rendered keepalived.conf implies) consistently: never both nodes MASTER
    at once (both /status sampled all along, and both logs' transitions replayed), and at the
    end exactly one MASTER, per `harbor-ha status` on both, which is the only VIP holder."""
    st, client, m, b = good_lab.st, good_lab.client, good_lab.master, good_lab.backup
    before = containers(st.nodes[m])
    t0 = time.time()
    labmod.kill_services(st, m)
    at = wait_vip_on(st, b)
    helpers.figure(
        f"replicated/crash: VIP on {b} {at - t0:.2f} s after the kill "
        f"(holders then {labmod.vip_holders(st)}: keepalived killed -9 leaves its VIP)"
    )
    helpers.wait_master(st, b)
    answer = helpers.wait_served_by(client, t0, b)
    helpers.figure(
        f"replicated/crash: client's first healthy answer from {b} {answer.at - t0:.2f} s"
    )
    assert primary(st, b) == 200
    assert containers(st.nodes[m]) == before, f"Harbor on {m} was stopped or restarted"

    expected = holder_after_recovery(st, m, b)
    with MasterWatch(st) as watch:
        t1 = time.time()
        labmod.start_services(st, m)
        settles_on(st, client, expected, t1, f"replicated/crash: {m} restarted")
    overlaps = master_overlaps(st, t1, {m: "DOWN", b: "MASTER"})
    helpers.figure(
        f"replicated/crash: {watch.samples} samples of both /status during the restart, "
        f"{len(watch.doubles)} with both MASTER; {m}'s transitions: {transitions(st, m, t1)}; "
        f"both MASTER per the logs: {overlaps or 'never'}"
    )
    assert watch.doubles == [], f"both nodes MASTER at once: {watch.doubles[:10]}"
    assert overlaps == [], f"both nodes MASTER at once, per their logs: {overlaps}"
    assert labmod.masters(st) == [expected]
    assert labmod.vip_holders(st) == [expected]
    other = b if expected == m else m
    assert (primary(st, expected), primary(st, other)) == (200, 503)
    assert containers(st.nodes[m]) == before, f"Harbor on {m} was stopped or restarted"


def test_health_flap_on_the_master_never_makes_two_masters(good_lab: Lab) -> None:
    """Harbor's core flapping on the master (unhealthy 3 s, healthy 3 s, four times): the VIP
    goes to the peer at the first flap and, nopreempt, stays where a healthy Harbor holds it;
    never both nodes MASTER at once (both /status sampled, both logs replayed); no Harbor
    container stopped or restarted on either node; at the end one MASTER, the VIP's only
    holder, and the other a clean BACKUP."""
    st, client, m, b = good_lab.st, good_lab.client, good_lab.master, good_lab.backup
    before = {n: containers(st.nodes[n]) for n in (m, b)}
    t0 = time.time()
    with MasterWatch(st) as watch:
        flap_core(st, m)
        helpers.wait_good(st, client)
    overlaps = master_overlaps(st, t0, {m: "MASTER", b: "BACKUP"})
    helpers.figure(
        f"replicated/flap: {watch.samples} samples, {len(watch.doubles)} with both MASTER; "
        f"{m}: {transitions(st, m, t0)}; {b}: {transitions(st, b, t0)}"
    )
    assert watch.doubles == [], f"both nodes MASTER at once: {watch.doubles[:10]}"
    assert overlaps == [], f"both nodes MASTER at once, per their logs: {overlaps}"
    masters = labmod.masters(st)
    assert len(masters) == 1 and labmod.vip_holders(st) == masters
    assert {n: containers(st.nodes[n]) for n in (m, b)} == before, "a Harbor was restarted"


def test_a_broken_standby_raises_its_fault_and_the_master_keeps_the_vip(good_lab: Lab) -> None:
    """The standby's own registry container stopped: its fault file goes up (a standby whose
    Harbor is broken never takes the VIP), the master stays MASTER with the VIP; the registry
    started again, the standby's fault clears and nothing moved."""
    st, client, m, b = good_lab.st, good_lab.client, good_lab.master, good_lab.backup
    node = st.nodes[b]
    t0 = time.time()
    labmod.sh("docker", "-H", node.docker_host, "stop", "registry", timeout=60)
    try:

        def raised() -> tuple[float | None, str]:
            got = fault_file(node)
            return (time.time() if got == "1" else None), f"fault file {got}"

        at = helpers.wait_for(f"{b}'s fault file up", raised, 60, every_s=0.1)
        helpers.figure(f"replicated/broken standby: {b}'s fault file up {at - t0:.2f} s after")
        assert labmod.masters(st) == [m] and labmod.vip_holders(st) == [m]
    finally:
        labmod.sh("docker", "-H", node.docker_host, "start", "registry", timeout=60)
    seen = helpers.wait_clean_backup(st, b)
    helpers.figure(f"replicated/broken standby: {b} clean again {seen - t0:.2f} s after")
    assert labmod.masters(st) == [m] and labmod.vip_holders(st) == [m]
    assert client.check().served_by == m


def test_a_partition_heals_to_one_master(good_lab: Lab) -> None:
    """The two nodes cut from each other (VRRP included; both keep the client): each
    keepalived takes the VIP, so both harbor-ha are MASTER with a healthy Harbor (the shape's
    known limit: both sides accept pushes during a partition).  Healed: exactly one MASTER
    holds the VIP again and the other is a clean BACKUP."""
    st, client, m, b = good_lab.st, good_lab.client, good_lab.master, good_lab.backup
    labmod.partition(st, m, b)
    try:

        def split() -> tuple[float | None, str]:
            states = {n: helpers.status(st, n).get("state") for n in (m, b)}
            both = all(v == "MASTER" for v in states.values())
            return (time.time() if both else None), f"states {states}"

        t0 = time.time()
        at = helpers.wait_for("both nodes MASTER while partitioned", split, 60, every_s=0.1)
        helpers.figure(f"replicated/partition: both MASTER {at - t0:.2f} s after the cut")
    finally:
        labmod.heal(st)
    t1 = time.time()
    helpers.wait_good(st, client)
    masters = labmod.masters(st)
    helpers.figure(
        f"replicated/partition: healed to one MASTER ({masters}) {time.time() - t1:.2f} s after"
    )
    assert len(masters) == 1 and labmod.vip_holders(st) == masters
