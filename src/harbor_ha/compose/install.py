"""What `harbor-ha check` verifies of a Harbor install dir (pure: the caller reads the files).

Harbor's installer (``prepare``) writes ``docker-compose.yml`` beside ``harbor.yml`` and its
secrets under ``data_volume/secret``.  The daemon manages the mountpoint; Harbor writes to its
``data_volume``: the two must be the same path, and the secrets must be on the image (a node
that takes over must find the same keys, or stored passwords cannot be decrypted and tokens
signed by the old master do not verify)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

HARBOR_SERVICES = (
    "log", "registry", "registryctl", "postgresql", "core", "portal", "jobservice", "redis",
    "proxy",
)  # fmt: skip
"""The compose services every Harbor v2 install has (trivy-adapter only with trivy)."""

HARBOR_SECRETS = (
    "secret/keys/secretkey",
    "secret/core/private_key.pem",
    "secret/registry/root.crt",
)
"""Files under data_volume that core and the registry bind: the key that encrypts stored
passwords, and the token service's signing key and certificate."""

HTTPS_CERT_DIR = "secret/cert"
"""The proxy's https certificate directory under data_volume (an https install)."""

_TOP_KEY = re.compile(r"^(?P<key>[A-Za-z_]+):\s*(?P<value>[^#\s][^#]*?)?\s*(?:#.*)?$")


def top_level(harbor_yml: str) -> dict[str, str]:
    """harbor.yml's top-level scalar keys (``data_volume: /data``) and the names of its
    top-level sections (``https:`` -> ""); comments and nested keys ignored."""
    out: dict[str, str] = {}
    for line in harbor_yml.splitlines():
        m = _TOP_KEY.match(line)
        if m:
            out[m.group("key")] = (m.group("value") or "").strip().strip("'\"")
    return out


def install_findings(
    harbor_yml: str | None,
    services: Iterable[str],
    mountpoint: Path,
    mounted: bool,
    exists: Callable[[Path], bool],
) -> list[tuple[str, str]]:
    """(OK|WARN|FAIL, message) about a Harbor install dir: its services against Harbor's
    list, harbor.yml's data_volume against the mountpoint, the secrets the data volume must
    hold (checked when the mountpoint is mounted here, else listed)."""
    out: list[tuple[str, str]] = []
    have = set(services)
    missing = [name for name in HARBOR_SERVICES if name not in have]
    if missing:
        out.append(("WARN", "harbor: compose services missing against Harbor's: "
                    + ", ".join(missing)))  # fmt: skip
    keys = top_level(harbor_yml) if harbor_yml is not None else {}
    if harbor_yml is None:
        out.append(("WARN", "harbor: no harbor.yml beside the compose file: data_volume and "
                    "https not checked"))  # fmt: skip
    else:
        volume = keys.get("data_volume", "/data")
        if Path(volume) != mountpoint:
            out.append(("FAIL", f"harbor: harbor.yml data_volume {volume} is not "
                        f"HARBOR_HA_MOUNTPOINT {mountpoint}: Harbor would write beside the "
                        "image"))  # fmt: skip
    secrets = list(HARBOR_SECRETS) + ([HTTPS_CERT_DIR] if "https" in keys else [])
    if mounted:
        absent = [s for s in secrets if not exists(mountpoint / s)]
        if absent:
            out.append(("FAIL", f"harbor: the data volume lacks {', '.join(absent)} (Harbor's "
                        "prepare writes them; a node that takes over needs the same)"))  # fmt: skip
        else:
            out.append(("OK", f"harbor: the data volume holds {', '.join(secrets)}"))
    else:
        out.append(("OK", f"harbor: the data volume must hold {', '.join(secrets)} (not "
                    f"mounted here: checked on the master)"))  # fmt: skip
    return out
