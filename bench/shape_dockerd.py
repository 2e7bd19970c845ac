"""The Harbor-shaped project on a dockerd of its own, for the probes in bench/ that measure
Docker itself (precreate_probe, start_order_probe): its own netns and directory under /var/tmp,
everything removed at the end."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.dockerd import Dockerd, compose_v2_binary, start_dockerd, stop_dockerd
from lab.harbor_shape import HarborShape, build_images
from lab.netns import delete_netns, make_netns


@dataclass(frozen=True)
class ShapeOnDockerd:
    """A running dockerd with the shape's images and the rendered project (project "harbor")."""

    dockerd: Dockerd
    shape: HarborShape
    compose: str

    def compose_run(self, *args: str) -> float:
        """Run ``compose -p harbor -f FILE args...`` (must succeed); its wall time in s."""
        env = {"DOCKER_HOST": self.dockerd.host, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
        started = time.monotonic()
        subprocess.run(
            [self.compose, "-p", "harbor", "-f", str(self.shape.compose_file), *args],
            env=env, check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        return time.monotonic() - started


@contextlib.contextmanager
def shape_on_own_dockerd(prefix: str) -> Iterator[ShapeOnDockerd]:
    """Start containerd + dockerd in a new netns named ``prefix``..., build the shape's images,
    render the project; afterwards remove every container, stop dockerd, delete the netns and
    the directory (immutable flags a probe set are cleared first)."""
    compose = compose_v2_binary() or "/usr/bin/docker-compose"
    netns = make_netns(prefix)
    work = Path(f"/var/tmp/{netns}")
    d = None
    try:
        d = start_dockerd(work / "d", netns)
        build_images(d.host)
        shape = HarborShape.render(work / "harbor", d.host, project="harbor", https_port=8443)
        yield ShapeOnDockerd(d, shape, compose)
    finally:
        if d is not None:
            subprocess.run(["chattr", "-R", "-i", str(work)], capture_output=True)
            ids = d.docker("ps", "-aq", check=False).split()
            if ids:
                d.docker("rm", "-f", *ids, check=False)
            stop_dockerd(d)
        delete_netns(netns)
        shutil.rmtree(work, ignore_errors=True)
