"""A standby's pre-created Harbor containers (Compose.create, settings.precreate_containers)
against a real dockerd: created is not running, survives a dockerd restart without starting
(even with Harbor's `restart: always`), needs nothing of the unmounted data directory, and
`up` (the start step) starts them."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess

import pytest

from harbor_ha.compose import Compose
from harbor_ha.compose.parse import service_blocks
from harbor_ha.probes.containers import ContainerProbe
from harbor_ha.runner import ProcessRunner
from lab.dockerd import COMPOSE_V1, Dockerd, compose_v2_binary, restart_dockerd
from lab.harbor_secrets import prepare_data_volume
from lab.harbor_shape import HarborShape
from lab.waiting import until
from tests.fakes import example_settings

pytestmark = pytest.mark.integration


def chattr(flag: str, path: object, check: bool = True) -> None:
    subprocess.run(["chattr", flag, str(path)], check=check)


def created_ids(dockerd: Dockerd, project: str) -> list[str]:
    return dockerd.docker(
        "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}",
        "--filter", "status=created",
    ).split()  # fmt: skip


async def test_precreated_containers_never_start_until_up(
    dockerd: Dockerd, harbor_shape: HarborShape
) -> None:
    """On an unmounted, guarded (empty, chattr +i) data dir: create succeeds, writes nothing
    there, runs nothing; after a dockerd restart they are still only created while a stopped
    `restart: always` witness container is brought back (proof the restart policy ran); then
    up() starts them all (once Harbor's secrets are written).  The Docker API's
    project_containers() (what the standby asks before creating) lists the created,
    never-started containers, and none after down."""
    compose_cmd = [compose_v2_binary() or COMPOSE_V1]
    s = example_settings(
        compose_file=harbor_shape.compose_file,
        compose_project=harbor_shape.project,
        compose_command=compose_cmd,
        docker_host=harbor_shape.docker_host,
        start_timeout_s=120,
    )
    compose = Compose(s, ProcessRunner())
    probe = ContainerProbe(s)
    data = harbor_shape.data_dir
    for p in data.iterdir():  # earlier tests leave files and dirs (e.g. shape-core.log)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    chattr("+i", data)
    witness = "hhpc-witness-" + secrets.token_hex(3)
    try:
        services = await compose.create(60)
        every = list(service_blocks(await compose.config()))
        created = created_ids(dockerd, harbor_shape.project)
        assert services and len(created) == len(services)
        # `ps -aq` prints short IDs, the API full ones
        assert sorted(i[:12] for i in await probe.project_containers()) == sorted(created)
        assert await compose.running_containers() == []
        assert list(data.iterdir()) == []
        dockerd.docker(
            "run", "-d", "--restart", "always", "--name", witness, "--network", "none",
            "--entrypoint", "/bin/sleep", harbor_shape.image("log"), "3600",
        )  # fmt: skip
        dockerd.docker("stop", "-t", "0", witness)
        await asyncio.to_thread(restart_dockerd, dockerd)
        await until(
            lambda: dockerd.docker("ps", "-q", "--filter", f"name={witness}").strip() != "",
            "the stopped restart:always witness running again",
            30,
            every_s=0.1,
        )
        assert await compose.running_containers() == []
        assert len(created_ids(dockerd, harbor_shape.project)) == len(services)
        chattr("-i", data)
        prepare_data_volume(data)  # the volume "mounted": Harbor's secrets are on it
        await compose.up()
        assert len(await compose.running_containers()) == len(every)
    finally:
        chattr("-i", data, check=False)
        dockerd.docker("rm", "-f", witness, check=False)
        await compose.down()
        assert await probe.project_containers() == []
        await probe.close()
