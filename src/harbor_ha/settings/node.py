"""Settings of the node and of its keepalived (VRRP instance, FIFO, track files)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from harbor_ha.settings.mode import Mode


class NodeSettings(BaseModel):
    """Which shape of Harbor this node serves, who this node is and where its VIP lives."""

    mode: Mode = Field(
        default=Mode.RBD,
        description=(
            "The shape of the deployment. rbd: one Harbor whose data is one exclusive Ceph "
            "RBD image, failed over between the two nodes (lease, fence, map, mount, start). "
            "replicated: two Harbors, each on its own storage, replicating to each other "
            "through Harbor's API; both run all the time and harbor-ha only moves the VIP "
            "(keepalived's track files from Harbor's health). shared: N Harbors on one shared "
            "filesystem or object storage behind a load balancer; each node mounts, starts, "
            "serves and drains on its own (HARBOR_HA_SHARED_*). Default rbd: the shape this "
            "product was made for."
        ),
    )
    node_name: str = Field(
        default_factory=socket.gethostname,
        description="Name of this node in logs and metrics. Default: the hostname.",
    )
    interface: str = Field(
        description="Required. Network interface that carries the VIP (keepalived's `interface`).",
    )
    vip: str = Field(
        description=(
            "Required. Virtual IP with prefix length, e.g. 10.0.0.100/24. A bare address gets /32."
        ),
    )
    keepalived_role: Literal["MASTER", "BACKUP"] = Field(
        default="BACKUP",
        description=(
            "Preferred role. Only sets the default VRRP priority (MASTER 110, BACKUP 100): "
            "both nodes start as BACKUP with nopreempt so a recovering node never steals the VIP."
        ),
    )


class KeepalivedSettings(BaseModel):
    """keepalived's VRRP instance, its notify FIFO and its track files."""

    vrrp_instance: str = Field(
        default="VI_1",
        description="Name of the vrrp_instance whose FIFO lines this daemon follows.",
    )
    vrrp_router_id: int = Field(
        default=51,
        ge=1,
        le=255,
        description="VRRP virtual_router_id; must be the same on both nodes and unique on the LAN.",
    )
    vrrp_priority: int | None = Field(
        default=None,
        ge=1,
        le=254,
        description="Base VRRP priority. Default: 110 for role MASTER, 100 for BACKUP.",
    )
    vrrp_advert_interval_s: float = Field(
        default=0.5,
        ge=0.01,
        le=40.95,
        description=(
            "VRRPv3 advert interval in seconds (centisecond steps). 0.5 s detects a dead master "
            "in ~1.6 s without false failovers on a loaded host."
        ),
    )
    vrrp_unicast_src_ip: str | None = Field(
        default=None,
        description="Source address for unicast VRRP. Unset: multicast.",
    )
    vrrp_unicast_peers: list[str] = Field(
        default_factory=list,
        description="Comma-separated peer addresses for unicast VRRP. Empty: multicast.",
    )
    keepalived_fifo: Path = Field(
        default=Path("/run/harbor-ha/keepalived.fifo"),
        description="keepalived's notify_fifo. Created by the daemon if missing.",
    )
    keepalived_gone_after_s: float = Field(
        default=3.0,
        gt=0,
        description=(
            "Seconds the notify FIFO may stay without a keepalived holding it (keepalived "
            "keeps it open for its whole life) before the daemon takes keepalived as dead "
            "(kill -9, crash): a master then demotes, as on keepalived's FAULT, so the peer "
            "can take over, and a VIP left on the interface is no verdict. A reload or restart "
            "holds it again within milliseconds; 3 s is several VRRP adverts."
        ),
    )
    priority_file: Path = Field(
        default=Path("/run/harbor-ha/priority"),
        description="Weighted track file: 1 = ready/healthy, 0 = not (x priority_weight).",
    )
    fault_file: Path = Field(
        default=Path("/run/harbor-ha/fault"),
        description="Weight-0 track file: non-zero puts keepalived in FAULT (fastest hand-over).",
    )
    priority_weight: int = Field(
        default=50,
        ge=1,
        le=253,
        description=(
            "Weight of the priority file. 50 makes a ready node beat an unready one whatever "
            "the base priorities (which differ by 10)."
        ),
    )
    keepalived_bin: str = Field(
        default="keepalived",
        description="keepalived executable (check, render's `keepalived -t`).",
    )
    keepalived_conf: Path = Field(
        default=Path("/etc/keepalived/keepalived.conf"),
        description="Where render-keepalived writes and check reads keepalived's config.",
    )
    ip_bin: str = Field(
        default="ip",
        description=(
            "Unused since the VIP check reads the kernel over netlink (no `ip` per tick); "
            "still accepted so existing env files stay valid."
        ),
    )
