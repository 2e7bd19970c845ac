"""The lab bridge for VMs: a netns holding br0, hosts on it by veth, VMs on it by tap.

A VM's qemu runs inside the bridge's netns (``nsenter --net``) so it can open
its tap there.  Cutting a VM off the lab network = taking its tap off the
bridge (the guest's link stays up, like a failed switch port upstream).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

BRIDGE = "br0"
CMD_TIMEOUT_S = 30.0


class NetError(RuntimeError):
    """An ip(8) command of the lab network failed."""


def ip(*args: str, check: bool = True) -> str:
    res = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=CMD_TIMEOUT_S, check=False
    )
    if check and res.returncode != 0:
        raise NetError(f"ip {' '.join(args)}: exit {res.returncode}: {res.stderr.strip()}")
    return res.stdout


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def make_bridge(netns: str) -> None:
    """Create ``netns`` with an up bridge br0 (no STP, no multicast snooping)."""
    ip("netns", "add", netns)
    ip("-n", netns, "link", "set", "lo", "up")
    ip("-n", netns, "link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0")
    ip("-n", netns, "link", "set", BRIDGE, "up")


def add_host(bridge_ns: str, netns: str, address: str, port: str) -> None:
    """Create ``netns`` joined to the bridge by a veth (``port`` on the bridge, eth0 inside)."""
    ip("netns", "add", netns)
    ip("-n", netns, "link", "set", "lo", "up")
    ip("-n", bridge_ns, "link", "add", port, "type", "veth", "peer", "eth0", "netns", netns)
    ip("-n", bridge_ns, "link", "set", port, "master", BRIDGE, "up")
    ip("-n", netns, "addr", "add", address, "dev", "eth0")
    ip("-n", netns, "link", "set", "eth0", "up")


def add_tap(bridge_ns: str, tap: str) -> None:
    ip("-n", bridge_ns, "tuntap", "add", "dev", tap, "mode", "tap")
    ip("-n", bridge_ns, "link", "set", tap, "master", BRIDGE, "up")


def del_link(netns: str, link: str) -> None:
    if netns_exists(netns):
        ip("-n", netns, "link", "del", link, check=False)


def cut(bridge_ns: str, tap: str) -> None:
    """Take the VM's tap off the bridge: no frame reaches or leaves the VM."""
    ip("-n", bridge_ns, "link", "set", tap, "nomaster")


def heal(bridge_ns: str, tap: str) -> None:
    ip("-n", bridge_ns, "link", "set", tap, "master", BRIDGE)


def del_netns(netns: str) -> None:
    if netns_exists(netns):
        ip("netns", "del", netns, check=False)
