"""End-to-end suite: the two-node lab (lab/) with real keepalived, Ceph, dockerd and harbor-ha.

- ``lab`` (session): the lab in its own dir and netns prefix (other labs may run on this
  machine at the same time), up until exactly one MASTER serves a healthy Harbor; always torn
  down, and on any failure both nodes' harbor-ha and keepalived logs are copied first to a
  directory named in the output.
- ``good_lab`` (function, autouse): before each test, brings the lab back to its known good
  state (services running, unhealthy switches off, no partition, maintenance off; one healthy
  MASTER, the other a clean BACKUP) by polling with deadlines; gives (lab, master, backup).
- ``client``: the lab's HTTPS client in the client netns (Harbor's health through the VIP).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import lab as labmod
from lab.client import Client
from tests.e2e import helpers

LABDIR = Path("/var/tmp/hhe2e")
PREFIX = "hhe2e"
LOGS_ROOT = Path("/var/tmp")
_LOG_DIRS: list[Path] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if helpers.FIGURES:
        terminalreporter.section("harbor-ha e2e: measured figures")
        for line in helpers.FIGURES:
            terminalreporter.write_line(line)
    for d in _LOG_DIRS:
        terminalreporter.write_line(f"harbor-ha e2e: node logs of the failed run copied to {d}")


def _say(request: pytest.FixtureRequest, line: str) -> None:
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(line)
    else:
        print(line, flush=True)


@contextlib.contextmanager
def bring_up(
    request: pytest.FixtureRequest,
    labdir: Path,
    prefix: str,
    stack: str = "shape",
    *,
    subnet: str = "10.99.0.0/24",
    mode: str = "rbd",
) -> Iterator[labmod.LabState]:
    """A two-node lab in ``labdir`` with netns prefix ``prefix`` on ``subnet``, Harbor project
    ``stack`` and harbor-ha's ``mode``, up with exactly one healthy MASTER; torn down at the end
    whatever happens (node logs copied to /var/tmp/PREFIX-logs-* first if anything failed)."""
    if os.geteuid() != 0:
        pytest.skip("the e2e lab needs root")
    st: labmod.LabState | None = None
    failed = True
    t0 = time.monotonic()
    before = request.session.testsfailed
    try:
        st = labmod.up(
            labdir,
            prefix=prefix,
            subnet=subnet,
            say=lambda line: _say(request, line),
            stack=stack,
            mode=mode,
        )
        with vip_client(st) as client:
            m, _ = helpers.wait_good(st, client, within_s=240)
        kind = stack if mode == "rbd" else f"{stack}, {mode}"
        helpers.figure(
            f"lab ({kind}) up with {m} MASTER and Harbor healthy: {time.monotonic() - t0:.1f} s"
        )
        failed = False
        yield st
        failed = request.session.testsfailed > before
    finally:
        if st is not None and failed:
            dest = LOGS_ROOT / f"{prefix}-logs-{time.strftime('%Y%m%dT%H%M%S')}"
            try:
                labmod.collect_logs(st, dest)
                _LOG_DIRS.append(dest)
                _say(request, f"e2e: node logs copied to {dest}")
            except Exception as exc:  # teardown must still happen
                _say(request, f"e2e: could not copy the node logs: {exc}")
        labmod.down(labdir, say=lambda line: _say(request, line))


FIRST_MODULES = (
    "test_registry_traffic.py",
    "test_replicated.py",
    "test_replicated_registry.py",
    "test_shared.py",
)
"""Modules with their own lab (module-scoped ``lab``): run first, so that the session's lab is
not up at the same time (two labs on two cores would distort every timing)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in FIRST_MODULES)


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Iterator[labmod.LabState]:
    """The two-node lab with the busybox Harbor shape (see :func:`bring_up`)."""
    with bring_up(request, LABDIR, PREFIX) as st:
        yield st


@contextlib.contextmanager
def vip_client(st: labmod.LabState) -> Iterator[Client]:
    """HTTPS client in the lab's client netns, asking Harbor's health through the VIP; closed
    at the end."""
    c = Client(st.client_netns, st.vip_address)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def client(lab: labmod.LabState) -> Iterator[Client]:
    """HTTPS client in the lab's client netns, asking Harbor's health through the VIP."""
    with vip_client(lab) as c:
        yield c


@dataclass
class Lab:
    """The lab as a test starts it: master and backup of this moment."""

    st: labmod.LabState
    client: Client
    master: str
    backup: str


def restore(st: labmod.LabState, client: Client, within_s: float = 150) -> tuple[str, str]:
    """Bring the lab back to its known good state; (master, backup)."""
    labmod.heal(st)
    for name, node in st.nodes.items():
        for flag in node.control_dir.glob("unhealthy-*"):
            flag.unlink(missing_ok=True)
        ha_alive = labmod.alive(node.pids.get("harbor-ha", 0) or 0)
        ka_alive = labmod.alive(node.pids.get("keepalived", 0) or 0)
        if not ha_alive:
            if ka_alive:
                labmod.kill_pid(node.pids["keepalived"])
            labmod.start_services(st, name)
        elif not ka_alive:
            labmod.start_keepalived(node)
            st.save()
        elif helpers.status(st, name).get("maintenance"):
            labmod.harbor_ha(node, "maintenance", "off")
    return helpers.wait_good(st, client, within_s=within_s)


@pytest.fixture(autouse=True)
def good_lab(lab: labmod.LabState, client: Client) -> Lab:
    """Before each test: the lab in its known good state (see :func:`restore`)."""
    t0 = time.monotonic()
    m, b = restore(lab, client)
    print(f"good state: {m} MASTER, {b} clean BACKUP ({time.monotonic() - t0:.1f} s to reach)")
    return Lab(lab, client, m, b)
