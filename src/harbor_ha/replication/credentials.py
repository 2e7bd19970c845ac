"""The pair's accounts for `harbor-ha replication setup`: one INI file, readable by root only.

[a]                                # a node's name in the pair
url = https://10.0.0.11            # its own Harbor, not the VIP
username = harbor-ha-replication   # an account on that Harbor: the API calls to it, and
password = ...                     #   the peer's endpoint pushing to it
insecure = false                   # optional: do not verify its certificate
ca_file = /etc/harbor-ha/ca.crt    # optional: the CA its certificate is verified with

[b]
...
"""

from __future__ import annotations

import configparser
import os
import stat
from pathlib import Path

from harbor_ha.replication.plan import Peer


class CredentialsError(Exception):
    """The file is missing, readable by others than root, or incomplete (the message says)."""


def _check_mode(path: Path, st: os.stat_result) -> None:
    if st.st_uid != 0:
        raise CredentialsError(f"{path}: owned by uid {st.st_uid}, not root")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"{path}: mode {stat.S_IMODE(st.st_mode):04o}: it holds passwords, make it 0600"
        )


def read_pair(path: Path) -> tuple[Peer, Peer, dict[str, str]]:
    """The two nodes (in file order) and, per node name, its CA file ('' = system CAs)."""
    try:
        st = path.stat()
        text = path.read_text()
    except OSError as exc:
        raise CredentialsError(f"{path}: {exc.strerror or exc}") from exc
    _check_mode(path, st)
    ini = configparser.ConfigParser(interpolation=None)
    try:
        ini.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise CredentialsError(f"{path}: {exc}") from exc
    names = ini.sections()
    if len(names) != 2:
        raise CredentialsError(f"{path}: {len(names)} sections; want one per node of the pair")
    peers: list[Peer] = []
    cas: dict[str, str] = {}
    for name in names:
        sec = ini[name]
        missing = [k for k in ("url", "username", "password") if not sec.get(k)]
        if missing:
            raise CredentialsError(f"{path}: [{name}] lacks {', '.join(missing)}")
        url = sec["url"].strip()
        if not url.startswith(("https://", "http://")):
            raise CredentialsError(f"{path}: [{name}] url {url!r} is not http(s)://")
        try:
            insecure = sec.getboolean("insecure", fallback=False)
        except ValueError as exc:
            raise CredentialsError(f"{path}: [{name}] insecure: {exc}") from exc
        peers.append(Peer(name, url, sec["username"], sec["password"], insecure))
        cas[name] = sec.get("ca_file", "").strip()
    return peers[0], peers[1], cas


def pair_for(path: Path, node_name: str) -> tuple[Peer, Peer, dict[str, str]]:
    """This node, its peer (by ``node_name``) and the CA files, from ``path``; CredentialsError
    when the file is wrong or has no section for this node."""
    a, b, cas = read_pair(path)
    if node_name not in (a.name, b.name):
        raise CredentialsError(
            f"{path}: no section [{node_name}] (this node's name); it names [{a.name}] and "
            f"[{b.name}]"
        )
    return (a, b, cas) if a.name == node_name else (b, a, cas)
