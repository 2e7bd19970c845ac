"""ContainerProbe and HarborProbe when Docker is not there (a real missing socket): they report,
they never raise."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from harbor_ha.probes.containers import ContainerProbe, DockerApiError, list_key
from harbor_ha.probes.harbor import HarborProbe
from harbor_ha.settings import Settings
from tests.fakes import example_settings


def _settings(tmp_path: Path) -> Settings:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    return example_settings(
        docker_host=f"unix://{tmp_path}/no-docker.sock",
        probe_host="127.0.0.1",
        https_port=port,
        probe_timeout_s=1.0,
    )


async def test_docker_absent_is_reported(tmp_path: Path) -> None:
    """No Docker socket: ping() is False and check() is unhealthy with a 'docker API' reason."""
    probe = ContainerProbe(_settings(tmp_path))
    try:
        assert await probe.ping() is False
        report = await probe.check()
        assert not report.healthy
        assert report.reason.startswith("docker API:")
        assert report.containers == {}
    finally:
        await probe.close()


async def test_docker_absent_readiness_questions_raise(tmp_path: Path) -> None:
    """No Docker socket: the standby's questions (project containers, missing images) raise
    DockerApiError naming the question, never answer "none" (which would read as ready)."""
    probe = ContainerProbe(_settings(tmp_path))
    try:
        with pytest.raises(DockerApiError, match="docker API containers"):
            await probe.project_containers()
        with pytest.raises(DockerApiError, match="docker API image inspect"):
            await probe.missing_images(["goharbor/harbor-core:v1"])
        assert await probe.missing_images([]) == []
    finally:
        await probe.close()


async def test_harbor_probe_names_first_failing_part(tmp_path: Path) -> None:
    """Everything down: HarborProbe is unhealthy and its reason names the containers (first
    part); the serving and health parts are not healthy either (their own error, or not asked
    when the containers' failure decided first)."""
    s = _settings(tmp_path)
    cp = ContainerProbe(s)
    hp = HarborProbe(s, cp)
    try:
        result = await hp.check()
    finally:
        await hp.close()
        await cp.close()
    assert not result.healthy
    assert result.reason.startswith("containers: docker API:")
    assert not result.serving.ok and not result.health.ok


async def test_failing_containers_do_not_wait_for_a_proxy_that_never_answers(
    tmp_path: Path,
) -> None:
    """The containers already fail (a stopped registry, here no Docker at all) while the
    proxy accepts connections and never answers (a stopped container's address does not
    answer either): the verdict comes without waiting the HTTP probes' timeout (30 s here),
    their reports say they were not asked, and no probe task is left running."""
    with socket.socket() as hang:
        hang.bind(("127.0.0.1", 0))
        hang.listen(16)
        port = int(hang.getsockname()[1])
        s = example_settings(
            docker_host=f"unix://{tmp_path}/no-docker.sock", probe_host="127.0.0.1",
            https_port=port, probe_timeout_s=30.0,
        )  # fmt: skip
        cp = ContainerProbe(s)
        hp = HarborProbe(s, cp)
        try:
            async with asyncio.timeout(10):
                result = await hp.check()
        finally:
            await hp.close()
            await cp.close()
    assert not result.healthy and result.reason.startswith("containers:")
    assert result.serving.reason.startswith("not asked") and result.health.status == "not asked"
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [t for t in others if not t.done()]


def test_list_key_ignores_the_uptime() -> None:
    """A container is inspected again when its list State or the health in its Status text
    changes, not when only the uptime in that text moves on."""
    assert list_key("running", "Up 5 seconds (healthy)") == list_key(
        "running", "Up 2 hours (healthy)"
    )
    assert list_key("running", "Up 3 seconds (health: starting)") == ("running", "health: starting")
    assert list_key("running", "Up 1 minute (unhealthy)") == ("running", "unhealthy")
    assert list_key("running", "Up 4 minutes") == ("running", "")
    assert list_key("exited", "Exited (137) 2 seconds ago") == ("exited", "")
    assert list_key("running", "Up 5 seconds (healthy)") != list_key(
        "running", "Up 1 s (unhealthy)"
    )
