"""Harbor's configuration files on a node, as Harbor's installer leaves them (prepare's output
under common/config, the secrets under the data volume's secret/, the compose file), written
by the tests into a directory of their own.  The shapes follow Harbor's prepare templates
(core/env, registry/config.yml, jobservice/config.yml); the values are the test's."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path


def random_secret(n: int = 16) -> str:
    """A value as Harbor's prepare generates them: random letters and digits."""
    return secrets.token_urlsafe(n)[:n]


@dataclass
class HarborValues:
    """What differs between two Harbor installs; defaults are fresh random secrets."""

    core_secret: str = field(default_factory=random_secret)
    jobservice_secret: str = field(default_factory=random_secret)
    csrf_key: str = field(default_factory=lambda: random_secret(32))
    registry_http_secret: str = field(default_factory=random_secret)
    secretkey: str = field(default_factory=random_secret)
    private_key: str = field(default_factory=lambda: "-----BEGIN RSA PRIVATE KEY-----\n"
                             + random_secret(64) + "\n-----END RSA PRIVATE KEY-----\n")  # fmt: skip
    root_crt: str = field(default_factory=lambda: "-----BEGIN CERTIFICATE-----\n"
                          + random_secret(64) + "\n-----END CERTIFICATE-----\n")  # fmt: skip
    db_host: str = "pg.example"
    db_password: str = field(default_factory=random_secret)
    redis_host: str = "redis.example:6379"
    redis_password: str = field(default_factory=random_secret)
    version: str = "v2.6.2"
    job_loggers: tuple[str, ...] = ("STD_OUTPUT", "DB")

    def copy(self, **changes: object) -> HarborValues:
        """The same install with ``changes`` (another node of one cluster)."""
        values = dict(self.__dict__)
        values.update(changes)
        return HarborValues(**values)


@dataclass(frozen=True)
class HarborInstall:
    """Where a written install's files are (the settings' harbor_config_dir,
    harbor_secret_dir, compose_file)."""

    config_dir: Path
    secret_dir: Path
    compose_file: Path


def write_install(root: Path, v: HarborValues) -> HarborInstall:
    """Write Harbor's files for ``v`` under ``root`` (install dir and data volume)."""
    install, data = root / "harbor", root / "data"
    config, secret = install / "common" / "config", data / "secret"
    redis_auth = f":{v.redis_password}@{v.redis_host}"
    files = {
        config / "core" / "env": "\n".join([
            "CONFIG_PATH=/etc/core/app.conf",
            f"_REDIS_URL_CORE=redis://{redis_auth}/0?idle_timeout_seconds=30",
            f"_REDIS_URL_REG=redis://{redis_auth}/1?idle_timeout_seconds=30",
            "LOG_LEVEL=info",
            "DATABASE_TYPE=postgresql",
            f"POSTGRESQL_HOST={v.db_host}",
            "POSTGRESQL_PORT=5432",
            "POSTGRESQL_USERNAME=harbor",
            f"POSTGRESQL_PASSWORD={v.db_password}",
            "POSTGRESQL_DATABASE=registry",
            "POSTGRESQL_SSLMODE=disable",
            f"CORE_SECRET={v.core_secret}",
            f"JOBSERVICE_SECRET={v.jobservice_secret}",
            f"CSRF_KEY={v.csrf_key}",
            "PORT=8080",
            "",
        ]),
        config / "registry" / "config.yml": "\n".join([
            "version: 0.1",
            "log:",
            "  level: info",
            "redis:",
            f"  addr: {v.redis_host}",
            f"  password: {v.redis_password}",
            "  db: 1",
            "http:",
            "  addr: :5000",
            f"  secret: {v.registry_http_secret}",
            "  debug:",
            "    addr: localhost:5001",
            "",
        ]),
        config / "jobservice" / "config.yml": "\n".join([
            "---",
            'protocol: "http"',
            "port: 8080",
            "worker_pool:",
            "  workers: 10",
            '  backend: "redis"',
            "  redis_pool:",
            f"    redis_url: redis://{redis_auth}/2?idle_timeout_seconds=30",
            '    namespace: "harbor_job_service_namespace"',
            "job_loggers:",
            *[f'  - name: "{name}"\n    level: "INFO"' for name in v.job_loggers],
            "loggers:",
            '  - name: "STD_OUTPUT"',
            '    level: "INFO"',
            "",
        ]),
        secret / "keys" / "secretkey": v.secretkey,
        secret / "core" / "private_key.pem": v.private_key,
        secret / "registry" / "root.crt": v.root_crt,
        install / "docker-compose.yml": "\n".join([
            "services:",
            "  core:",
            f"    image: goharbor/harbor-core:{v.version}",
            "    container_name: harbor-core",
            "",
        ]),
    }  # fmt: skip
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return HarborInstall(config, secret, install / "docker-compose.yml")


def secret_values(v: HarborValues) -> list[str]:
    """Every secret of ``v``: none may appear in anything harbor-ha shows."""
    return [
        v.core_secret, v.jobservice_secret, v.csrf_key, v.registry_http_secret, v.secretkey,
        v.db_password, v.redis_password,
        v.private_key.splitlines()[1], v.root_crt.splitlines()[1],
    ]  # fmt: skip
