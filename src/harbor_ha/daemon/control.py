"""Operator and notify-script commands arriving on the control socket."""

from __future__ import annotations

from typing import Any

import structlog

from harbor_ha.http import ControlError
from harbor_ha.machine import Event, State

from .driver import Driver
from .status import StatusBoard
from .watchers import ROLE_EVENTS

log = structlog.get_logger("harbor_ha.control")


class Control:
    """``handle(command, args)`` for POST /control/<command> on the Unix socket."""

    def __init__(self, driver: Driver, board: StatusBoard, instance: str) -> None:
        self._driver = driver
        self._board = board
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
            self._driver.post(ROLE_EVENTS[state], f"notify script: {state}")
            return {"posted": str(ROLE_EVENTS[state])}
        if command == "switchover":
            if node.state is not State.MASTER:
                raise ControlError(f"switchover needs MASTER; this node is {node.state}")
            self._driver.post(Event.SWITCHOVER, "operator: switchover")
            return {"posted": "SWITCHOVER"}
        if command == "maintenance":
            on = args.get("on")
            if not isinstance(on, bool):
                raise ValueError('maintenance needs {"on": true|false}')
            event = Event.MAINTENANCE_ON if on else Event.MAINTENANCE_OFF
            self._driver.post(event, f"operator: maintenance {'on' if on else 'off'}")
            return {"posted": str(event)}
        if command == "retry":
            if node.state is not State.FENCED_SELF:
                raise ControlError(f"retry is for FENCED_SELF; this node is {node.state}")
            self._driver.post(Event.RETRY, "operator: retry the demotion")
            return {"posted": "RETRY"}
        if command == "status":
            return {"status": self._board.snapshot()}
        raise KeyError(command)
