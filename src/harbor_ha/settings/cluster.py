"""Settings of the cluster as a whole: its nodes, where Harbor's configuration lies on each
node (for the consistency fingerprint), and the load balancer's checks of the nodes.

``HARBOR_HA_NODES`` lists every node of the cluster, this one included, as
``name=host[:port]`` separated by commas (``a=10.0.0.11,b=10.0.0.12,c=10.0.0.13``).  The
host is where the load balancer reaches the node's Harbor (its ``https_port``) and harbor-ha's
read-only HTTP listener (``port``, default this node's ``http_port``: the cluster's nodes
share one).  The single ``peer_http_url`` of the two-node modes stays valid: it is the
one-element list of peers (:meth:`ClusterSettings.peers` in :class:`Settings`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

SERVING_PATH = "/serving"
"""harbor-ha's per-node endpoint on its read-only HTTP listener that a load balancer checks:
200 while the node serves, 503 otherwise (HAProxy's httpchk, keepalived's HTTP_GET)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HOST = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


@dataclass(frozen=True)
class ClusterNode:
    """One node of ``HARBOR_HA_NODES``: its name, host and harbor-ha HTTP port (None: the
    ``http_port`` setting)."""

    name: str
    host: str
    port: int | None = None

    def text(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}={host}" + (f":{self.port}" if self.port is not None else "")


def _host(text: str) -> str:
    """An IP address or a DNS name (ValueError otherwise)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if len(text) > 253 or not _HOST.fullmatch(text):
        raise ValueError(f"{text!r} is neither an IP address nor a host name")
    return text


def parse_node(entry: str) -> ClusterNode:
    """``name=host``, ``name=host:port``, ``name=[v6]:port`` -> ClusterNode (ValueError with
    the entry named)."""
    name, eq, address = entry.strip().partition("=")
    name, address = name.strip(), address.strip()
    if not eq or not name or not address:
        raise ValueError(f"{entry.strip()!r}: want name=host[:port]")
    if not _NAME.fullmatch(name):
        raise ValueError(f"{entry.strip()!r}: node name {name!r} must be letters, digits, . _ -")
    port: int | None = None
    if address.startswith("["):
        host, close, rest = address[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry.strip()!r}: want name=[v6 address]:port")
        port_text = rest[1:] if rest else None
    elif address.count(":") == 1:
        host, _, port_text = address.partition(":")
    else:  # a bare name, IPv4, or a bare IPv6 address
        host, port_text = address, None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{entry.strip()!r}: port {port_text!r} is not 1-65535")
        port = int(port_text)
    try:
        return ClusterNode(name, _host(host), port)
    except ValueError as exc:
        raise ValueError(f"{entry.strip()!r}: {exc}") from None


def parse_nodes(value: str) -> list[ClusterNode]:
    """The whole setting: comma- or blank-separated entries; names and addresses unique."""
    nodes = [parse_node(e) for e in value.replace(" ", ",").split(",") if e.strip()]
    for what, key in (("name", lambda n: n.name), ("address", lambda n: (n.host, n.port))):
        seen: set[Any] = set()
        for node in nodes:
            if key(node) in seen:
                raise ValueError(f"node {what} {node.text()!r} given twice")
            seen.add(key(node))
    return nodes


class ClusterSettings(BaseModel):
    """The cluster's nodes, Harbor's configuration files on this node, the LB's checks."""

    nodes: list[ClusterNode] = Field(
        default_factory=list,
        description=(
            "Every node of the cluster, this one included: name=host[:port], comma-separated "
            "(a=10.0.0.11,b=10.0.0.12,c=10.0.0.13). host: where the load balancer reaches the "
            "node's Harbor (https_port) and harbor-ha's HTTP listener; port: that listener's "
            "port (default http_port). The names are the nodes' HARBOR_HA_NODE_NAME (`check` "
            "fails a node whose /status answers with another name). Read by `list`, `check` "
            "(the consistency of Harbor's secrets, endpoints and version across nodes), "
            "render-haproxy and render-keepalived --for lb|lvs. Empty: the two-node modes' "
            "peer_http_url is the only other node, and no cross-node comparison is made."
        ),
    )
    harbor_config_dir: Path | None = Field(
        default=None,
        description=(
            "Harbor's generated configuration (its prepare step writes core/env, "
            "jobservice/config.yml, registry/config.yml there): the core and jobservice "
            "secrets, the CSRF key, the database and Redis endpoints, the registry's HTTP "
            "secret, the job loggers. Default: common/config beside compose_file (where "
            "Harbor's installer puts it)."
        ),
    )
    harbor_secret_dir: Path | None = Field(
        default=None,
        description=(
            "Harbor's secret directory (keys/secretkey: the key encrypting stored passwords; "
            "core/private_key.pem and registry/root.crt: the token signing pair). Default: "
            "secret under mountpoint (Harbor's data_volume/secret)."
        ),
    )
    fingerprint_interval_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Seconds between two readings of Harbor's configuration files by the daemon for "
            "/status's cluster_fingerprint (only with HARBOR_HA_NODES set). 60 s: the files "
            "change when an operator reruns Harbor's prepare, not by themselves; the reading "
            "runs off the event loop with a bound of command_timeout_s (a hung shared mount "
            "cannot stall the daemon)."
        ),
    )
    lb_check_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description=(
            "render-haproxy / render-keepalived --for lvs: seconds between two checks of a "
            "node's /serving by the load balancer (HAProxy's inter, keepalived's delay_loop). "
            "1 s: a few requests a second on a LAN for the whole cluster; a stopped node is "
            "out of rotation within a few seconds."
        ),
    )
    lb_check_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description=(
            "Seconds one check of /serving may take (HAProxy's timeout check, keepalived's "
            "connect_timeout). harbor-ha answers it from memory in milliseconds; 1 s covers "
            "a loaded host."
        ),
    )
    lb_check_fall: int = Field(
        default=2,
        ge=1,
        le=100,
        description=(
            "Failed checks in a row that take a node out of rotation (HAProxy's fall; "
            "keepalived's retry + 1). 2: one lost packet does not drain a node."
        ),
    )
    lb_check_rise: int = Field(
        default=3,
        ge=1,
        le=100,
        description=(
            "Passed checks in a row that put a node back (HAProxy's rise). 3: a node that "
            "flaps is not handed new clients at once."
        ),
    )
    lb_persistence_s: int = Field(
        default=1800,
        ge=60,
        description=(
            "Seconds a client's source address stays bound to one node after its last "
            "connection (HAProxy's stick-table expire, keepalived's persistence_timeout): "
            "Harbor's blob upload (POST, PATCHes, PUT) must end on the node that began it. "
            "30 min covers a large layer over a slow link."
        ),
    )
    lvs_forwarding: Literal["DR", "NAT"] = Field(
        default="DR",
        description=(
            "render-keepalived --for lvs: keepalived's lb_kind. DR (direct routing): the nodes "
            "answer clients themselves and must hold the VIP on lo without answering ARP for "
            "it (arp_ignore=1, arp_announce=2); NAT: the nodes' replies must route back "
            "through the director. DR: no change of the nodes' routing."
        ),
    )

    @field_validator("nodes", mode="before")
    @classmethod
    def _nodes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_nodes(value)
        return value

    @field_validator("harbor_config_dir", "harbor_secret_dir")
    @classmethod
    def _absolute_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value
