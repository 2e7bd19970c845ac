"""Render and drive the lab's Harbor-like stack (docker-compose.yml.tmpl + nginx.conf.tmpl).

``RegistryStack.render(workdir, docker_host, data_dir=..., compose=[...])`` writes the compose
file, nginx's config and a lab CA + server certificate (for ``127.0.0.1`` and ``https_bind``)
under ``workdir/config``, and prepares Harbor's data layout (registry/, database/, redis/,
trivy-adapter/, and secret/ with the proxy's certificate, as Harbor's prepare) under
``data_dir``. ``up``/``down``/``psql``/``health``
are the plain commands a test or the lab runs, each with a timeout.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab.harbor_secrets import prepare_data_volume
from lab.harbor_shape import with_health_interval
from lab.registry_stack.images import DOCKER, image_refs

HERE = Path(__file__).resolve().parent
COMPOSE_TEMPLATE = HERE / "docker-compose.yml.tmpl"
NGINX_TEMPLATE = HERE / "nginx.conf.tmpl"
DATA_SUBDIRS = ("registry", "database", "redis", "trivy-adapter/trivy", "trivy-adapter/reports")
"""Harbor's data_volume layout: the services that keep data on the mount."""
DATA_SERVICES = ("registry", "postgresql", "redis", "trivy-adapter")
"""Compose services whose data is under the mountpoint (the rest is stateless)."""
COMMAND_TIMEOUT_S = 180.0


def _run(argv: list[str], timeout: float = COMMAND_TIMEOUT_S, env: dict[str, str] | None = None,
         input_: str | None = None) -> str:  # fmt: skip
    res = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, input=input_, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}: exit {res.returncode}: {res.stderr[-2000:]}")
    return res.stdout


