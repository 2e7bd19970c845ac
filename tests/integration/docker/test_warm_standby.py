"""A warm standby (settings.warm_standby) against a real dockerd: Compose.warm starts exactly
Harbor's stateless services (portal, log; the https proxy binds data/secret/cert) on an
unmounted, guarded data directory, never
a data-bearing one, not even one the harbor_data_services setting forgot (its compose config
names the mountpoint); reconcile's "Harbor running" ignores them; and the start step's ``up``
starts the data-bearing services without restarting the stateless ones."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harbor_ha.compose import Compose
from harbor_ha.runner import ProcessRunner
from lab.dockerd import COMPOSE_V1, Dockerd, compose_v2_binary
from lab.harbor_secrets import prepare_data_volume
from lab.harbor_shape import CONTAINER_NAMES, HarborShape
from tests.fakes import example_settings

pytestmark = pytest.mark.integration

STATELESS = {"log", "portal"}
"""Harbor's services that bind nothing under the data volume (its https proxy binds
data/secret/cert, so it counts as data-bearing)."""


def chattr(flag: str, path: object, check: bool = True) -> None:
    subprocess.run(["chattr", flag, str(path)], check=check)


def empty(data: object) -> None:
    from pathlib import Path

    for p in Path(str(data)).iterdir():  # earlier tests leave files and dirs
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


@pytest.mark.parametrize(
    "listed",
    [
        None,  # harbor-ha's default: Harbor's data-bearing services
        ["registry"],  # a setting that forgets most of them: the mount check holds them back
    ],
    ids=["default-list", "short-list"],
)
async def test_warm_starts_only_stateless_then_up_adds_the_data_services(
    dockerd: Dockerd, harbor_shape: HarborShape, listed: list[str] | None
) -> None:
    """On an empty data dir made immutable (chattr +i: any write by a started data-bearing
    service would fail it, and it stays empty): warm() starts portal and log and nothing
    else, a second warm() starts nothing, running_data_containers() is empty; after the data
    dir is released, up() brings all ten and the two stateless containers keep their IDs."""
    extra = {} if listed is None else {"harbor_data_services": listed}
    s = example_settings(
        compose_file=harbor_shape.compose_file,
        compose_project=harbor_shape.project,
        compose_command=[compose_v2_binary() or COMPOSE_V1],
        docker_host=harbor_shape.docker_host,
        mountpoint=harbor_shape.data_dir,
        start_timeout_s=120,
        **extra,
    )
    compose = Compose(s, ProcessRunner())
    data = harbor_shape.data_dir
    empty(data)
    chattr("+i", data)
    try:
        assert set(await compose.stateless_services()) == STATELESS
        started = await compose.warm(120)
        assert set(started) == STATELESS
        running = await compose.running_services()
        assert set(running.values()) == STATELESS, running
        assert await compose.running_data_containers() == []
        assert await compose.warm(120) == [], "warm is idempotent"
        assert list(data.iterdir()) == [], "nothing wrote to the unmounted data dir"
        warm_ids = set(running)
        chattr("-i", data)
        prepare_data_volume(data)  # the volume "mounted": Harbor's secrets are on it
        await compose.up(120)
        after = await compose.running_services()
        assert len(after) == len(CONTAINER_NAMES)
        assert warm_ids <= set(after), "the stateless containers were not recreated"
        assert len(await compose.running_data_containers()) == len(CONTAINER_NAMES) - len(STATELESS)
    finally:
        chattr("-i", data, check=False)
        await compose.down(120)
