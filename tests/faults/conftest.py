"""Fault suite fixtures: one two-node lab per session (own labdir and prefix, so other labs
can run on the machine at the same time), brought back to its one good shape before each
test, and a ``record`` fixture whose rows become docs/reliability.md (tests/faults/report.py).

Environment:
- HHFLT_REUSE=LABDIR  use (and keep) a lab already up in LABDIR instead of making one;
- HHFLT_KEEP=1        leave the session's lab up at the end (for post-mortems);
- HHFLT_RESULTS=FILE  write the recorded rows and outcomes as JSON to FILE at session end.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pluggy
import pytest

import lab
from lab import LabState
from tests.faults import faultlab as fl
from tests.faults import promotions

LOGS = Path("/var/tmp/hhflt-logs")


@dataclass
class Row:
    """One line of the reliability table."""

    test: str
    injected: str
    runs: int
    expected: str
    observed: str
    figures: str = ""
    outcome: str = ""  # filled from the test report: passed | failed | xfailed | skipped


_ROWS: dict[str, list[Row]] = {}
_OUTCOMES: dict[str, str] = {}
_DOCS: dict[str, str] = {}


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """record(injected=, runs=, expected=, observed=, figures=): one row of the table.

    Call it before the assertions that judge the row (the outcome column says if they held)."""

    def add(
        *, injected: str, expected: str, observed: str, runs: int = 1, figures: str = ""
    ) -> None:
        nodeid = request.node.nodeid
        _ROWS.setdefault(nodeid, []).append(
            Row(nodeid, injected, runs, expected, observed, figures)
        )
        print(f"[fault] {injected} x{runs}: expected {expected}; observed {observed}; {figures}")

    return add


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" or (rep.when == "setup" and not rep.passed):
        if hasattr(rep, "wasxfail"):
            state = "xfailed" if rep.skipped else "xpassed"
        else:
            state = rep.outcome
        _OUTCOMES[item.nodeid] = state
        item.stash[_FAILED] = not rep.passed and not hasattr(rep, "wasxfail")
        doc = getattr(getattr(item, "function", None), "__doc__", None) or item.name
        _DOCS[item.nodeid] = " ".join(doc.split())
    elif rep.when == "teardown" and rep.failed:
        _OUTCOMES[item.nodeid] = "failed (teardown)"


_FAILED = pytest.StashKey[bool]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    dest = os.environ.get("HHFLT_RESULTS")
    if not dest:
        return
    rows = []
    for nodeid, outcome in _OUTCOMES.items():
        default = [Row(nodeid, _DOCS.get(nodeid, ""), 1, "(see Injected)", "as expected")]
        if outcome not in ("passed",):
            default[0].observed = "see the test log"
        for row in _ROWS.get(nodeid, []) or default:
            row.outcome = outcome
            rows.append(asdict(row))
    Path(dest).write_text(json.dumps(rows, indent=1))
    Path(dest).with_suffix(".promotions").write_text("\n".join(TALLY))


# ------------------------------------------------------------------ promotions
_INJECTED: dict[str, list[float]] = {}
"""node -> when a test switched one of its Harbor services unhealthy (lab.set_unhealthy)."""
TALLY: list[str] = []
"""The session's promotions and fresh masters demoted (tests/faults/promotions.py)."""


