"""The driver: feeds events to the pure machine one at a time and performs the actions it returns.

Steps run as tasks, so the loop keeps serving probes, metrics and events while
a step runs.  Each step gets a token; a result that arrives for a step that
was cancelled (superseded) is dropped, so the machine never sees a stale one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from harbor_ha.machine import (
    Action,
    Event,
    IllegalTransition,
    Kind,
    Node,
    Result,
    State,
    Step,
    transition,
)
from harbor_ha.metrics import Metrics
from harbor_ha.settings import Settings

from .ports import TrackFilesPort
from .status import StatusBoard

log = structlog.get_logger("harbor_ha.driver")

StepFn = Callable[[Step], Awaitable[None]]

CANCEL_WAIT_S = 10.0
"""Bound on waiting for a cancelled step to unwind (its runner kills its process group)."""


@dataclass(frozen=True)
class Incoming:
    event: Event
    reason: str
    token: int | None = None  # set for step results
    at: float = field(default_factory=time.monotonic)


class Driver:
    """Owns the Node.  Everything that changes the node's state goes through :meth:`post`."""

    def __init__(
        self,
        settings: Settings,
        *,
        run_step: StepFn,
        step_timeout: Callable[[Step], float],
        track: TrackFilesPort,
        metrics: Metrics,
        board: StatusBoard,
    ) -> None:
        self._settings = settings
        self._run_step = run_step
        self._step_timeout = step_timeout
        self._track = track
        self._metrics = metrics
        self._board = board
        self._queue: asyncio.Queue[Incoming] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._token = 0
        self._timer: asyncio.TimerHandle | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._stable: asyncio.TimerHandle | None = None
        self._promotion_started: float | None = None
        self.node = Node(demote_on_exit=settings.stop_harbor_on_exit)
        self.exited = asyncio.Event()
        self.processed = 0  # events handled: the watchdog's proof of progress

    # ------------------------------------------------------------- intake
    def post(self, event: Event, reason: str, *, token: int | None = None) -> None:
        self._queue.put_nowait(Incoming(event, reason, token))

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # --------------------------------------------------------------- loop
    async def run(self, initial: Result, reason: str) -> None:
        """Adopt the reconciled node, perform its first actions, then handle events until EXIT."""
        new, actions = initial
        self._enter(self.node, new, None, reason, actions, time.monotonic())
        if await self._perform(actions):
            return
        while True:
            item = await self._queue.get()
            self.processed += 1
            if item.token is not None and item.token != self._token:
                log.debug("stale_step_result", _event=str(item.event), reason=item.reason)
                continue
            old = self.node
            try:
                new, actions = transition(old, item.event)
            except IllegalTransition as exc:
                log.info(
                    "event_ignored",
                    state=str(old.state),
                    _event=str(item.event),
                    reason=item.reason,
                    why=str(exc),
                )
                continue
            self._enter(old, new, item.event, item.reason, actions, item.at)
            if await self._perform(actions):
                return

    def _enter(
        self,
        old: Node,
        new: Node,
        event: Event | None,
        reason: str,
        actions: tuple[Action, ...],
        at: float,
    ) -> None:
        self.node = new
        self._board.node = new
        now = time.time()
        changed = new.state is not old.state or event is None
        if changed:
            entry = {
                "at": now,
                "from": str(old.state),
                "to": str(new.state),
                "event": str(event) if event else "RECONCILE",
                "reason": reason,
            }
            self._board.record_transition(entry)
            self._metrics.transitions.labels(str(old.state), str(new.state), entry["event"]).inc()
            self._metrics.state.state(str(new.state))
            held = round(now - self._board.since, 3)
            self._board.since = now
            log.info(
                "transition",
                **{"from": str(old.state)},
                to=str(new.state),
                _event=entry["event"],
                reason=reason,
                in_previous_s=held,
                actions=[str(a) for a in actions],
                fault=new.fault_file_on,
            )
            self._failover_clock(old.state, new.state, at)
        elif actions or new != old:
            log.info(
                "decision",
                state=str(new.state),
                _event=str(event),
                reason=reason,
                actions=[str(a) for a in actions],
                fault=new.fault_file_on,
                want_master=new.want_master,
                maintenance=new.maintenance,
            )
        self._write_fault(new.fault_file_on)
        if new.state is State.FENCED_SELF and old.state is not State.FENCED_SELF:
            self._arm_retry()
        if new.state is State.MASTER and old.state is not State.MASTER and new.failures:
            self._arm_stable()

    def _failover_clock(self, old: State, new: State, at: float) -> None:
        if old is State.BACKUP and new is State.FENCING:
            self._promotion_started = at
        elif new is State.MASTER and self._promotion_started is not None:
            total = time.monotonic() - self._promotion_started
            self._metrics.failover_duration.observe(total)
            log.info("promotion_complete", total_s=round(total, 3))
            self._promotion_started = None
        elif new is State.BACKUP:
            self._promotion_started = None

    def _write_fault(self, on: bool) -> None:
        try:
            if self._track.set_fault(on):
                log.info("fault_file", value=int(on), state=str(self.node.state))
            self._metrics.track_file.labels("fault").set(int(on))
        except Exception as exc:  # keep deciding even if keepalived cannot be told
            self._metrics.errors.labels("fault_file").inc()
            self._board.record_error("fault_file", str(exc))
            log.error("fault_file_write_failed", error=str(exc))

    def rewrite_fault(self) -> None:
        """Called on every tick: put the fault file back if something changed it."""
        self._write_fault(self.node.fault_file_on)

    # ------------------------------------------------------------ actions
    async def _perform(self, actions: tuple[Action, ...]) -> bool:
        """Perform actions in order; True when the daemon may exit."""
        for action in actions:
            if action.kind is Kind.CANCEL_STEP:
                await self._cancel_step()
            elif action.kind is Kind.RUN_STEP:
                assert action.step is not None
                self._start_step(action.step)
            elif action.kind is Kind.START_BACKOFF:
                n = max(self.node.failures, 1)
                delay = min(
                    self._settings.backoff_initial_s * 2 ** (n - 1), self._settings.backoff_max_s
                )
                self._arm_timer(delay, f"backoff after {n} failure(s)")
            elif action.kind is Kind.START_HOLD:
                self._arm_timer(self._settings.switchover_hold_s, "switchover hold over")
            elif action.kind is Kind.EXIT:
                await self._cancel_step()
                self._cancel_timers()
                self.exited.set()
                return True
        return False

    def _arm_timer(self, delay: float, reason: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        log.info("timer_armed", seconds=round(delay, 3), reason=reason)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self.post, Event.BACKOFF_EXPIRED, reason)

    def _arm_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        loop = asyncio.get_running_loop()
        delay = self._settings.fenced_self_retry_s
        log.warning("fenced_self", retry_in_s=delay)
        self._retry = loop.call_later(delay, self._retry_fire)

    def _arm_stable(self) -> None:
        if self._stable is not None:
            self._stable.cancel()
        loop = asyncio.get_running_loop()
        self._stable = loop.call_later(
            self._settings.master_stable_s,
            self.post,
            Event.MASTER_STABLE,
            f"MASTER for {self._settings.master_stable_s:g} s",
        )

    def _retry_fire(self) -> None:
        self._retry = None
        if self.node.state is State.FENCED_SELF:
            self.post(Event.RETRY, "periodic retry of the demotion")

    def _cancel_timers(self) -> None:
        for handle in (self._timer, self._retry, self._stable):
            if handle is not None:
                handle.cancel()
        self._timer = self._retry = self._stable = None

    def _start_step(self, step: Step) -> None:
        assert not self.busy, f"step {step} started while another runs"
        self._token += 1
        token = self._token
        self._board.step_started = time.time()
        self._task = asyncio.create_task(self._step_task(step, token), name=f"step-{step}")

    async def _step_task(self, step: Step, token: int) -> None:
        limit = self._step_timeout(step)
        started = time.monotonic()
        log.info("step_start", step=str(step), timeout_s=limit)
        try:
            async with asyncio.timeout(limit):
                await self._run_step(step)
        except TimeoutError:
            self._step_end(step, "timeout", started, f"no result within {limit:g} s")
            self.post(Event.STEP_TIMEOUT, f"{step} timed out after {limit:g} s", token=token)
        except asyncio.CancelledError:
            self._step_end(step, "cancelled", started, "superseded")
            raise
        except Exception as exc:
            self._step_end(step, "failed", started, f"{type(exc).__name__}: {exc}")
            self._board.record_error(str(step), f"{type(exc).__name__}: {exc}")
            self.post(Event.STEP_FAILED, f"{step} failed: {exc}", token=token)
        else:
            self._step_end(step, "done", started, "")
            self.post(Event.STEP_DONE, f"{step} done", token=token)

    def _step_end(self, step: Step, outcome: str, started: float, error: str) -> None:
        took = time.monotonic() - started
        self._metrics.step_duration.labels(str(step), outcome).observe(took)
        fields: dict[str, object] = {
            "step": str(step),
            "outcome": outcome,
            "duration_s": round(took, 3),
        }
        if error:
            fields["error"] = error
            log.warning("step_end", **fields)
        else:
            log.info("step_end", **fields)

    async def _cancel_step(self) -> None:
        task, self._task = self._task, None
        self._token += 1  # whatever it still posts is stale
        if task is None or task.done():
            return
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
        if not task.done():
            log.error("step_cancel_stuck", step=task.get_name(), waited_s=CANCEL_WAIT_S)
