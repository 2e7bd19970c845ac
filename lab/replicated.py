"""The replicated mode's part of the lab (HARBOR_HA_MODE=replicated): each node's Harbor runs
all the time on its own local data directory (the node's ``mountpoint``, a plain directory),
started by the lab with the project's own ``compose up -d`` as the operator's install does;
harbor-ha never starts or stops it in this mode (``restart: always`` keeps it running), it only
moves the VIP by Harbor's health.

``start_harbor`` (compose up -d on one node), ``harbor_serves`` (what is missing for "this
node's Harbor serves"), ``wait_serving`` (both nodes, bounded), ``harbor_running`` (every
service of Harbor's project has a running container) and ``primary`` (the node's /primary,
asked from the client's netns).  With the registry stack, ``setup_replication`` writes the
pair's credentials file and runs ``harbor-ha replication setup`` as an operator would, so each
Harbor pushes every image to the other (lab/registry_stack/replicator.py).
"""

from __future__ import annotations

import os
import time
from typing import Any

from lab.client import http_get
from lab.harbor_shape import HARBOR_IMAGES
from lab.node import HTTP_PORT, credentials_file, running_all
from lab.procs import LabError, sh
from lab.state import HARBOR_HA, HTTPS_PORT, PROJECT, LabState, NodeState

HARBOR_SERVICES = frozenset(HARBOR_IMAGES)
"""Harbor's ten compose services (the same in both of the lab's stacks)."""
COMPOSE_UP_TIMEOUT_S = 300.0
SERVE_WITHIN_S = 240.0
"""Bound on a node's Harbor serving after compose up (the registry stack's first start runs
PostgreSQL's initdb; the shape takes seconds)."""


def start_harbor(node: NodeState, compose: str) -> None:
    """``compose -p harbor -f NODE/harbor/docker-compose.yml up -d`` against the node's dockerd."""
    env = {**os.environ, "DOCKER_HOST": node.docker_host}
    argv = (compose, "-p", PROJECT, "-f", str(node.compose_file), "up", "-d")
    sh(*argv, timeout=COMPOSE_UP_TIMEOUT_S, env=env)


def harbor_running(node: NodeState) -> bool:
    """Every service of Harbor's project has a running container on ``node``."""
    return set(running_all(node).values()) >= HARBOR_SERVICES


def harbor_serves(node: NodeState) -> str:
    """'' when the node's Harbor serves: core's ping answers 200 through the node's proxy (from
    inside its netns, on its address) and every service's container runs; else what is not
    so."""
    url = f"https://{node.address}:{HTTPS_PORT}/api/v2.0/ping"
    code, body = http_get(node.netns, url)
    if code != 200:
        return f"{url}: {code or ''} {body[:200]}".strip()
    missing = HARBOR_SERVICES - set(running_all(node).values())
    return f"not running: {', '.join(sorted(missing))}" if missing else ""


def wait_serving(st: LabState, within_s: float = SERVE_WITHIN_S, say: Any = print) -> None:
    """Wait until every node's Harbor serves (:func:`harbor_serves`); LabError naming the node
    and what was last seen after ``within_s``."""
    t0 = time.monotonic()
    for node in st.nodes.values():
        why = harbor_serves(node)
        while why:
            if time.monotonic() - t0 > within_s:
                raise LabError(f"Harbor on {node.name} does not serve within {within_s:g} s: {why}")
            time.sleep(0.5)
            why = harbor_serves(node)
        say(f"lab: Harbor serves on {node.name} ({time.monotonic() - t0:.1f} s)")


def primary(st: LabState, name: str) -> int:
    """The HTTP status of node ``name``'s ``GET /primary`` (harbor-ha's HTTP port), asked from
    the client's netns; 0 when nothing answered."""
    url = f"http://{st.nodes[name].address}:{HTTP_PORT}/primary"
    return http_get(st.client_netns, url)[0]


ADMIN = ("admin", "Harbor12345")
"""The registry stack's core account (HARBOR_ADMIN_PASSWORD in docker-compose.yml.tmpl)."""


HARBOR_NETWORK = "172.30.250.0/24"
"""The registry stack's harbor network (docker-compose.yml.tmpl), on every node."""


def masquerade(node: NodeState) -> None:
    """NAT what the node's containers send out of its eth0 (core's copies to the peer), as a
    host's dockerd does by default (``--ip-masq``); the lab's dockerd runs with iptables off,
    and both nodes' harbor networks have the same subnet, so the peer could not answer."""
    rule = ["POSTROUTING", "-s", HARBOR_NETWORK, "-o", "eth0", "-j", "MASQUERADE"]
    probe = sh("ip", "netns", "exec", node.netns, "iptables", "-t", "nat", "-C", *rule,
               check=False)  # fmt: skip
    if probe.returncode != 0:
        sh("ip", "netns", "exec", node.netns, "iptables", "-t", "nat", "-A", *rule)


def write_credentials(st: LabState) -> None:
    """The pair's credentials file (docs/runbook.md's format), root's, mode 0600: each node's
    own address, the admin account, the lab CA its certificate is verified with."""
    path = credentials_file(st)
    text = "".join(
        f"[{n.name}]\nurl = https://{n.address}\nusername = {ADMIN[0]}\n"
        f"password = {ADMIN[1]}\ninsecure = false\nca_file = {n.ca_dir / 'ca.crt'}\n\n"
        for n in st.nodes.values()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)


def setup_replication(st: LabState, say: Any = print) -> str:
    """Each node's containers NATed out of it (:func:`masquerade`), the credentials file, then
    ``harbor-ha replication setup --credentials FILE`` on the first node (in its netns, as an
    operator runs it there); returns what it printed."""
    for node in st.nodes.values():
        masquerade(node)
    write_credentials(st)
    first = next(iter(st.nodes.values()))
    res = sh(
        "nsenter", f"--net=/run/netns/{first.netns}", HARBOR_HA, "replication", "setup",
        "--credentials", str(credentials_file(st)), timeout=60,
    )  # fmt: skip
    for line in res.stdout.splitlines():
        say(f"lab: {line}")
    return res.stdout
