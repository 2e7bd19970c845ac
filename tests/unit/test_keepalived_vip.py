"""vip_present against the kernel's addresses of this host's interfaces, read over rtnetlink,
and the netlink reader against the real `ip -j addr show` of every interface."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess

import pytest

from harbor_ha.keepalived import VipCheckError, vip_present
from harbor_ha.keepalived.netlink import interface_addresses
from harbor_ha.runner import ProcessRunner
from tests.fakes import example_settings


async def test_address_on_the_interface_is_present() -> None:
    """127.0.0.1 is on lo: present; 127.0.0.99 is not."""
    assert await vip_present(ProcessRunner(), example_settings(interface="lo", vip="127.0.0.1/8"))
    assert not await vip_present(
        ProcessRunner(), example_settings(interface="lo", vip="127.0.0.99/8")
    )


async def test_missing_interface_raises() -> None:
    """An interface that does not exist raises VipCheckError naming it."""
    with pytest.raises(VipCheckError, match="hhk-nope0"):
        await vip_present(
            ProcessRunner(), example_settings(interface="hhk-nope0", vip="10.77.0.100/24")
        )


@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 not installed")
def test_netlink_reads_what_ip_prints() -> None:
    """For every interface of this host, the addresses read over rtnetlink are the ``local``
    addresses ``ip -j addr show`` prints (IPv4 and IPv6), in the same order."""
    links = json.loads(
        subprocess.run(
            ["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    )
    assert links
    for link in links:
        expected = [ipaddress.ip_address(a["local"]) for a in link.get("addr_info", [])]
        assert interface_addresses(link["ifname"], 2.0) == expected, link["ifname"]
