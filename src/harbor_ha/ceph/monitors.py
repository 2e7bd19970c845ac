"""Where the Ceph monitors listen: ``mon_host`` from the settings or ceph.conf (pure parsing).

The standby asks "does any monitor accept a TCP connection?" every readiness check, in
process, between the checks that need a Ceph CLI (see :mod:`harbor_ha.daemon.standby_readiness`).
Only the monitors' addresses are read here; anything this parser does not understand gives
no address, and the caller then relies on the CLI checks alone.
"""

from __future__ import annotations

import re
from pathlib import Path

MSGR2_PORT = 3300
MSGR1_PORT = 6789

_ADDRESS = re.compile(
    r"(?:(?P<proto>v[12]):)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s,;\[\]:/]+)(?::(?P<port>\d+))?"
    r"(?:/\d+)?"
)
"""One monitor address: ``[v1:|v2:]HOST[:PORT][/NONCE]`` with HOST an IPv4 address, a name or
a bracketed IPv6 address; address vectors ``[v2:...,v1:...]`` are read element by element."""


def parse_mon_host(value: str) -> list[tuple[str, int]]:
    """(host, port) of every address in a ``mon_host`` value, in order, without repeats.
    A bare address stands for both Ceph ports (msgr2 3300 and msgr1 6789)."""
    out: list[tuple[str, int]] = []
    for m in _ADDRESS.finditer(value):
        host = m["host"].strip("[]")
        if m["port"]:
            ports = [int(m["port"])]
        elif m["proto"] == "v1":
            ports = [MSGR1_PORT]
        elif m["proto"] == "v2":
            ports = [MSGR2_PORT]
        else:
            ports = [MSGR2_PORT, MSGR1_PORT]
        for port in ports:
            if (host, port) not in out:
                out.append((host, port))
    return out


def _key(name: str) -> str:
    """Ceph's option names: spaces, dashes and underscores are the same."""
    return re.sub(r"[\s_-]+", "_", name.strip().lower())


def conf_mon_host(text: str, user: str) -> str | None:
    """The ``mon host`` a client ``client.USER`` reads from a ceph.conf text: the most specific
    of the sections [global], [client] and [client.USER] that sets it (the last line wins)."""
    order = {"global": 0, "client": 1, f"client.{user}": 2}
    found: dict[int, str] = {}
    section: str | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, sep, value = line.partition("=")
        if sep and section in order and _key(key) == "mon_host":
            found[order[section]] = value.strip()
    return found[max(found)] if found else None


def monitor_addresses(mon_host: str | None, conf: Path | None, user: str) -> list[tuple[str, int]]:
    """The monitors' (host, port): from ``mon_host`` when set, else from ``conf`` (default
    /etc/ceph/ceph.conf); [] when neither names them or the file cannot be read."""
    if mon_host:
        return parse_mon_host(mon_host)
    try:
        text = (conf or Path("/etc/ceph/ceph.conf")).read_text()
    except (OSError, UnicodeDecodeError):
        return []
    value = conf_mon_host(text, user)
    return parse_mon_host(value) if value else []
