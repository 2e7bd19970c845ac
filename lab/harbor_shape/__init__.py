"""The Harbor shape: a compose project with Harbor's ten services (with trivy), container names and
images, all built locally from one busybox image (``image/``, ``docker-compose.yml.tmpl``;
see README.md here).  ``build_images`` builds and tags the image into a dockerd;
``HarborShape.render`` writes a project for one node."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab.dockerd import DOCKER_CLI
from lab.harbor_secrets import prepare_data_volume

SHAPE_DIR = Path(__file__).resolve().parent
COMPOSE_TEMPLATE = SHAPE_DIR / "docker-compose.yml.tmpl"
IMAGE_DIR = SHAPE_DIR / "image"

SHAPE_TAG = "shape"
"""Tag of every Harbor-shaped image (goharbor/<name>:shape)."""

HARBOR_IMAGES: dict[str, str] = {
    "log": "goharbor/harbor-log",
    "registry": "goharbor/registry-photon",
    "registryctl": "goharbor/harbor-registryctl",
    "postgresql": "goharbor/harbor-db",
    "core": "goharbor/harbor-core",
    "portal": "goharbor/harbor-portal",
    "jobservice": "goharbor/harbor-jobservice",
    "redis": "goharbor/redis-photon",
    "proxy": "goharbor/nginx-photon",
    "trivy-adapter": "goharbor/trivy-adapter-photon",
}
"""Compose service -> image repository (Harbor's names)."""

CONTAINER_NAMES: dict[str, str] = {
    "log": "harbor-log",
    "registry": "registry",
    "registryctl": "registryctl",
    "postgresql": "harbor-db",
    "core": "harbor-core",
    "portal": "harbor-portal",
    "jobservice": "harbor-jobservice",
    "redis": "redis",
    "proxy": "nginx",
    "trivy-adapter": "trivy-adapter",
}
"""Compose service -> container_name (Harbor's names)."""


HOST_PROGRAMS = ("socat",)
"""Host programs copied into the image with the libraries ldd names: socat (the proxy's TLS
front and log's syslog receiver; Debian package socat, scripts/setup)."""


def _copy_with_libraries(dest: Path, program: str) -> None:
    path = Path(shutil.which(program) or f"/usr/bin/{program}").resolve()
    files = [path]
    ldd = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True).stdout
    for line in ldd.splitlines():
        lib = next((p for p in line.split() if p.startswith("/")), None)
        if lib:
            files.append(Path(lib))
    for f in files:
        target = dest / str(f).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f.resolve(), target)
    link = dest / "usr/bin" / program
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(f"/{str(path).lstrip('/')}")


