"""Harbor's own compose file, as its installer writes it, classified by the real
``docker-compose config``: a site whose install dir path contains ``/data`` (here
``.../srv/data/harbor``) still has log and portal as the only services a warm standby may run,
and the https proxy (it binds only the data volume's secrets) is classified once and quietly."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import structlog

from harbor_ha.compose import Compose
from harbor_ha.compose.parse import strict_binds_under
from harbor_ha.runner import ProcessRunner
from lab.dockerd import compose_v2_binary
from tests.fakes import example_settings

TEMPLATE = Path(__file__).parent / "data" / "harbor" / "docker-compose.yml"
ENV_FILES = ("registryctl", "db", "core", "jobservice", "trivy-adapter")

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose (scripts/setup) missing"
)


def install_dir(root: Path) -> Path:
    """Harbor's install dir under ``root/srv/data/harbor``: its compose file and env files."""
    install = root / "srv" / "data" / "harbor"
    for name in ENV_FILES:
        env = install / "common" / "config" / name / "env"
        env.parent.mkdir(parents=True, exist_ok=True)
        env.write_text("")
    text = TEMPLATE.read_text().replace("@INSTALL@", str(install))
    (install / "docker-compose.yml").write_text(text)
    return install


async def test_an_install_dir_under_a_data_path_keeps_log_and_portal_stateless(
    tmp_path: Path,
) -> None:
    """The data volume is matched on whole path components: the install dir's config binds
    under ``.../srv/data/harbor`` do not make log or portal data-bearing.  The proxy needs the
    mount (its certificate under /data/secret/cert) and is data-bearing without a warning;
    asked again, nothing is logged again."""
    install = install_dir(tmp_path)
    s = example_settings(
        compose_file=install / "docker-compose.yml", compose_command=["docker-compose"],
        mountpoint=Path("/data"),
    )  # fmt: skip
    compose = Compose(s, ProcessRunner())
    with structlog.testing.capture_logs() as logs:
        assert await compose.stateless_services() == ["log", "portal"]
        data = await compose.data_services()
        assert await compose.stateless_services() == ["log", "portal"]
    assert set(data) == {
        "core", "jobservice", "postgresql", "proxy", "redis", "registry", "registryctl",
        "trivy-adapter",
    }  # fmt: skip
    assert not [e for e in logs if e["log_level"] == "warning"], logs
    quiet = [e for e in logs if e["event"] == "service_needs_mounted_secrets"]
    assert len(quiet) == 1 and quiet[0]["services"] == ["proxy"]


async def test_a_service_the_setting_misses_is_warned_about_once(tmp_path: Path) -> None:
    """A data-bearing service missing from harbor_data_services (here jobservice) is still
    data-bearing, and warned about once per compose config, not at every check."""
    install = install_dir(tmp_path)
    listed = ["registry", "registryctl", "postgresql", "redis", "core", "trivy-adapter"]
    s = example_settings(
        compose_file=install / "docker-compose.yml", compose_command=["docker-compose"],
        mountpoint=Path("/data"), harbor_data_services=listed,
    )  # fmt: skip
    compose = Compose(s, ProcessRunner())
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert "jobservice" in await compose.data_services()
    warned = [e for e in logs if e["event"] == "data_service_not_listed"]
    assert len(warned) == 1 and warned[0]["services"] == ["jobservice"]


@pytest.mark.parametrize("v2", [False, True], ids=["compose v1", "compose v2"])
def test_the_services_docker_cannot_create_before_the_mount(tmp_path: Path, v2: bool) -> None:
    """Harbor's file, normalized by the real compose v1 and v2 (v2 prints short binds in the
    long form with create_host_path): only core, registry and trivy-adapter bind a path under
    the data volume with the strict long syntax, so only they cannot be pre-created."""
    install = install_dir(tmp_path)
    binary = compose_v2_binary() if v2 else shutil.which("docker-compose")
    if binary is None:
        pytest.skip("compose binary missing (scripts/setup)")
    res = subprocess.run([binary, "-f", str(install / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    strict = strict_binds_under(res.stdout, "/data")
    assert sorted(strict) == ["core", "registry", "trivy-adapter"]
    assert strict["core"] == ["/data/secret/core/private_key.pem", "/data/secret/keys/secretkey"]
