"""One whole promotion and demotion on one node with every part real.

A one-node lab (lab/): Ceph mon + OSD in their own netns, the node's own containerd +
dockerd with the Harbor-shaped project, keepalived with the config `harbor-ha render-keepalived`
wrote, and `harbor-ha run` itself. keepalived alone elects the node MASTER; `harbor-ha
maintenance on` sets the fault file, keepalived goes FAULT, and the node demotes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab
from lab import timeline
from lab.harbor_shape import CONTAINER_NAMES

pytestmark = pytest.mark.integration

LABDIR = Path("/var/tmp/hhi-node")


@pytest.fixture(scope="module")
def one_node() -> Iterator[lab.LabState]:
    st = lab.up(LABDIR, prefix="hhin", nodes=("a",), say=print)
    try:
        yield st
    finally:
        logs = Path("/var/tmp/hhi-node-logs")
        lab.collect_logs(st, logs)
        print(f"logs kept in {logs}")
        lab.down(LABDIR, say=print)


def _wait(cond: object, what: str, within_s: float = 90.0) -> None:
    assert callable(cond)
    deadline = time.monotonic() + within_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        time.sleep(0.2)


def test_promotion_then_demotion_with_real_parts(one_node: lab.LabState) -> None:
    """BACKUP -> FENCING -> MAPPING -> MOUNTING -> STARTING -> MASTER with Harbor healthy and
    its data on the RBD image (the mountpoint is mounted from the mapped device); then back to
    BACKUP with nothing mapped, mounted or running. Each step's duration is printed."""
    st = one_node
    node = st.nodes["a"]
    t0 = time.time() - 60
    _wait(lambda: lab.status(st, "a").get("state") == "MASTER", "MASTER")
    status = lab.status(st, "a")
    assert status["harbor_healthy"] is True
    device = status["device"]
    assert device and lab.mapped_here(node) == [device]
    # Harbor's data is on the image: the mountpoint is a mount of the mapped device, and the
    # Harbor-shaped services wrote their markers into it.
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert f" {node.mountpoint} " in mountinfo
    assert any(node.mountpoint.glob("registry/shape-registry.log")) or any(
        node.mountpoint.rglob("shape-*.log")
    ), "Harbor-shaped services wrote nothing onto the image"
    assert len(lab.running_all(node)) == len(CONTAINER_NAMES)
    entries = timeline.read(node.log, "a", since=t0)
    path = [e.fields["to"] for e in entries if e.msg == "transition"]
    assert path[-5:] == ["FENCING", "MAPPING", "MOUNTING", "STARTING", "MASTER"]
    up = timeline.step_durations(entries)
    print("\npromotion steps:", json.dumps(up))

    t1 = time.time()
    res = lab.harbor_ha(node, "maintenance", "on")
    assert res.returncode == 0, res.stderr
    _wait(lambda: lab.status(st, "a").get("state") == "BACKUP", "BACKUP after maintenance on")
    assert lab.mapped_here(node) == []
    assert not lab.mounted_here(node)
    assert lab.running_all(node) == {}, "maintenance: not even the stateless services run"
    status = lab.status(st, "a")
    assert status["fault"] is True and status["maintenance"] is True
    down_entries = timeline.read(node.log, "a", since=t1)
    path = [e.fields["to"] for e in down_entries if e.msg == "transition"]
    assert path == ["STOPPING", "UNMOUNTING", "UNMAPPING", "BACKUP"]
    print("demotion steps:", json.dumps(timeline.step_durations(down_entries)))
    # The bare mountpoint is guarded: nothing can write onto the root filesystem under it.
    with pytest.raises(PermissionError):
        (node.mountpoint / "stray-write").write_text("x")

    # Maintenance off: the lone node is elected again and serves.
    assert lab.harbor_ha(node, "maintenance", "off").returncode == 0
    _wait(lambda: lab.status(st, "a").get("state") == "MASTER", "MASTER again")


def test_preflight_check_on_a_configured_node(one_node: lab.LabState) -> None:
    """`harbor-ha check` on a correctly configured node passes (exit 0); with a data-bearing
    service binding only the mountpoint itself it WARNs naming it (dockerd could start it on
    the bare mountpoint); pointed at an image that does not exist it names the problem and
    exits 3."""
    node = one_node.nodes["a"]
    res = lab.harbor_ha(node, "check", check=False, timeout=120)
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK: preflight passed" in res.stdout
    assert "bare mountpoint" not in res.stdout
    # Core binding only the mountpoint itself (no ca_download, none of its long-syntax secret
    # file binds, which Docker refuses to start without): a WARN naming it, still exit 0.
    compose = node.path / "compose-root-only.yml"
    lines = (node.path / "harbor" / "docker-compose.yml").read_text().splitlines()
    kept: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "- type: bind" and (
            "secret/core/" in lines[i + 1] or "secret/keys/" in lines[i + 1]
        ):
            i += 3  # type, source, target
            continue
        if "ca_download" not in lines[i]:
            kept.append(lines[i])
        i += 1
    compose.write_text("\n".join(kept) + "\n")
    root_env = node.path / "root-only.env"
    root_env.write_text(node.env_file.read_text() + f"HARBOR_HA_COMPOSE_FILE={compose}\n")
    res = lab.sh(
        "nsenter", f"--net=/run/netns/{node.netns}", lab.HARBOR_HA, "--env-file", str(root_env),
        "check", check=False, timeout=120,
    )  # fmt: skip
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    assert any(
        ln.startswith("WARN") and "'core'" in ln and "bare mountpoint" in ln
        for ln in res.stdout.splitlines()
    ), res.stdout
    bad_env = node.path / "bad-image.env"
    bad_env.write_text(node.env_file.read_text() + "HARBOR_HA_CEPH_IMAGE=no-such-image\n")
    res = lab.sh(
        "nsenter", f"--net=/run/netns/{node.netns}", lab.HARBOR_HA, "--env-file", str(bad_env),
        "check", check=False, timeout=120,
    )  # fmt: skip
    print(res.stdout)
    assert res.returncode == 3
    assert "no-such-image" in res.stdout and "FAIL" in res.stdout
