"""vip_present against the real `ip -j addr show` of this host's loopback."""

from __future__ import annotations

import shutil

import pytest

from harbor_ha.keepalived import VipCheckError, vip_present
from harbor_ha.runner import ProcessRunner
from tests.fakes import example_settings

pytestmark = pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 not installed")


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


async def test_missing_ip_binary_raises() -> None:
    """An ip binary that cannot run raises VipCheckError, not a runner error."""
    settings = example_settings(interface="lo", vip="127.0.0.1/8", ip_bin="/nonexistent/ip")
    with pytest.raises(VipCheckError, match="cannot execute"):
        await vip_present(ProcessRunner(), settings)
