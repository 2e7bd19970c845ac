"""`harbor-ha check` across nodes on loopback: node a runs the real CLI (a subprocess, its own
env), nodes b and c are harbor-ha's real read-only HTTP listener (harbor_ha.http) serving the
/status key cluster_fingerprint from the daemon's real ClusterWatch over Harbor's files
written for each node.  c's CSRF key differs and its jobservice logs to FILE; d's port is
closed.  The check names the item and the nodes, warns for d, and never prints a secret."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from harbor_ha.daemon.cluster import ClusterWatch
from harbor_ha.http import Endpoints, HttpServers
from harbor_ha.metrics import Metrics
from harbor_ha.settings import Settings, load_settings
from tests.harbor_config import HarborInstall, HarborValues, secret_values, write_install
from tests.unit.test_cli_ops import closed_port

pytestmark = pytest.mark.integration

SHARED = HarborValues()
VALUES = {
    "a": SHARED,
    "b": SHARED,
    "c": SHARED.copy(
        csrf_key="c-has-its-own-csrf-key-0123456789", job_loggers=("STD_OUTPUT", "FILE")
    ),
}


def node_env(name: str, install: HarborInstall, nodes: str, tmp: Path) -> dict[str, str]:
    """The env of one node's harbor-ha (the shared mode's object-storage variant: no Ceph
    setting, nothing to mount)."""
    return {
        "HARBOR_HA_VIP": "10.0.0.100/24", "HARBOR_HA_INTERFACE": "eth0",
        "HARBOR_HA_MODE": "shared", "HARBOR_HA_SHARED_FS_TYPE": "none",
        "HARBOR_HA_NODE_NAME": name,
        "HARBOR_HA_NODES": nodes, "HARBOR_HA_PEER_TIMEOUT_S": "2",
        "HARBOR_HA_HARBOR_CONFIG_DIR": str(install.config_dir),
        "HARBOR_HA_HARBOR_SECRET_DIR": str(install.secret_dir),
        "HARBOR_HA_COMPOSE_FILE": str(install.compose_file),
        "HARBOR_HA_RUNTIME_DIR": str(tmp / "run"),
        "HARBOR_HA_KEEPALIVED_CONF": str(tmp / "keepalived.conf"),
        "HARBOR_HA_DOCKER_HOST": f"unix://{tmp / 'no-docker.sock'}",
    }  # fmt: skip


class Node:
    """One node's harbor-ha HTTP listener with its ClusterWatch."""

    def __init__(self, settings: Settings, sock: Path) -> None:
        self.metrics = Metrics()
        self.watch = ClusterWatch(settings, self.metrics)
        name = settings.node_name

        def status() -> dict[str, Any]:
            return {"node": name, "cluster_fingerprint": self.watch.view()}

        def ok() -> tuple[bool, str]:
            return True, "not judged here"

        self.http = HttpServers(
            Endpoints(self.metrics.registry, ok, ok, ok, status),
            host="127.0.0.1", port=settings.http_port, control_socket=sock,
        )  # fmt: skip

    def mismatch(self, item: str) -> float | None:
        return self.metrics.registry.get_sample_value("harbor_ha_cluster_mismatch", {"item": item})


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[dict[str, str], dict[str, Node]]]:
    """Nodes b and c listening on loopback ports; a's env for the CLI; d listed, closed."""
    ports = {n: closed_port() for n in "abcd"}
    nodes = ",".join(f"{n}=127.0.0.1:{p}" for n, p in ports.items())
    envs = {}
    for name in "abc":
        install = write_install(tmp_path / name, VALUES[name])
        envs[name] = node_env(name, install, nodes, tmp_path / name)
    running: dict[str, Node] = {}
    try:
        for name in "bc":
            env = {**envs[name], "HARBOR_HA_HTTP_PORT": str(ports[name])}
            running[name] = Node(load_settings(None, env), tmp_path / name / "control.sock")
            await running[name].http.start()
        for _ in range(2):  # a first look finds the others without a reading of their own yet
            for node in running.values():
                await node.watch.look()  # reads its files, then the others' /status
        yield envs["a"], running
    finally:
        for node in running.values():
            await node.http.stop()


async def run_check(env: Mapping[str, str]) -> tuple[int, str, str]:
    """`harbor-ha check --json` as a process: (exit code, stdout, stderr)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HARBOR_", "CEPH_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harbor_ha.cli", "check", "--json",
        env={**base, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_names_the_mismatch_without_the_secret(
    cluster: tuple[dict[str, str], dict[str, Node]],
) -> None:
    """check FAILs csrf_key naming the groups a, b | c and node c's FILE job logger, WARNs
    for the closed d, finds every other item identical, and prints no secret value."""
    env, _ = cluster
    code, output, logs = await run_check(env)
    report = json.loads(output)
    cluster_findings = {
        (f["level"], f["message"])
        for f in report["findings"]
        if f["message"].startswith("cluster:")
    }
    fails = sorted(m for level, m in cluster_findings if level == "FAIL")
    assert code == 3 and report["ok"] is False
    assert len(fails) == 2, fails
    assert fails[0].startswith("cluster: csrf_key (the CSRF key") and "a, b | c" in fails[0]
    assert fails[1].startswith("cluster: node c: jobservice writes job logs to FILE")
    warns = [m for level, m in cluster_findings if level == "WARN"]
    assert len(warns) == 1 and warns[0].startswith("cluster: node d not compared: unreachable")
    assert sum(1 for level, _ in cluster_findings if level == "OK") == 11
    leaked = [s for v in VALUES.values() for s in secret_values(v) if s in output + logs]
    assert leaked == []


async def test_the_daemons_comparison_sets_the_metric(
    cluster: tuple[dict[str, str], dict[str, Node]],
) -> None:
    """b's ClusterWatch, comparing b and c over HTTP (a and d down), sets
    harbor_ha_cluster_mismatch for csrf_key and job_logger_file to 1, the others to 0; its
    /status fingerprint holds hashes, no secret."""
    _, nodes = cluster
    b = nodes["b"]
    assert b.mismatch("csrf_key") == 1 and b.mismatch("job_logger_file") == 1
    assert b.mismatch("core_secret") == 0 and b.mismatch("harbor_version") == 0
    assert b.metrics.registry.get_sample_value("harbor_ha_cluster_nodes_compared") == 2
    shown = json.dumps(b.watch.view())
    assert [s for s in secret_values(SHARED) if s in shown] == []
