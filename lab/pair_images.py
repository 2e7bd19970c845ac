"""The replicated pair's images, seen from the client's netns (registry stack only): pushes
through the VIP or to one node's own address, what each node has (asked at its own address,
never through the VIP), its replication executions (core's API), and a node's whole Harbor
stopped and started again (the node's outage as its peer sees it).

``Pushes`` numbers the tags across every pusher of a test (one counter), so a tag names one
acknowledged image wherever it was pushed; ``Pusher`` pushes in a thread until stopped.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.dockerd import compose_v2_binary
from lab.procs import sh
from lab.replicated import ADMIN, COMPOSE_UP_TIMEOUT_S, start_harbor
from lab.state import PROJECT, LabState, NodeState
from lab.traffic import Traffic, run


def compose_command() -> str:
    """The compose command the lab runs Harbor with (lab/twonode.py's choice)."""
    return compose_v2_binary() or "/usr/bin/docker-compose"


def traffic_to(st: LabState, where: str, workdir: Path) -> Traffic:
    """A skopeo client in the client's netns for ``where``: "vip" or a node's name (its own
    address), verifying the lab CA (one certificate for the VIP and both addresses)."""
    first = next(iter(st.nodes.values()))
    host = st.vip_address if where == "vip" else st.nodes[where].address
    return Traffic(st.client_netns, host, first.ca_dir, workdir / where)


@dataclass
class Pushes:
    """Every acknowledged push of a test: tag -> (time.time() of the ack, digest, where)."""

    acked: dict[int, tuple[float, str, str]] = field(default_factory=dict)
    failed: int = 0
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, t: Traffic, where: str) -> int | None:
        """Push a fresh image with the next tag through ``t``; its tag once acknowledged."""
        with self._lock:
            n = next(self._numbers)
        digest = t.push(n)
        with self._lock:
            if digest is None:
                self.failed += 1
                return None
            self.acked[n] = (time.time(), digest, where)
        return n

    def since(self, t0: float, where: str | None = None) -> dict[int, str]:
        """Tag -> digest of the pushes acknowledged at or after ``t0`` (through ``where``)."""
        with self._lock:
            return {
                n: d for n, (at, d, w) in self.acked.items()
                if at >= t0 and (where is None or w == where)
            }  # fmt: skip

    def digests(self) -> dict[int, str]:
        with self._lock:
            return {n: d for n, (_, d, _) in self.acked.items()}


class Pusher:
    """Pushes through one ``Traffic`` in a thread, ``every_s`` apart, until ``stop``."""

    def __init__(self, pushes: Pushes, t: Traffic, where: str, every_s: float = 0.3) -> None:
        self.pushes, self.t, self.where, self.every_s = pushes, t, where, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.attempts = 0

    def __enter__(self) -> Pusher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.attempts += 1
            self.pushes.push(self.t, self.where)
            self._stop.wait(self.every_s)


def missing_on(t: Traffic, want: dict[int, str]) -> list[int]:
    """The tags of ``want`` whose manifest digest at ``t`` is not the acknowledged one."""
    return sorted(n for n, d in want.items() if t.manifest_digest(n) != d)


def wait_replicated(
    st: LabState, want: dict[int, str], workdir: Path, within_s: float, every_s: float = 2.0
) -> tuple[float | None, dict[str, list[int]]]:
    """Wait until every tag of ``want`` is on every node at its digest (each node asked at
    its own address); (seconds it took or None, tags still missing per node)."""
    t0 = time.monotonic()
    clients = {name: traffic_to(st, name, workdir) for name in st.nodes}
    todo = {name: dict(want) for name in st.nodes}
    while True:
        for name, t in clients.items():
            gone = set(missing_on(t, todo[name]))
            todo[name] = {n: d for n, d in todo[name].items() if n in gone}
        missing = {name: sorted(left) for name, left in todo.items()}
        if not any(missing.values()):
            return round(time.monotonic() - t0, 3), missing
        if time.monotonic() - t0 > within_s:
            return None, missing
        time.sleep(every_s)


def executions(st: LabState, name: str) -> list[dict[str, Any]]:
    """Node ``name``'s replication executions (newest first), from its core's API at its own
    address, asked from the client's netns; [] when it does not answer."""
    node = st.nodes[name]
    url = f"https://{node.address}/api/v2.0/replication/executions?page_size=100"
    rc, out = run(
        ["ip", "netns", "exec", st.client_netns, "curl", "-sf", "--max-time", "5",
         "--cacert", str(node.ca_dir / "ca.crt"), "-u", f"{ADMIN[0]}:{ADMIN[1]}", url],
        15, tail=0,
    )  # fmt: skip
    if rc != 0:
        return []
    data = json.loads(out)
    return data if isinstance(data, list) else []


def _compose(node: NodeState, *args: str) -> None:
    env = {**os.environ, "DOCKER_HOST": node.docker_host}
    argv = (compose_command(), "-p", PROJECT, "-f", str(node.compose_file), *args)
    sh(*argv, timeout=COMPOSE_UP_TIMEOUT_S, env=env)


def stop_harbor(node: NodeState) -> None:
    """``compose stop`` of the node's whole Harbor (as the node's power-off leaves it: nothing
    runs; its data stays on the node's local data dir)."""
    _compose(node, "stop")


def restart_harbor(node: NodeState) -> None:
    """``compose up -d`` of the node's Harbor again (lab/replicated.py's start)."""
    start_harbor(node, compose_command())
