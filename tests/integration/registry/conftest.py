"""Fixtures of the registry-stack tests: the stack's images loaded into the session dockerd, an
ext4 on a loop device as Harbor's data volume, the rendered stack.

Every import of the lab's fixtures is here (one place to change when the lab moves)."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.dockerd import COMPOSE_V1, Dockerd, compose_v2_binary
from lab.loopdev import create_loop, detach_loop, unmount_all
from lab.netns import NetnsExecutor
from lab.registry_stack.images import Loaded, ensure_images
from lab.registry_stack.stack import RegistryStack

__all__ = ["Dockerd", "NetnsExecutor"]

DATA_MB = 1024


@pytest.fixture(scope="session")
def registry_images(dockerd: Dockerd) -> Loaded:
    """The stack's images in the session dockerd: built on the first run (cached as a tar),
    ``docker load``ed from the cache afterwards. Prints what it did and how long it took."""
    start = time.monotonic()
    loaded = ensure_images(dockerd.host)
    print(
        f"\nregistry images {loaded.tag}: built={loaded.built} build_s={loaded.build_s:.1f} "
        f"load_s={loaded.load_s:.1f} total_s={time.monotonic() - start:.1f} tar={loaded.tar}"
    )
    return loaded


@pytest.fixture
def data_mount(fs_workdir: Path) -> Iterator[Path]:
    """A fresh ext4 on a loop device, mounted: Harbor's data_volume for one test."""
    dev = create_loop(fs_workdir, size_mb=DATA_MB)
    mnt = fs_workdir / f"data-{secrets.token_hex(3)}"
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-t", "ext4", dev, str(mnt)], check=True, timeout=30)
        yield mnt
    finally:
        unmount_all(mnt)
        detach_loop(dev)


@pytest.fixture
def registry_stack(
    dockerd: Dockerd, registry_images: Loaded, data_mount: Path, fs_workdir: Path
) -> Iterator[RegistryStack]:
    """The stack rendered for the session dockerd (TLS on 127.0.0.1:443 of its netns), data on
    ``data_mount``; not started. Its containers are removed at teardown."""
    v2 = compose_v2_binary()
    stack = RegistryStack.render(
        fs_workdir / "stack",
        dockerd.host,
        tag=registry_images.tag,
        data_dir=data_mount,
        compose=[v2 if v2 else COMPOSE_V1],
    )
    try:
        yield stack
    finally:
        stack.remove_containers()
