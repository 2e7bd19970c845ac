"""End-to-end, harbor-ha's shared mode (HARBOR_HA_MODE=shared): three nodes a, b, c, each
running Harbor (the registry stack without its own PostgreSQL and Redis) on one CephFS
mounted by harbor-ha with ceph-fuse, the external PostgreSQL and Redis in their own netns,
HAProxy (``harbor-ha render-haproxy``) with keepalived holding the VIP in front
(lab/shared.py).  Continuous skopeo pushes and pulls through the VIP while the client's node
is drained (``harbor-ha drain``, rejoined by ``maintenance off``), killed (harbor-ha and its
Harbor containers, kill -9), made unhealthy (core's switch) and cut from CephFS (its
ceph-fuse killed) (lab/shared_faults.py).

This module brings up its own lab (/var/tmp/hhe2s, netns prefix hhe2s, 10.95.0.0/24); the
conftest runs it before the session's lab, so two labs are never up together.  Pinned: no
acknowledged push is missing after any fault, through the VIP or on any serving node; a
drain fails no request.  Durations and the other faults' failed requests are printed as
figures (no timed assertions; deadlines only bound a hang).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab as labmod
from lab.client import Client
from lab.shared import lb_detection_s
from lab.shared_faults import FaultFigures, PushPullLoad, run_fault, wait_all_in_rotation
from lab.traffic import Traffic
from tests.e2e import helpers
from tests.e2e.conftest import LOGS_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

LABDIR = Path("/var/tmp/hhe2s")
PREFIX = "hhe2s"
SUBNET = "10.95.0.0/24"
UP_WITHIN_S = 300.0


class SharedRun:
    """The lab, its client and the load running through the whole module."""

    def __init__(self, st: labmod.LabState) -> None:
        self.st = st
        self.ca_dir = next(iter(st.nodes.values())).ca_dir
        self.workdir = LABDIR / "client"
        self.client = Client(st.client_netns, st.vip_address)
        self.load = PushPullLoad(Traffic(st.client_netns, st.vip_address, self.ca_dir,
                                         self.workdir), every_s=0.2)  # fmt: skip

    def fault(self, kind: str) -> FaultFigures:
        fig = run_fault(self.st, self.load, self.client, kind, self.ca_dir, self.workdir)
        self.st.save()
        helpers.figure(fig.line())
        print(fig.line())
        return fig


@pytest.fixture(scope="module")
def shared(request: pytest.FixtureRequest) -> Iterator[SharedRun]:
    """The shared lab up with every node serving and the load running; torn down at the end
    whatever happens (node logs copied to /var/tmp/hhe2s-logs-* first if anything failed)."""
    import os

    if os.geteuid() != 0:
        pytest.skip("the e2e lab needs root")
    before = request.session.testsfailed
    st: labmod.LabState | None = None
    run: SharedRun | None = None
    failed = True
    t0 = time.monotonic()
    try:
        st = labmod.up(LABDIR, prefix=PREFIX, subnet=SUBNET, mode="shared", stack="registry",
                       nodes=("a", "b", "c"), say=print)  # fmt: skip
        wait_all_in_rotation(st, UP_WITHIN_S)
        helpers.figure(
            f"shared lab up, a, b, c serving and UP in HAProxy: {time.monotonic() - t0:.1f} s; "
            f"HAProxy's rendered detection time {lb_detection_s(st):g} s"
        )
        run = SharedRun(st)
        run.load.start()
        failed = False
        yield run
        failed = request.session.testsfailed > before
    finally:
        if run is not None:
            run.load.stop()
            run.client.close()
        if st is not None and failed:
            dest = LOGS_ROOT / f"{PREFIX}-logs-{time.strftime('%Y%m%dT%H%M%S')}"
            with contextlib.suppress(Exception):
                labmod.collect_logs(st, dest)
                print(f"e2e: node logs copied to {dest}")
        labmod.down(LABDIR, say=print)


@pytest.fixture(autouse=True)
def good_lab() -> None:
    """This module's lab is its own (``shared``): the session lab's reset does not apply."""


def test_a_drained_node_fails_no_request_and_loses_no_push(shared: SharedRun) -> None:
    """`harbor-ha drain` of the client's node: /serving turns 503, HAProxy sends new
    connections elsewhere while Harbor still answers the ones in flight, then Harbor stops;
    `maintenance off` brings it back.  No request fails, every acknowledged push is there
    through the VIP and on each serving node."""
    fig = shared.fault("drain")
    assert fig.pushes > 0 and fig.pulls > 0
    assert fig.failed == 0, fig.line()
    assert fig.missing == 0, fig.line()


def test_a_killed_node_loses_no_acknowledged_push(shared: SharedRun) -> None:
    """kill -9 of the client's node's harbor-ha and Harbor containers: HAProxy takes it out
    within its detection time (failed requests printed), harbor-ha restarted brings Harbor
    back; every acknowledged push is there through the VIP and on each serving node."""
    fig = shared.fault("kill")
    assert fig.pushes > 0
    assert fig.missing == 0, fig.line()


def test_an_unhealthy_node_leaves_rotation_and_loses_no_push(shared: SharedRun) -> None:
    """Core's unhealthy switch on the client's node: harbor-ha drains it and stops Harbor;
    the switch off, it rejoins by itself; every acknowledged push is there."""
    fig = shared.fault("unhealthy")
    assert fig.out_of_rotation_s is not None, fig.line()
    assert fig.missing == 0, fig.line()


def test_a_node_cut_from_cephfs_leaves_rotation_and_loses_no_push(shared: SharedRun) -> None:
    """The client's node's ceph-fuse killed (its shared mount lost): harbor-ha drains it,
    stops Harbor, unmounts and mounts again by itself; every acknowledged push is there."""
    fig = shared.fault("cephfs")
    assert fig.out_of_rotation_s is not None, fig.line()
    assert fig.missing == 0, fig.line()


def test_a_crashed_node_is_evicted_and_loses_no_push(shared: SharedRun) -> None:
    """The client's node dies as a whole (kill -9 of harbor-ha, its Harbor containers and its
    ceph-fuse): HAProxy takes it out, and the others, its harbor-ha unanswered for
    HARBOR_HA_SHARED_EVICT_AFTER_S, evict its CephFS session at the MDS, so their registries
    stop waiting for the capabilities it held (the time until pushes and pulls succeed again
    is printed); restarted, harbor-ha mounts again and serves; every acknowledged push is
    there."""
    fig = shared.fault("crash")
    assert fig.pushes > 0
    assert fig.out_of_rotation_s is not None, fig.line()
    assert fig.evicted >= 1, fig.line()
    assert fig.missing == 0, fig.line()


def test_every_acknowledged_push_of_the_run_pulls_back(shared: SharedRun) -> None:
    """After all the faults, every push the registry acknowledged during the module pulls
    back through the VIP with its digest."""
    shared.load.stop()
    assert len(shared.load.pushes.acked) > 0
    assert shared.load.missing_pushes(window=[]) == []
