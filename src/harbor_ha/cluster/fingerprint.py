"""This node's cluster fingerprint: a SHA-256 of each value that must be identical on every
node serving one Harbor, read from Harbor's files on the node.  Never the values themselves.

Why a bare SHA-256 (with the item's name as a prefix) and no HMAC: a hash hides a value
only if the value cannot be guessed, and a salt known to every reader of /status would not
change that.  The secrets hashed here are random values Harbor's prepare step generates
(16 to 32 characters from a large alphabet, a 4096-bit RSA key): no one can search them from
their hash.  What an operator chooses and could be guessed (the database and Redis
passwords) is never hashed: the endpoints are hashed without their credentials.  The item's
name in the hashed text makes equal values of two items hash differently.

A file that is missing is named as missing (its path, not secret); a key absent from a
file as unset: a node whose Harbor is not installed yet differs, it does not crash.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harbor_ha.cluster.harbor_files import (
    core_image_tag,
    database,
    endpoint,
    job_loggers,
    parse_env,
    yaml_scalar,
)

PREFIX = b"harbor-ha cluster fingerprint v1\0"

CORE_ENV = "core/env"
REGISTRY_CONFIG = "registry/config.yml"
JOBSERVICE_CONFIG = "jobservice/config.yml"

SECRET_FILES = {
    "secretkey": "keys/secretkey",
    "token_private_key": "core/private_key.pem",
    "token_root_cert": "registry/root.crt",
}
"""Items read whole from Harbor's secret directory: the key that encrypts stored passwords,
and the pair that signs and verifies registry tokens."""

CORE_ENV_KEYS = {
    "core_secret": "CORE_SECRET",
    "jobservice_secret": "JOBSERVICE_SECRET",
    "csrf_key": "CSRF_KEY",
}
"""Items that are one variable of core's env."""

ITEMS = (
    "core_secret", "jobservice_secret", "csrf_key", "registry_http_secret",
    *SECRET_FILES, "database", "redis_core", "redis_registry", "redis_jobservice",
    "harbor_version",
)  # fmt: skip
"""Every item of a fingerprint, in the order shown."""


def digest(item: str, value: bytes) -> str:
    """``sha256:<hex>`` of the item's name and value."""
    return "sha256:" + hashlib.sha256(PREFIX + item.encode() + b"\0" + value).hexdigest()


@dataclass
class Fingerprint:
    """One node's reading: each item's hash or why there is none, Harbor's version in clear
    (not a secret), the job loggers (None: jobservice's config could not be read)."""

    items: dict[str, str] = field(default_factory=dict)
    harbor_version: str | None = None
    job_loggers: list[str] | None = None
    job_loggers_source: str = ""
    read_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "items": dict(self.items),
            "harbor_version": self.harbor_version,
            "job_loggers": self.job_loggers,
            "job_loggers_source": self.job_loggers_source,
            "read_at": self.read_at,
        }

    @classmethod
    def from_json(cls, data: object) -> Fingerprint | None:
        """A fingerprint as /status shows it (None: not one)."""
        if not isinstance(data, dict) or not isinstance(data.get("items"), dict):
            return None
        loggers = data.get("job_loggers")
        version = data.get("harbor_version")
        return cls(
            items={str(k): str(v) for k, v in data["items"].items()},
            harbor_version=str(version) if version is not None else None,
            job_loggers=[str(x) for x in loggers] if isinstance(loggers, list) else None,
            job_loggers_source=str(data.get("job_loggers_source", "")),
            read_at=float(data.get("read_at") or 0.0),
        )


class _Files:
    """Reads each file once; remembers why one could not be read."""

    def __init__(self) -> None:
        self._cache: dict[Path, bytes | str] = {}

    def read(self, path: Path) -> bytes | str:
        """The bytes, or a string saying why there are none."""
        if path not in self._cache:
            try:
                self._cache[path] = path.read_bytes()
            except FileNotFoundError:
                self._cache[path] = f"missing: {path}"
            except OSError as exc:
                self._cache[path] = f"unreadable: {path}: {exc.strerror or exc}"
        return self._cache[path]

    def text(self, path: Path) -> str | None:
        data = self.read(path)
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else None


def _from_text(
    files: _Files, path: Path, what: str, pick: Callable[[str], str | None]
) -> bytes | str:
    """The value ``pick`` finds in the file, or why there is none."""
    data = files.read(path)
    if isinstance(data, str):
        return data
    value = pick(data.decode("utf-8", "replace"))
    return value.encode() if value else f"unset: {what} in {path}"


def read_fingerprint(config_dir: Path, secret_dir: Path, compose_file: Path) -> Fingerprint:
    """Read this node's fingerprint from Harbor's files (blocking: run it off the loop)."""
    files = _Files()
    core = config_dir / CORE_ENV
    registry = config_dir / REGISTRY_CONFIG
    jobs = config_dir / JOBSERVICE_CONFIG
    values: dict[str, bytes | str] = {}
    for item, key in CORE_ENV_KEYS.items():
        values[item] = _from_text(files, core, key, _env_value(key))
    values["registry_http_secret"] = _from_text(
        files, registry, "http.secret", lambda t: yaml_scalar(t, ("http", "secret"))
    )
    for item, rel in SECRET_FILES.items():
        values[item] = files.read(secret_dir / rel)
    values["database"] = _from_text(
        files, core, "POSTGRESQL_HOST", lambda t: database(parse_env(t))
    )
    for item, key in (("redis_core", "_REDIS_URL_CORE"), ("redis_registry", "_REDIS_URL_REG")):
        values[item] = _from_text(files, core, key, _env_endpoint(key))
    pool = ("worker_pool", "redis_pool", "redis_url")
    values["redis_jobservice"] = _from_text(
        files, jobs, ".".join(pool), lambda t: _endpoint(yaml_scalar(t, pool))
    )
    values["harbor_version"] = _from_text(files, compose_file, "harbor-core image", core_image_tag)
    jobs_text = files.text(jobs)
    version = values["harbor_version"]
    return Fingerprint(
        items={item: _shown(item, values[item]) for item in ITEMS},
        harbor_version=version.decode() if isinstance(version, bytes) else None,
        job_loggers=job_loggers(jobs_text) if jobs_text is not None else None,
        job_loggers_source=str(jobs),
        read_at=time.time(),
    )


def _shown(item: str, value: bytes | str) -> str:
    return digest(item, value) if isinstance(value, bytes) else value


def _env_value(key: str) -> Callable[[str], str | None]:
    return lambda text: parse_env(text).get(key)


def _env_endpoint(key: str) -> Callable[[str], str | None]:
    return lambda text: _endpoint(parse_env(text).get(key))


def _endpoint(url: str | None) -> str | None:
    return endpoint(url) if url else None
