"""The replicated pair's replication, watched from the daemon: every interval, on this node's
own Harbor, the latest execution of the policy `harbor-ha replication setup` made (pushing to
the peer) summarised; the peer's Harbor probed, and one manual run of the policy started when
it comes back after an outage or once it answers after an event-based push to it failed
(:mod:`.recovery`).  Every call is bounded by a timeout; an
error is counted, logged and shown, never raised out of the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import structlog

from harbor_ha.replication.api import HarborApi, HarborApiError
from harbor_ha.replication.credentials import CredentialsError, pair_for
from harbor_ha.replication.plan import Peer, policy_name
from harbor_ha.replication.recovery import PeerRecovery
from harbor_ha.replication.summary import Summary, summarise

log = structlog.get_logger("harbor_ha.replication")

Pair = tuple[Peer, Peer, dict[str, str]]  # this node, the peer, CA file per node name
RECENT_EXECUTIONS = 100
"""Executions read per look (one page; Harbor's largest page): every event-based push is one
execution, so a look sees the failures of up to 100 pushes since the last look (30 s by
default)."""


class Observer(Protocol):
    """Who is told what the watch saw (the daemon: metrics and /status's errors)."""

    def summarised(self, summary: Summary) -> None: ...
    def peer_probed(self, peer: str, up: bool) -> None: ...
    def manual_run(self, policy: str) -> None: ...
    def error(self, where: str, error: str, repeated: bool) -> None: ...


class _Nobody:
    def summarised(self, summary: Summary) -> None:
        return None

    def peer_probed(self, peer: str, up: bool) -> None:
        return None

    def manual_run(self, policy: str) -> None:
        return None

    def error(self, where: str, error: str, repeated: bool) -> None:
        return None


class ReplicationWatch:
    """Owns what /status shows of replication (``view``)."""

    def __init__(
        self,
        *,
        credentials: Path,
        node_name: str,
        interval_s: float,
        timeout_s: float,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._node = node_name
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._observer: Observer = observer or _Nobody()
        self._clock = clock
        self._recovery = PeerRecovery()
        self._said: dict[str, str] = {}  # where -> the error last logged there
        self.configured: bool | None = None  # a credentials file is there; None: not looked
        self.problem: str | None = None  # what went wrong in the last look (None: nothing)
        self._problem: str | None = None  # the same, in the running look
        self.peer: str | None = None
        self.peer_up: bool | None = None
        self.summary: Summary | None = None
        self.checked_at: float | None = None
        self.manual_runs = 0
        self.error_count = 0
        self.last_error: dict[str, Any] | None = None

    # ------------------------------------------------------------- views
    def view(self) -> dict[str, Any]:
        """/status's "replication"; the latest execution's age as of now (the summary is as
        of its look, which may be long ago if the looks fail since)."""
        last = self.summary.as_dict() if self.summary else None
        if last is not None and last["age_s"] is not None and self.checked_at is not None:
            last["age_s"] = round(last["age_s"] + max(0.0, self._clock() - self.checked_at), 3)
        return {
            "configured": self.configured,
            "problem": self.problem,
            "peer": self.peer,
            "peer_reachable": self.peer_up,
            "last": last,
            "checked_at": self.checked_at,
            "manual_runs": self.manual_runs,
            "errors": self.error_count,
            "last_error": self.last_error,
        }

    # -------------------------------------------------------------- loop
    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.round()
            except Exception as exc:  # a bug here must not end the daemon
                self._fail("replication_watch", f"{type(exc).__name__}: {exc}")
                self.problem = self._problem
            await asyncio.sleep(max(0.0, self._interval_s - (time.monotonic() - started)))

    async def round(self) -> None:
        """One look: the peer probed, a catch-up run started if owed, the latest execution
        summarised.  ``problem`` changes at its end only (a /status read mid-look sees the
        previous look's)."""
        self._problem = None
        try:
            await self._look()
        finally:
            self.problem = self._problem

    async def _look(self) -> None:
        pair = self._pair()
        if pair is None:
            return
        here, peer, cas = pair
        self.peer = peer.name
        async with self._api(here, cas) as api, self._api(peer, cas) as peer_api:
            await self._probe(peer_api, here, peer)
            policy_id = await self._policy_id(api, here, peer)
            if policy_id is None:
                return
            try:
                recent = await api.recent_executions(policy_id, RECENT_EXECUTIONS)
            except HarborApiError as exc:
                self._fail("replication_api", str(exc))
                return
            if self._recovery.executions(recent):
                log.info(
                    "replication_push_failed", **{"from": here.name}, to=peer.name,
                    _event="PUSH_FAILED", reason="an event-based push to the peer failed; "
                    "Harbor does not retry it: one manual run of the policy is owed",
                )  # fmt: skip
            if self._recovery.payable:
                await self._catch_up(api, policy_id, here, peer)
                try:
                    recent = await api.recent_executions(policy_id, 1)
                except HarborApiError as exc:
                    self._fail("replication_api", str(exc))
                    return
            latest = recent[0] if recent else None
        self.summary = summarise(policy_name(peer), policy_id, latest, self._clock())
        self.checked_at = self._clock()
        self._ok("replication_api")
        self._observer.summarised(self.summary)

    # ------------------------------------------------------------ pieces
    def _pair(self) -> Pair | None:
        """This node and its peer from the credentials file; None (and the problem said once)
        when the file is missing, unreadable or does not name this node."""
        if not self._credentials.exists():
            self.configured = False
            self._problem = f"{self._credentials}: no such file"
            if self._said.get("replication_credentials") != self._problem:
                self._said["replication_credentials"] = self._problem
                log.warning(
                    "replication_not_configured",
                    file=str(self._credentials),
                    reason="no credentials file: the watch does nothing until it exists "
                    "(`harbor-ha replication setup` reads the same file)",
                )
            return None
        self.configured = True  # a file is there: what is wrong with it is a problem
        try:
            pair = pair_for(self._credentials, self._node)
        except CredentialsError as exc:
            self._fail("replication_credentials", str(exc))
            return None
        self._ok("replication_credentials")
        return pair

    def _api(self, who: Peer, cas: dict[str, str]) -> HarborApi:
        return HarborApi(
            who.url, who.username, who.password, insecure=who.insecure,
            ca_file=cas.get(who.name, ""), timeout_s=self._timeout_s,
        )  # fmt: skip

    async def _probe(self, peer_api: HarborApi, here: Peer, peer: Peer) -> None:
        reason = "answers GET /api/v2.0/ping"
        try:
            await peer_api.ping()
            up = True
        except HarborApiError as exc:
            up, reason = False, str(exc)
        self.peer_up = up
        self._observer.peer_probed(peer.name, up)
        decision = self._recovery.probed(up)
        if decision == "down":
            log.warning(
                "replication_peer_down", **{"from": here.name}, to=peer.name,
                _event="PEER_DOWN", reason=reason, failures=self._recovery.failures,
            )  # fmt: skip
        elif decision == "back":
            log.info(
                "replication_peer_back", **{"from": here.name}, to=peer.name,
                _event="PEER_BACK", reason=f"{reason}: one manual run of the policy is owed",
            )  # fmt: skip

    async def _policy_id(self, api: HarborApi, here: Peer, peer: Peer) -> int | None:
        name = policy_name(peer)
        try:
            policies = await api.policies()
        except HarborApiError as exc:
            self._fail("replication_api", str(exc))
            return None
        found = next((p for p in policies if p.get("name") == name), None)
        if found is None or not isinstance(found.get("id"), int):
            self._fail(
                "replication_policy",
                f"{here.name}: no policy {name} on {here.url} (run `harbor-ha replication setup`)",
            )
            return None
        self._ok("replication_policy")
        return int(found["id"])

    async def _catch_up(self, api: HarborApi, policy_id: int, here: Peer, peer: Peer) -> None:
        """Start the one manual run the peer's return owes.  Refused or never sent: owed
        still (next round); sent without an answer: given up, so never two."""
        name = policy_name(peer)
        try:
            execution = await api.start_execution(policy_id)
        except HarborApiError as exc:
            if exc.maybe_done:
                self._recovery.paid()
            self._fail(
                "replication_catch_up",
                f"{exc}: {'not retried (it may have started)' if exc.maybe_done else 'retried'}",
            )
            return
        self._recovery.paid()
        self._ok("replication_catch_up")
        self.manual_runs += 1
        self._observer.manual_run(name)
        log.info(
            "replication_catch_up", **{"from": here.name}, to=peer.name, _event="PEER_BACK",
            reason="event-based pushes to the peer failed (an outage, or a push it missed); "
            "Harbor does not retry them",
            policy=name, execution=execution,
        )  # fmt: skip

    def _fail(self, where: str, error: str) -> None:
        """Counted every time; logged and kept for /status when it differs from the last
        error logged there (a problem that lasts is one line, not one per round)."""
        self._problem = error
        self.error_count += 1
        self.last_error = {"at": self._clock(), "where": where, "error": error}
        repeated = self._said.get(where) == error
        if not repeated:
            self._said[where] = error
            log.warning("replication_watch_error", where=where, error=error)
        self._observer.error(where, error, repeated)

    def _ok(self, where: str) -> None:
        self._said.pop(where, None)
