"""The addresses of one interface, read from the kernel over rtnetlink (RTM_GETADDR dump).

What ``ip -j addr show dev IFACE`` prints as ``local``, without a process: the VIP check runs
every tick on both nodes, and a fork + exec of ``ip`` per tick was most of the idle daemon's
CPU (about 2 ms of CPU a call).  The socket lives in the caller's network namespace, like
``ip``.  One request, a few hundred bytes back: synchronous, bounded by a socket timeout.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

RTM_NEWADDR = 20
RTM_GETADDR = 22
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
IFA_ADDRESS = 1
IFA_LOCAL = 2

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTATTR = struct.Struct("=HH")  # len, type

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _align(n: int) -> int:
    return (n + 3) & ~3


def parse_addresses(data: bytes, index: int) -> tuple[list[IpAddress], bool]:
    """The local addresses of interface ``index`` in a chunk of RTM_NEWADDR messages, and
    whether the dump ended (NLMSG_DONE).  Raises OSError for an NLMSG_ERROR."""
    out: list[IpAddress] = []
    pos = 0
    while pos + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, pos)
        if length < _NLMSGHDR.size:
            break
        body = pos + _NLMSGHDR.size
        if kind == NLMSG_DONE:
            return out, True
        if kind == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, body)
            if err:
                raise OSError(-err, os.strerror(-err))
        elif kind == RTM_NEWADDR:
            _, _, _, _, ifindex = _IFADDRMSG.unpack_from(data, body)
            attrs: dict[int, bytes] = {}
            apos, end = body + _IFADDRMSG.size, pos + length
            while apos + _RTATTR.size <= end:
                alen, atype = _RTATTR.unpack_from(data, apos)
                if alen < _RTATTR.size:
                    break
                attrs[atype] = data[apos + _RTATTR.size : apos + alen]
                apos += _align(alen)
            raw = attrs.get(IFA_LOCAL, attrs.get(IFA_ADDRESS))
            if ifindex == index and raw is not None and len(raw) in (4, 16):
                out.append(ipaddress.ip_address(raw))
        pos += _align(length)
    return out, False


def interface_addresses(interface: str, timeout_s: float) -> list[IpAddress]:
    """Every address on ``interface`` (IPv4 and IPv6).  Raises OSError when the interface
    does not exist or the kernel does not answer within ``timeout_s``."""
    index = socket.if_nametoindex(interface)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(timeout_s)
        sock.bind((0, 0))
        request = _NLMSGHDR.pack(
            _NLMSGHDR.size + _IFADDRMSG.size, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
        ) + _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        sock.send(request)
        found: list[IpAddress] = []
        while True:
            chunk, done = parse_addresses(sock.recv(65536), index)
            found += chunk
            if done:
                return found
