"""Network namespaces of the lab: one netns, a bridge netns with veth ports, the two-node lab's
topology, and the two ways code reaches into a netns (a thread that setns()'d into it for
Python sockets; ``ip netns exec`` for the product's commands).

Two-node lab topology (prefix P, subnet 10.99.0.0/24 by default)::

    netns P-br:   bridge br0
    netns P-a:    eth0 .11  node a
    netns P-b:    eth0 .12  node b
    netns P-c:    eth0 .13  the client (reaches Harbor through the VIP .100)
    netns P-ceph: eth0 .20  ceph-mon + memstore ceph-osd (not in the replicated lab)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from harbor_ha.runner import CommandResult, ProcessRunner, Runner
from lab.procs import sh
from lab.state import HOSTS, LabState, host


def make_netns(prefix: str = "hhd-") -> str:
    """Create a network namespace ``prefix<random>`` with loopback up; returns its name."""
    name = prefix + secrets.token_hex(4)
    add_netns(name)
    return name


def add_netns(name: str) -> None:
    """Create network namespace ``name`` with loopback up."""
    sh("ip", "netns", "add", name, timeout=30)
    sh("ip", "-n", name, "link", "set", "lo", "up", timeout=30)


def delete_netns(name: str) -> None:
    """Delete a network namespace (ignores a missing one)."""
    sh("ip", "netns", "del", name, check=False, timeout=30)


def add_bridge(netns: str) -> None:
    """Bridge ``br0`` (multicast snooping off: VRRP is multicast) in the existing ``netns``."""
    sh("ip", "-n", netns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
    sh("ip", "-n", netns, "link", "set", "br0", "up")


def add_port(bridge_netns: str, port: str, netns: str, cidr: str) -> None:
    """A veth from ``bridge_netns``'s br0 (named ``port`` there) to ``eth0`` in ``netns``,
    which gets address ``cidr``."""
    sh(
        "ip",
        "-n",
        bridge_netns,
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "eth0",
        "netns",
        netns,
    )
    sh("ip", "-n", bridge_netns, "link", "set", port, "master", "br0", "up")
    sh("ip", "-n", netns, "addr", "add", cidr, "dev", "eth0")
    sh("ip", "-n", netns, "link", "set", "eth0", "up")


def make_lab_topology(
    st: LabState, roles: Sequence[str] = tuple(HOSTS), hosts: Mapping[str, int] = HOSTS
) -> None:
    """The lab's netns (module doc), for the ``roles`` of ``hosts`` (role -> host number in
    the subnet: the two-node lab's HOSTS, whose replicated lab has no P-ceph, or the shared
    lab's); each netns is recorded in ``st`` (and saved) before anything is put in it, so
    ``down`` deletes it even after a failure half-way."""
    prefixlen = ipaddress.ip_network(st.subnet).prefixlen
    br = f"{st.prefix}-br"
    for ns in (br, *(f"{st.prefix}-{role}" for role in roles)):
        sh("ip", "netns", "add", ns)
        st.netns.append(ns)
        st.save()
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    add_bridge(br)
    for role in roles:
        cidr = f"{host(st.subnet, hosts[role])}/{prefixlen}"
        add_port(br, f"v{role}", f"{st.prefix}-{role}", cidr)


# ------------------------------------------------------------- a small topology
@dataclass(frozen=True)
class NetnsNode:
    """One node of a topology: its netns, interface and address."""

    name: str
    netns: str
    iface: str
    address: str
    prefixlen: int

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True)
class Topology:
    """A bridge netns plus node netns on one subnet; ``vip`` is host .100 of the subnet."""

    prefix: str
    subnet: str
    bridge_netns: str
    nodes: tuple[NetnsNode, ...]
    vip: str

    def node(self, name: str) -> NetnsNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


@contextlib.contextmanager
def netns_topology(
    subnet: str,
    prefix: str,
    node_names: Sequence[str] = ("a", "b"),
    first_host: int = 11,
) -> Iterator[Topology]:
    """Create ``<prefix>br`` (bridge br0) and ``<prefix><name>`` per node, joined by veths.

    Node i gets host address ``first_host + i`` of ``subnet`` on its ``eth0``;
    the VIP is host .100. Everything is deleted on exit, also after a failure
    half-way through.
    """
    net = ipaddress.ip_network(subnet)
    created: list[str] = []
    try:
        bridge = f"{prefix}br"
        add_netns(bridge)
        created.append(bridge)
        add_bridge(bridge)
        nodes = []
        for i, name in enumerate(node_names):
            netns = f"{prefix}{name}"
            add_netns(netns)
            created.append(netns)
            address = host(subnet, first_host + i)
            add_port(bridge, f"v{i}", netns, f"{address}/{net.prefixlen}")
            nodes.append(NetnsNode(name, netns, "eth0", address, net.prefixlen))
        vip = f"{host(subnet, 100)}/{net.prefixlen}"
        yield Topology(prefix, subnet, bridge, tuple(nodes), vip)
    finally:
        for netns in reversed(created):
            delete_netns(netns)


# ------------------------------------------------------------- reaching into a netns
_CLONE_NEWNET = 0x40000000
T = TypeVar("T")


class NetnsExecutor:
    """A one-thread executor whose thread has entered netns ``name`` (setns(2) is per thread).

    ``await ex.run(coro_fn)`` runs ``coro_fn()`` on a private event loop in that thread, so every
    socket it opens lives in the netns. Objects bound to a loop must be created inside coro_fn.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"netns-{name}", initializer=self._enter
        )

    def _enter(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {self.name}: {os.strerror(err)}")
        finally:
            os.close(fd)

    async def run(self, coro_fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``coro_fn()`` to completion inside the netns."""

        async def main() -> T:
            return await coro_fn()

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: asyncio.run(main()))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class NetnsRunner:
    """A real Runner that runs every command inside ``netns`` via ``ip netns exec``."""

    def __init__(self, netns: str, inner: Runner | None = None) -> None:
        self.netns = netns
        self.inner: Runner = inner or ProcessRunner()

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        input_data: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = False,
    ) -> CommandResult:
        return await self.inner.run(
            ["ip", "netns", "exec", self.netns, *argv],
            timeout_s=timeout_s,
            input_data=input_data,
            env=env,
            check=check,
        )
