"""Operator and notify-script commands arriving on the control socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from harbor_ha.http import ControlError
from harbor_ha.machine import Event, refusal

from .driver import Driver
from .watchers import ROLE_EVENTS

log = structlog.get_logger("harbor_ha.control")

OPERATOR: dict[str, tuple[Event, str]] = {
    "switchover": (Event.SWITCHOVER, "operator: switchover"),
    "retry": (Event.RETRY, "operator: retry the demotion"),
    # The shared mode: out of the load balancer's pool (readiness 503), wait drain_wait_s,
    # stop Harbor; it stays down until `maintenance off`.
    "drain": (Event.DRAIN, "operator: drain"),
}
"""Commands that post one event; the machine says when it refuses them (``refusal``)."""


class Control:
    """``handle(command, args)`` for POST /control/<command> on the Unix socket."""

    def __init__(self, driver: Driver, status: Callable[[], dict[str, Any]], instance: str) -> None:
        self._driver = driver
        self._status = status
        self._instance = instance

    async def handle(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        node = self._driver.node
        log.info("control", command=command, args=args, state=str(node.state))
        if command == "notify":
            state = str(args.get("state", "")).upper()
            instance = args.get("instance") or self._instance
            if state not in ROLE_EVENTS:
                raise ValueError(f"state must be one of {', '.join(ROLE_EVENTS)}, not {state!r}")
            if instance != self._instance:
                return {"ignored": f"instance {instance!r} is not ours ({self._instance})"}
            why = refusal(node, ROLE_EVENTS[state])  # the shared mode has no keepalived
            if why is not None:
                raise ControlError(why)
            self._driver.post(ROLE_EVENTS[state], f"notify script: {state}")
            return {"posted": str(ROLE_EVENTS[state])}
        if command in OPERATOR:
            event, reason = OPERATOR[command]
            why = refusal(node, event)
            if why is not None:
                raise ControlError(why)
            self._driver.post(event, reason)
            return {"posted": str(event)}
        if command == "maintenance":
            on = args.get("on")
            if not isinstance(on, bool):
                raise ValueError('maintenance needs {"on": true|false}')
            event = Event.MAINTENANCE_ON if on else Event.MAINTENANCE_OFF
            self._driver.post(event, f"operator: maintenance {'on' if on else 'off'}")
            return {"posted": str(event)}
        if command == "status":
            return {"status": self._status()}
        raise KeyError(command)