def make_certificates(cert_dir: Path, names: list[str]) -> None:
    """A lab CA (``ca.crt``) and a server certificate signed by it for IP addresses ``names``."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = cert_dir / "ca.key", cert_dir / "ca.crt"
    key, csr, crt = cert_dir / "server.key", cert_dir / "server.csr", cert_dir / "server.crt"
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
          "-subj", "/CN=lab CA", "-keyout", str(ca_key), "-out", str(ca_crt)])  # fmt: skip
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=harbor",
          "-keyout", str(key), "-out", str(csr)])  # fmt: skip
    ext = cert_dir / "san.ext"
    ext.write_text("subjectAltName=" + ",".join(f"IP:{n}" for n in dict.fromkeys(names)) + "\n")
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
          "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-out", str(crt)])  # fmt: skip
    key.chmod(0o644)  # read by nginx's workers (www-data) through the read-only bind mount


def prepare_stack_data(data_dir: Path, cert_dir: Path) -> None:
    """Harbor's secrets on the data volume (lab/harbor_secrets.py), the proxy's certificate
    being the lab CA's server certificate from ``cert_dir``; the lab CA in ``ca_download``
    (as Harbor's prepare puts the CA there; core binds it at /etc/core/ca, and its replicator
    verifies the peer's certificate with it)."""
    prepare_data_volume(data_dir, cert_dir / "server.crt", cert_dir / "server.key")
    (data_dir / "ca_download").mkdir(exist_ok=True)
    shutil.copyfile(cert_dir / "ca.crt", data_dir / "ca_download" / "ca.crt")


@dataclass
class RegistryStack:
    """A rendered stack: where its files are and how to reach it."""

    compose_file: Path
    project: str
    data_dir: Path
    config_dir: Path
    control_dir: Path
    docker_host: str
    compose: list[str]
    """The compose command (v2 binary or /usr/bin/docker-compose)."""
    https_bind: str
    https_port: int
    tag: str

    @property
    def ca_file(self) -> Path:
        return self.config_dir / "cert" / "ca.crt"

    @property
    def client_cert_dir(self) -> Path:
        """A directory holding only the lab CA (skopeo's --*-cert-dir, docker's certs.d)."""
        return self.config_dir / "client"

    @classmethod
    def render(
        cls,
        workdir: Path,
        docker_host: str,
        *,
        tag: str,
        data_dir: Path,
        compose: list[str],
        https_bind: str = "127.0.0.1",
        https_port: int = 443,
        http_port: int = 80,
        project: str | None = None,
        cert_names: tuple[str, ...] = (),
        certs_from: Path | None = None,
        make_data_layout: bool = True,
        health_interval: str | None = None,
    ) -> RegistryStack:
        """Write the compose file, nginx's config and the certificates (a lab CA and a server
        certificate for 127.0.0.1, ``https_bind`` and ``cert_names`` under
        ``workdir/config/cert``; or copied from another stack's ``certs_from`` cert dir, so that
        two nodes behind one VIP show one certificate); create the data layout with Harbor's
        secrets and the server certificate under secret/ (``prepare_stack_data``; not with
        ``make_data_layout=False``: a lab node's data dir is an unmounted mountpoint, and the
        lab prepares the image's filesystem once).
        ``health_interval``: None = Harbor's healthcheck cadence (Docker's 30 s default;
        trivy-adapter 30 s); a value is a named deviation for a test that needs it (say why)."""
        config = workdir / "config"
        control = workdir / "control"
        for d in (config / "nginx", control):
            d.mkdir(parents=True, exist_ok=True)
        if certs_from is not None:
            shutil.copytree(certs_from, config / "cert", dirs_exist_ok=True)
        else:
            make_certificates(config / "cert", ["127.0.0.1", https_bind, *cert_names])
        if make_data_layout:
            for sub in DATA_SUBDIRS:
                (data_dir / sub).mkdir(parents=True, exist_ok=True)
            prepare_stack_data(data_dir, config / "cert")
        client = config / "client"
        client.mkdir(exist_ok=True)
        (client / "ca.crt").write_bytes((config / "cert" / "ca.crt").read_bytes())
        values = {
            "@TAG@": tag,
            "@DATA_DIR@": str(data_dir),
            "@CONFIG_DIR@": str(config),
            "@CONTROL_DIR@": str(control),
            "@HTTPS_BIND@": https_bind,
            "@HTTPS_PORT@": str(https_port),
            "@HTTP_PORT@": str(http_port),
        }
        compose_file = workdir / "docker-compose.yml"
        for template, dest in (
            (COMPOSE_TEMPLATE, compose_file),
            (NGINX_TEMPLATE, config / "nginx" / "nginx.conf"),
        ):
            text = with_health_interval(template.read_text(), health_interval)
            for key, value in values.items():
                text = text.replace(key, value)
            dest.write_text(text)
        return cls(
            compose_file=compose_file,
            project=project or "hhr" + secrets.token_hex(3),
            data_dir=data_dir,
            config_dir=config,
            control_dir=control,
            docker_host=docker_host,
            compose=compose,
            https_bind=https_bind,
            https_port=https_port,
            tag=tag,
        )

    @property
    def images(self) -> dict[str, str]:
        return image_refs(self.tag)

    def _compose(self, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> str:
        env = {**os.environ, "DOCKER_HOST": self.docker_host}
        argv = [*self.compose, "-p", self.project, "-f", str(self.compose_file), *args]
        return _run(argv, timeout, env)

    def up(self, *services: str) -> None:
        """``compose up -d`` (all services, or the ones named)."""
        self._compose("up", "-d", *services)

    def down(self) -> None:
        """``compose down`` (containers stopped and removed; data stays on the mount)."""
        self._compose("down", "--timeout", "30")

    def docker(self, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> str:
        return _run([DOCKER, "-H", self.docker_host, *args], timeout)

    def psql(self, script: str, timeout: float = 60.0) -> str:
        """Run ``script`` with psql inside harbor-db (the image's client) fed on stdin: each
        statement is its own transaction (autocommit); returns the unaligned result rows."""
        argv = [DOCKER, "-H", self.docker_host, "exec", "-i", "harbor-db", "psql", "-X", "-q",
                "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres",
                "-f", "-"]  # fmt: skip
        return _run(argv, timeout, input_=script)

    def container_health(self) -> dict[str, str]:
        """container name -> State.Status[/Health.Status] of the project's containers."""
        ids = self.docker(
            "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}"
        ).split()
        if not ids:
            return {}
        result = {}
        for c in json.loads(self.docker("inspect", *ids)):
            st = c["State"]
            h = st.get("Health", {}).get("Status")
            result[c["Name"].lstrip("/")] = st["Status"] + (f"/{h}" if h else "")
        return result

    def remove_containers(self) -> None:
        """Force-remove every container of the project (teardown, whatever compose did)."""
        ids = self.docker(
            "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}"
        ).split()
        if ids:
            self.docker("rm", "-f", *ids)
