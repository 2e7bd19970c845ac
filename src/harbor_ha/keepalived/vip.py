"""Is the VIP on this node's interface? The truth behind the FIFO's hints."""

from __future__ import annotations

import ipaddress

import structlog

from harbor_ha.keepalived.errors import VipCheckError
from harbor_ha.keepalived.netlink import interface_addresses
from harbor_ha.runner import Runner
from harbor_ha.settings import Settings

log = structlog.get_logger(__name__)


async def vip_present(runner: Runner, settings: Settings) -> bool:
    """True when settings.vip_address is assigned to settings.interface.

    Reads the interface's addresses from the kernel over rtnetlink (what ``ip -j addr show
    dev IFACE`` prints as ``local``, without running it: see :mod:`.netlink`); raises
    VipCheckError when that fails (interface missing, no answer).  ``runner`` is unused and
    kept for the callers' signature.
    """
    del runner
    try:
        addresses = interface_addresses(settings.interface, settings.command_timeout_s)
    except OSError as exc:  # if_nametoindex: "no interface with this name"
        raise VipCheckError(f"cannot list addresses of {settings.interface}: {exc}") from exc
    wanted = ipaddress.ip_address(settings.vip_address)
    present = wanted in addresses
    log.debug("vip_checked", interface=settings.interface, vip=str(wanted), present=present)
    return present
