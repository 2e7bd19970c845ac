"""Harbor's secrets on the data volume, written as Harbor's ``prepare`` writes them before the
first start: ``secret/registry/root.crt`` + ``secret/core/private_key.pem`` (the token-signing
pair), ``secret/keys/secretkey`` (core's encryption key), ``secret/cert/server.crt`` +
``server.key`` (the proxy's https certificate), and the trivy-adapter directories its long-syntax
binds need.  Both of the lab's stacks bind them from the data volume as Harbor does: with the
long syntax (``type: bind``) Docker refuses to create a container whose source is missing."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

SECRET_FILES = (
    "secret/registry/root.crt",
    "secret/core/private_key.pem",
    "secret/keys/secretkey",
    "secret/cert/server.crt",
    "secret/cert/server.key",
)
"""The files under the data volume that Harbor's compose file binds (relative paths)."""
DIRS = ("trivy-adapter/trivy", "trivy-adapter/reports")
"""Directories bound with the long syntax (Docker does not create them)."""


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def prepare_data_volume(
    data_dir: Path, server_cert: Path | None = None, server_key: Path | None = None
) -> None:
    """Write what Harbor's prepare writes under ``data_dir`` (kept where present, so a second
    call keeps the first one's keys).  ``server_cert``/``server_key``: the proxy's certificate
    (copied), else a self-signed one for CN harbor."""
    secret = data_dir / "secret"
    for sub in ("registry", "core", "keys", "cert"):
        (secret / sub).mkdir(parents=True, exist_ok=True)
    for d in DIRS:
        (data_dir / d).mkdir(parents=True, exist_ok=True)
    key, root = secret / "core" / "private_key.pem", secret / "registry" / "root.crt"
    if not (key.exists() and root.exists()):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj",
                 "/CN=harbor-token-issuer", "-keyout", str(key), "-out", str(root))  # fmt: skip
    secretkey = secret / "keys" / "secretkey"
    if not secretkey.exists():
        secretkey.write_text(secrets.token_hex(8))
        secretkey.chmod(0o600)
    crt, crt_key = secret / "cert" / "server.crt", secret / "cert" / "server.key"
    if server_cert is not None and server_key is not None:
        shutil.copyfile(server_cert, crt)
        shutil.copyfile(server_key, crt_key)
    elif not (crt.exists() and crt_key.exists()):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                 "-subj", "/CN=harbor", "-keyout", str(crt_key), "-out", str(crt))  # fmt: skip
    crt_key.chmod(0o644)  # read by the lab's nginx workers (www-data) through the bind