def _switch(plain: Callable[..., None], st: LabState, name: str, service: str, on: bool) -> None:
    if on:
        _INJECTED.setdefault(name, []).append(time.time())
    plain(st, name, service, on)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in TALLY:
        terminalreporter.write_line(f"[faults] {line}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``runs_last`` run after all the others, which keep their order: such a test
    can leave the session's shared lab broken for minutes (test_backoff.py says why)."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)


# ------------------------------------------------------------------------ lab
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the fault suite needs root (netns, loop devices, dockerd)")


@pytest.fixture(scope="session")
def flt_lab() -> Iterator[LabState]:
    """The two-node lab of this session: labdir /var/tmp/hhflt-XXXX, netns prefix hfXXXX."""
    _need_root()
    reuse = os.environ.get("HHFLT_REUSE")
    if reuse:
        yield LabState.load(Path(reuse))
        return
    tag = secrets.token_hex(2)
    labdir = Path(f"/var/tmp/hhflt-{tag}")
    st = lab.up(labdir, prefix=f"hf{tag}", say=lambda m: print(m, flush=True))
    since = time.time()
    plain_switch = lab.set_unhealthy
    lab.set_unhealthy = functools.partial(_switch, plain_switch)
    try:
        tune_lab(st)
        yield st
    finally:
        lab.set_unhealthy = plain_switch
        logs = {name: node.log for name, node in st.nodes.items()}
        TALLY.append(promotions.tally(logs, _INJECTED, since).line())
        fl.reap_writers()
        if os.environ.get("HHFLT_KEEP"):
            print(f"fault lab left up in {labdir}")
        else:
            lab.down(labdir, say=lambda m: print(m, flush=True))


LAB_ENV = {"HARBOR_HA_PROBE_FALL": "4"}
"""Daemon settings of the fault lab: Harbor's probes must fail 4 times in a row (1 s apart)
before a master gives up; the default lab's 2 flaps under the load of several labs on
2 cores (load average 40 measured) and turns every test into a failover storm."""

READ_LEASE_RATIO = 15
"""The lab OSD's PG read lease, as a multiple of osd_heartbeat_grace (20 s): 300 s instead of
Ceph's 0.8 (16 s).  A PG whose lease lapses while the lab's single OSD is SIGSTOPped (the
whole-Ceph-frozen row: 60 s) can stay `laggy` after SIGCONT, every op on it "waiting for
readable" until an OSD restart: with no replica, nothing renews it (measured 2026-12-02: PG
1.2 active+clean+laggy, 99 ops parked for 6 min, the lease object and the image header among
them; Ceph tracker 80404, ceph-container#1682).  A real cluster's replicas renew it; a lease
longer than the freeze (renewed at least every half lease) keeps the lab's one-OSD Ceph from
wedging, so the row tests harbor-ha, not that Ceph defect.  Runtime only (the admin socket):
the suite never restarts the OSD, where a long lease would delay its PGs."""


def tune_ceph(st: LabState) -> None:
    """Give the lab OSD a PG read lease longer than any freeze the suite injects."""
    asok = Path(st.ceph_dir) / "run" / "osd.0.asok"
    lab.sh("ceph", "--admin-daemon", str(asok), "config", "set",
           "osd_pool_default_read_lease_ratio", str(READ_LEASE_RATIO))  # fmt: skip


def tune_lab(st: LabState) -> None:
    """Apply LAB_ENV (the Harbor stacks keep Harbor's own healthcheck cadence, 30 s): both
    nodes in maintenance (Harbor stopped, image unmapped), edit, restart both daemons (they
    reconcile from facts), wait for convergence; and the OSD's read lease (READ_LEASE_RATIO)."""
    tune_ceph(st)
    for name in st.nodes:
        lab.harbor_ha(st.nodes[name], "maintenance", "on")
    for name in st.nodes:
        fl.poll(
            functools.partial(fl.backup_unmapped, st, name),
            120,
            f"{name} BACKUP and unmapped in maintenance",
        )
    for name, node in st.nodes.items():
        fl.set_env(st, name, **LAB_ENV)
        lab.kill_pid(node.pids["harbor-ha"], signal.SIGTERM, group=False, wait_s=40)
    lab.reap()
    for name in st.nodes:
        fl.restart_daemon(st, name)
    fl.wait_converged(st, 180)


def _restore_env(st: LabState, saved: dict[str, str]) -> None:
    for name, text in saved.items():
        node = st.nodes[name]
        if node.env_file.read_text() != text:
            node.env_file.write_text(text)
            if fl.daemon_alive(node):
                lab.kill_pid(node.pids["harbor-ha"], signal.SIGTERM, group=False, wait_s=40)
                lab.reap()


def settle(st: LabState, within_s: float = 150) -> float:
    """Bring the lab back to its one good shape: heal the network, start what is not running,
    wait until exactly one node serves and the other is a clean standby."""
    lab.heal(st)
    for name in st.nodes:
        for service in ("core", "registry", "postgresql", "proxy", "portal", "redis"):
            lab.set_unhealthy(st, name, service, False)
    fl.ensure_services(st)
    took = fl.wait_converged(st, within_s)
    # A standby still in a backoff from the previous test's (deliberate) failures could not
    # take over: a test of a hand-over would measure the leftover, not its fault.  Restart
    # its daemon (as an operator or systemd would): it reconciles from facts, fault clear.
    for name in st.nodes:
        s = lab.status(st, name)
        if s.get("state") == "BACKUP" and s.get("fault") and not s.get("maintenance"):
            print(f"settle: standby {name} still faulted (failures {s.get('failures')}): restart")
            fl.crash_daemon(st, name)
            fl.restart_daemon(st, name)
    fl.poll(
        lambda: all(
            not lab.status(st, n).get("fault")
            for n in st.nodes
            if lab.status(st, n).get("state") == "BACKUP"
        ),
        60,
        "standby fault clear",
        every_s=0.5,
    )
    return took + fl.wait_converged(st, within_s)


@pytest.fixture
def fault_lab(flt_lab: LabState, request: pytest.FixtureRequest) -> Iterator[LabState]:
    """The session's lab in its good shape (one MASTER serving, one clean BACKUP) at the start
    of the test; env-file overrides undone and logs kept under /var/tmp/hhflt-logs/ after it."""
    st = flt_lab
    settle(st)
    saved = {name: node.env_file.read_text() for name, node in st.nodes.items()}
    t0 = time.time()
    yield st
    failed = request.node.stash.get(_FAILED, False)
    if failed:
        dest = LOGS / request.node.name.replace("/", "_")
        shutil.rmtree(dest, ignore_errors=True)
        lab.collect_logs(st, dest)
        (dest / "t0").write_text(f"{t0}\n")
    _restore_env(st, saved)
    fl.reap_writers()


def report_facts(st: LabState) -> dict[str, Any]:
    return {k: asdict(v) for k, v in fl.facts(st).items()}
