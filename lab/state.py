"""The lab's fixed layout (addresses, names, ports) and its record, LABDIR/state.json: every
netns, directory and PID the lab made, so ``down`` can clean up also after a crash."""

from __future__ import annotations

import ipaddress
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
HARBOR_HA = str(VENV_BIN / "harbor-ha")
DEFAULT_LABDIR = Path("/var/tmp/harbor-ha-lab")
NODE_NAMES = ("a", "b")
HOSTS = {"a": 11, "b": 12, "c": 13, "ceph": 20}
VIP_HOST = 100
HTTPS_PORT = 443
PROJECT = "harbor"
"""Compose project name of the Harbor shape on every node."""
STACKS = ("shape", "registry")
"""The lab's Harbor projects: the busybox shape (fast tiers) or the registry stack of real
programs (registry, PostgreSQL, redis, nginx; lab/registry_stack)."""
MODES = ("rbd", "replicated", "shared")
"""harbor-ha's modes the lab runs (HARBOR_HA_MODE): "rbd", one Ceph RBD image failed over
(Ceph, the krbd stand-in, the image formatted and prepared; harbor-ha starts and stops Harbor);
"replicated", each node's Harbor on its own local data directory, started by the lab and
running on both nodes all the time (no Ceph; harbor-ha only moves the VIP by Harbor's health);
"shared", N nodes on one CephFS behind HAProxy (lab/shared.py)."""


@dataclass
class NodeState:
    name: str
    netns: str
    address: str
    dir: str
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def env_file(self) -> Path:
        return self.path / "harbor-ha.env"

    @property
    def run_dir(self) -> Path:
        return self.path / "run"

    @property
    def mountpoint(self) -> Path:
        return self.path / "data"

    @property
    def compose_file(self) -> Path:
        """Harbor's compose file on the node (HARBOR_HA_COMPOSE_FILE)."""
        return self.path / "harbor" / "docker-compose.yml"

    @property
    def rbd_state(self) -> Path:
        return self.path / "rbd"

    @property
    def log(self) -> Path:
        return self.path / "harbor-ha.log"

    @property
    def ka_log(self) -> Path:
        return self.path / "keepalived.log"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}/docker/docker.sock"

    @property
    def control_dir(self) -> Path:
        return self.path / "harbor" / "control"

    @property
    def ca_dir(self) -> Path:
        """The registry stack's client CA directory (skopeo's --*-cert-dir)."""
        return self.path / "harbor" / "config" / "client"


@dataclass
class LabState:
    prefix: str
    subnet: str
    labdir: str
    advert_s: float
    vip: str
    netns: list[str] = field(default_factory=list)
    nodes: dict[str, NodeState] = field(default_factory=dict)
    ceph_dir: str = ""
    ceph_conf: str = ""
    ceph_keyring: str = ""
    ceph_pids: dict[str, int] = field(default_factory=dict)
    client_netns: str = ""
    blackholes: list[list[str]] = field(default_factory=list)
    log_level: str = "info"  # HARBOR_HA_LOG_LEVEL of both nodes ("debug": one line per command)
    stack: str = "shape"  # "shape": lab/harbor_shape (busybox); "registry": lab/registry_stack
    mode: str = "rbd"  # MODES; a state.json written before the field existed is an rbd lab
    extra_pids: dict[str, int] = field(default_factory=dict)  # the shared lab's ext and lb
    evict_after_s: float = 0.0  # the shared lab's HARBOR_HA_SHARED_EVICT_AFTER_S (0: off)

    @property
    def vip_address(self) -> str:
        return self.vip.split("/")[0]

    def save(self) -> None:
        path = Path(self.labdir) / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, labdir: Path) -> LabState:
        data = json.loads((labdir / "state.json").read_text())
        data["nodes"] = {k: NodeState(**v) for k, v in data["nodes"].items()}
        return cls(**data)


def host(subnet: str, n: int) -> str:
    """Host number ``n`` of ``subnet`` (1 = the first usable address)."""
    return str(list(ipaddress.ip_network(subnet).hosts())[n - 1])
