"""The repository's Dockerfile builds on a locally bootstrapped Debian base (the cached clean
root, ``docker import``ed; BASE names it) and the image runs harbor-ha's check and renderer.

A private dockerd of the lab (lab/dockerd.py) in the host's network namespace: the build's
apt-get needs Debian's mirror (``--network host``: the lab's dockerd has no bridge)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deb.build import version
from lab import debian_root
from lab.dockerd import DOCKER_CLI, Dockerd, start_dockerd, stop_dockerd
from tests.integration.debroot import NODE_ENV as ENV
from tests.integration.debroot import harbor_deb, unavailable

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        (unavailable() or (None if shutil.which("dockerd") else "needs dockerd")) is not None,
        reason=str(unavailable() or "needs dockerd"),
    ),
]
__all__ = ["harbor_deb"]

ROOT = Path(__file__).resolve().parents[3]
BASE = f"harbor-ha-lab/debian:bookworm-{debian_root.recipe()}"
IMAGE = "harbor-ha-test:dockerfile"


@pytest.fixture(scope="module")
def built(harbor_deb: Path) -> Iterator[tuple[Dockerd, Path]]:
    """The image built from the Dockerfile in a context holding the repository's Dockerfile
    and the freshly built .deb at the path the Dockerfile names (dist/)."""
    workdir = Path(tempfile.mkdtemp(prefix="hhdf-", dir="/tmp"))
    d = start_dockerd(workdir / "d")
    try:
        tar = debian_root.ensure_tar()
        d.docker("import", str(tar), BASE, timeout=300)
        ctx = workdir / "ctx"
        (ctx / "dist").mkdir(parents=True)
        shutil.copy2(ROOT / "Dockerfile", ctx / "Dockerfile")
        shutil.copy2(harbor_deb, ctx / "dist" / harbor_deb.name)
        d.docker(
            "build", "-q", "--network", "host", "--build-arg", f"BASE={BASE}",
            "-t", IMAGE, str(ctx), timeout=900,
        )  # fmt: skip
        env = workdir / "harbor-ha.env"
        env.write_text(ENV)
        yield d, env
    finally:
        stop_dockerd(d)  # its containers are --rm; a dockerd stopping stops what runs
        shutil.rmtree(workdir, ignore_errors=True)


def run(d: Dockerd, env: Path, *args: str) -> tuple[int, str, str]:
    """``docker run`` of the image with ``args``, the env file mounted where the unit reads it."""
    mount = f"{env}:/etc/harbor-ha/harbor-ha.env:ro"
    done = subprocess.run(
        [DOCKER_CLI, "-H", d.host, "run", "--rm", "--network", "none", "-v", mount, IMAGE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def test_the_image_checks_and_renders(built: tuple[Dockerd, Path]) -> None:
    """In the container: the entrypoint is harbor-ha (the .deb's version); ``check --json``
    reads /etc/harbor-ha/harbor-ha.env, finds the programs it drives installed (rbd, ceph,
    keepalived is the host's: only it is named missing) and reports the absent Ceph cluster and
    Docker engine (exit 3); ``render-keepalived`` prints the VIP and the unicast peer."""
    d, env = built
    rc, out, err = run(d, env, "--version")
    assert (rc, out.strip()) == (0, f"harbor-ha {version()}"), err
    rc, out, err = run(d, env, "check", "--json")
    assert rc == 3, (out, err)
    messages = [f["message"] for f in json.loads(out)["findings"]]
    missing = [m for m in messages if "not found on PATH" in m]
    assert missing == ["keepalived: executable 'keepalived' not found on PATH"], messages
    assert any(m.startswith("ceph:") for m in messages), messages
    assert any("docker" in m and "not answering" in m for m in messages), messages
    rc, out, err = run(d, env, "render-keepalived", "-o", "-")
    assert rc == 0, err
    assert "vrrp_instance" in out and "10.0.0.100/24" in out and "10.0.0.12" in out