def _rootfs(dest: Path) -> None:
    """busybox-static with its applets, the host's socat with the libraries ldd names, and the
    shape script (the proxy's certificate is on the data volume: data/secret/cert)."""
    (dest / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", dest / "bin" / "busybox")
    applets = subprocess.run(
        ["/bin/busybox", "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    for program in HOST_PROGRAMS:
        _copy_with_libraries(dest, program)
    for d in ("tmp", "control", "etc", "usr/lib/ssl"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    (dest / "usr/lib/ssl/openssl.cnf").write_text("")
    (dest / "etc/passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    shape = dest / "shape"
    shape.mkdir()
    shutil.copy2(IMAGE_DIR / "shape.sh", shape / "shape.sh")


def build_images(docker_host: str, tag: str = SHAPE_TAG) -> list[str]:
    """Build the Harbor-shaped image (FROM scratch, DOCKER_BUILDKIT=0) into ``docker_host`` and
    tag it as every Harbor image; skipped when already present. Returns the image references."""
    refs = [f"{repo}:{tag}" for repo in HARBOR_IMAGES.values()]
    base = f"harbor-shape/base:{tag}"
    env = {**os.environ, "DOCKER_BUILDKIT": "0", "DOCKER_HOST": docker_host}
    have = subprocess.run(
        [DOCKER_CLI, "image", "inspect", base], capture_output=True, env=env, check=False
    )
    if have.returncode != 0:
        with tempfile.TemporaryDirectory(prefix="hhd-build-") as tmp:
            ctx = Path(tmp)
            shutil.copy2(IMAGE_DIR / "Dockerfile", ctx / "Dockerfile")
            _rootfs(ctx / "rootfs")
            subprocess.run(
                [DOCKER_CLI, "build", "-q", "-t", base, str(ctx)],
                env=env,
                check=True,
                capture_output=True,
            )
    for ref in refs:
        subprocess.run([DOCKER_CLI, "tag", base, ref], env=env, check=True, capture_output=True)
    return refs


HARBOR_TRIVY_INTERVAL = "30s"
"""trivy-adapter's healthcheck interval in Harbor's image (the others declare none)."""


def with_health_interval(template: str, interval: str | None) -> str:
    """The compose template with Harbor's healthcheck cadence (``interval`` None: the lines
    holding @HEALTH_INTERVAL@ dropped, trivy-adapter's 30 s) or the named deviation
    ``interval`` on every service."""
    if interval is None:
        lines = [ln for ln in template.splitlines(keepends=True) if "@HEALTH_INTERVAL@" not in ln]
        return "".join(lines).replace("@TRIVY_INTERVAL@", HARBOR_TRIVY_INTERVAL)
    return template.replace("@HEALTH_INTERVAL@", interval).replace("@TRIVY_INTERVAL@", interval)


# ------------------------------------------------------------------------------ the project
@dataclass
class HarborShape:
    """A rendered Harbor-shaped compose project (ten containers, Harbor's names)."""

    compose_file: Path
    project: str
    data_dir: Path
    """Harbor's data_volume (the mountpoint the daemon manages): registry/, database/, ..."""
    control_dir: Path
    """Unhealthy switches: a file ``unhealthy-<service>`` here fails that service."""
    https_port: int
    https_bind: str
    docker_host: str
    tag: str = SHAPE_TAG

    @classmethod
    def render(
        cls,
        workdir: Path,
        docker_host: str,
        *,
        project: str | None = None,
        data_dir: Path | None = None,
        https_port: int = 8443,
        https_bind: str = "127.0.0.1",
        http_port: int = 80,
        tag: str = SHAPE_TAG,
        health_interval: str | None = None,
        prepare: bool = True,
    ) -> HarborShape:
        """Write ``workdir/docker-compose.yml`` from the template and return the project.
        The proxy's 8443 is published on ``https_bind:https_port``, its 8080 on
        ``https_bind:http_port`` (Harbor: 443 and 80).

        ``health_interval``: None = Harbor's healthcheck cadence (no interval: Docker's 30 s;
        trivy-adapter 30 s). A value (e.g. "1s") is a named deviation from Harbor for a test
        that needs containers healthy in seconds: every caller says why.
        ``prepare``: write Harbor's secrets into ``data_dir`` (lab/harbor_secrets.py, as
        Harbor's prepare); False for a lab node, whose data dir is an unmounted mountpoint
        (the lab writes them onto the image's filesystem)."""
        workdir.mkdir(parents=True, exist_ok=True)
        data = data_dir or workdir / "data"
        control = workdir / "control"
        data.mkdir(parents=True, exist_ok=True)
        control.mkdir(parents=True, exist_ok=True)
        if prepare:
            prepare_data_volume(data)
        text = with_health_interval(COMPOSE_TEMPLATE.read_text(), health_interval)
        for key, value in {
            "@TAG@": tag,
            "@DATA_DIR@": str(data),
            "@CONTROL_DIR@": str(control),
            "@HTTPS_BIND@": https_bind,
            "@HTTPS_PORT@": str(https_port),
            "@HTTP_BIND@": https_bind,
            "@HTTP_PORT@": str(http_port),
        }.items():
            text = text.replace(key, value)
        compose_file = workdir / "docker-compose.yml"
        compose_file.write_text(text)
        return cls(
            compose_file=compose_file,
            project=project or "hhd" + secrets.token_hex(3),
            data_dir=data,
            control_dir=control,
            https_port=https_port,
            https_bind=https_bind,
            docker_host=docker_host,
            tag=tag,
        )

    def set_unhealthy(self, service: str, unhealthy: bool) -> None:
        """Flip the unhealthy switch of compose service ``service`` (e.g. "core", "proxy")."""
        flag = self.control_dir / f"unhealthy-{service}"
        if unhealthy:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def clear_switches(self) -> None:
        for flag in self.control_dir.glob("unhealthy-*"):
            flag.unlink()

    def image(self, service: str) -> str:
        return f"{HARBOR_IMAGES[service]}:{self.tag}"

    def project_containers(self, *, all_: bool = True) -> list[str]:
        """IDs of the project's containers (all, or only running), via the docker CLI."""
        args = [DOCKER_CLI, "-H", self.docker_host, "ps", "-q"]
        if all_:
            args.append("-a")
        args += ["--filter", f"label=com.docker.compose.project={self.project}"]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        return out.split()

    def remove_containers(self) -> None:
        """Force-remove every container of the project (teardown; works whatever compose did)."""
        ids = self.project_containers()
        if ids:
            subprocess.run(
                [DOCKER_CLI, "-H", self.docker_host, "rm", "-f", *ids],
                capture_output=True,
                check=False,
            )

    def health(self) -> dict[str, str]:
        """container name -> State.Status[/Health.Status] (docker inspect; for test messages)."""
        ids = self.project_containers()
        if not ids:
            return {}
        out = subprocess.run(
            [DOCKER_CLI, "-H", self.docker_host, "inspect", *ids],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        result = {}
        for c in json.loads(out):
            st = c["State"]
            h = st.get("Health", {}).get("Status")
            result[c["Name"].lstrip("/")] = st["Status"] + (f"/{h}" if h else "")
        return result
