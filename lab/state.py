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
