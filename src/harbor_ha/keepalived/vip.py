"""Is the VIP on this node's interface? The truth behind the FIFO's hints."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import structlog

from harbor_ha.keepalived.errors import VipCheckError
from harbor_ha.runner import CommandError, Runner
from harbor_ha.settings import Settings

log = structlog.get_logger(__name__)


async def vip_present(runner: Runner, settings: Settings) -> bool:
    """True when settings.vip_address is assigned to settings.interface.

    Runs ``ip -j addr show dev IFACE``; raises VipCheckError when that fails
    (interface missing, ip missing or timing out, output not understood).
    """
    argv = [settings.ip_bin, "-j", "addr", "show", "dev", settings.interface]
    try:
        result = await runner.run(argv, timeout_s=settings.command_timeout_s)
    except CommandError as exc:
        raise VipCheckError(str(exc)) from exc
    if not result.ok:
        detail = (result.stderr.strip() or result.stdout.strip())[-300:]
        raise VipCheckError(
            f"cannot list addresses of {settings.interface}: exit {result.returncode}: {detail}"
        )
    try:
        links: Any = json.loads(result.stdout)
    except ValueError as exc:
        raise VipCheckError(f"ip -j printed no JSON: {result.stdout[:200]!r}") from exc
    if not isinstance(links, list) or not links:
        raise VipCheckError(f"interface {settings.interface} not found in ip -j output")
    wanted = ipaddress.ip_address(settings.vip_address)
    present = False
    for link in links:
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            local = info.get("local") if isinstance(info, dict) else None
            try:
                if local is not None and ipaddress.ip_address(local) == wanted:
                    present = True
            except ValueError:
                continue
    log.debug("vip_checked", interface=settings.interface, vip=str(wanted), present=present)
    return present
