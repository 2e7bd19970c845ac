"""The driver: feeds events to the pure machine one at a time and performs the actions it returns.

It decides nothing: run or cancel a step, arm or cancel a timer, post an event, exit, and
write the fault file the node asks for.  Steps run as tasks, so the loop keeps serving
probes, metrics and events while a step runs.  Each step and each timer firing carries a
token; a result that arrives for a step that was cancelled (superseded), or a timer that was
re-armed or cancelled, is dropped, so the machine never sees a stale one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from harbor_ha.machine import (
    OUTCOMES,
    PROMOTING,
    ROUTINE_EVENTS,
    ROUTINE_KINDS,
    TIMER_EVENT,
    Action,
    Clock,
    Event,
    IllegalTransition,
    Kind,
    Node,
    Result,
    Step,
    Timer,
    failover_clock,
    transition,
)
from harbor_ha.metrics import Metrics

from .leasing import StepOutcome
from .ports import TrackFilesPort
from .recent import Errors, Recent
from .timers import Timers

log = structlog.get_logger("harbor_ha.driver")

StepFn = Callable[[Step], Awaitable[None]]
BackgroundFn = Callable[[], Awaitable[tuple[Event, str] | None]]
"""A background I/O (lease renew or poll, failsafe request, warming the standby): the event it
ends with and why, or None when it has nothing to tell the machine."""
TransitionObserver = Callable[[dict[str, Any]], None]
"""Called with each transition's record (at, from, to, event, reason, in_previous_s)."""

CANCEL_WAIT_S = 10.0
"""Bound on waiting for a cancelled step to unwind (its runner kills its process group).
The wait is the next step's (it starts once the cancelled one ended, so two steps never
overlap), never the driver's: events, the lease's renewals first, are handled meanwhile."""


@dataclass(frozen=True)
class Incoming:
    event: Event
    reason: str
    token: int | None = None  # set for step results
    timer: tuple[Timer, int] | None = None  # set for timer firings
    at: float = field(default_factory=time.monotonic)
    decided: asyncio.Future[Node] | None = None  # set by ``decide``: the node after it


class Driver:
    """Owns the Node.  Everything that changes the node's state goes through :meth:`post`."""

    def __init__(
        self,
        node: Node,
        *,
        run_step: StepFn,
        step_timeout: Callable[[Step], float],
        track: TrackFilesPort,
        metrics: Metrics,
        background: Mapping[Kind, BackgroundFn],
        interface: str = "",
        observers: Sequence[TransitionObserver] = (),
        stuck: Callable[[], list[str]] = list,
    ) -> None:
        self._stuck = stuck
        self._background = dict(background)
        self._tasks: dict[Kind, asyncio.Task[None]] = {}
        self._run_step = run_step
        self._step_timeout = step_timeout
        self._track = track
        self._metrics = metrics
        self._interface = interface
        self._observers = tuple(observers)
        self._queue: asyncio.Queue[Incoming] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._unwinding: set[asyncio.Task[None]] = set()  # cancelled steps not yet ended
        self._token = 0
        self._timers = Timers(metrics, self._fire)
        self._promotion_started: float | None = None
        self._node = node
        self._since = time.time()
        self.transitions = Recent()
        self.last_failover: dict[str, Any] | None = None  # at, failover_s of the last promotion
        self.errors = Errors()
        self.exited = asyncio.Event()
        self.processed = 0  # events handled: the watchdog's proof of progress

    # -------------------------------------------------------------- views
    @property
    def node(self) -> Node:
        return self._node

    @property
    def since(self) -> float:
        """Unix time the node entered its state."""
        return self._since

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # ------------------------------------------------------------- intake
    def post(self, event: Event, reason: str, *, token: int | None = None) -> None:
        self._queue.put_nowait(Incoming(event, reason, token))

    async def decide(self, event: Event, reason: str) -> Node:
        """Post ``event`` and wait until the machine has handled it: the node after it (a
        caller that answers someone else with the machine's decision, e.g. the failsafe's
        promise).  Events queued before it are handled first."""
        decided: asyncio.Future[Node] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Incoming(event, reason, decided=decided))
        return await decided

    def _stale(self, item: Incoming) -> bool:
        if item.token is not None and item.token != self._token:
            return True
        return item.timer is not None and self._timers.stale(*item.timer)

    # --------------------------------------------------------------- loop
    async def run(self, initial: Result, reason: str) -> None:
        """Adopt the reconciled node, perform its first actions, then handle events until EXIT."""
        new, actions = initial
        self._enter(self._node, new, None, reason, actions, time.monotonic())
        if await self._perform(actions):
            return
        while True:
            item = await self._queue.get()
            self.processed += 1
            try:
                if await self._handle(item):
                    return
            finally:
                if item.decided is not None and not item.decided.done():
                    item.decided.set_result(self._node)

    async def _handle(self, item: Incoming) -> bool:
        """One event through the machine, its actions performed; True when the daemon may exit."""
        if self._stale(item):
            log.debug("stale_step_result", _event=str(item.event), reason=item.reason)
            return False
        old = self._node
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
            return False
        self._enter(old, new, item.event, item.reason, actions, item.at)
        return await self._perform(actions)

    def _enter(
        self,
        old: Node,
        new: Node,
        event: Event | None,
        reason: str,
        actions: tuple[Action, ...],
        at: float,
    ) -> None:
        self._node = new
        now = time.time()
        self._metrics.maintenance.set(int(new.maintenance))
        self._metrics.failed_promotions.set(new.failures)
        if new.failures > old.failures and old.state in PROMOTING:
            self._metrics.promotions.labels("failed").inc()
        if new.state is not old.state or event is None:
            entry = {
                "at": now,
                "from": str(old.state),
                "to": str(new.state),
                "event": str(event) if event else "RECONCILE",
                "reason": reason,
            }
            self.transitions.add(entry)
            self._metrics.transitions.labels(str(old.state), str(new.state), entry["event"]).inc()
            self._metrics.state.state(str(new.state))
            held = round(now - self._since, 3)
            self._since = now
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
            record: dict[str, Any] = {**entry, "in_previous_s": held}
            took = self._failover_clock(failover_clock(old.state, new.state), at)
            if took is not None:
                record["failover_s"] = round(took, 3)
                self.last_failover = {"at": now, "failover_s": record["failover_s"]}
            self._tell(record)
        elif actions or replace(new, vip_mismatch=0) != replace(old, vip_mismatch=0):
            (log.debug if event in ROUTINE_EVENTS else log.info)(
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

    def _tell(self, record: dict[str, Any]) -> None:
        """Hand the transition to its observers (systemd's STATUS=, the history journal); one
        that fails is logged and counted, and the machine goes on."""
        for observer in self._observers:
            try:
                observer(record)
            except Exception as exc:
                self._metrics.errors.labels("transition_observer").inc()
                self.errors.record("transition_observer", f"{type(exc).__name__}: {exc}")
                log.error("transition_observer_failed", error=f"{type(exc).__name__}: {exc}")

    def _failover_clock(self, mark: Clock | None, at: float) -> float | None:
        """Start, stop or reset the failover clock; the failover's duration when it stops."""
        if mark is Clock.START:
            self._promotion_started = at
        elif mark is Clock.STOP and self._promotion_started is not None:
            total = time.monotonic() - self._promotion_started
            self._metrics.failover_duration.observe(total)
            self._metrics.promotions.labels("succeeded").inc()
            log.info("promotion_complete", total_s=round(total, 3))
            self._promotion_started = None
            return total
        elif mark is Clock.RESET:
            self._promotion_started = None
        return None

    def _write_fault(self, on: bool) -> None:
        try:
            if self._track.set_fault(on):
                log.info("fault_file", value=int(on), state=str(self._node.state))
            self._metrics.track_file.labels("fault").set(int(on))
        except Exception as exc:  # keep deciding even if keepalived cannot be told
            self._metrics.errors.labels("fault_file").inc()
            self.errors.record("fault_file", str(exc))
            log.error("fault_file_write_failed", error=str(exc))

    def rewrite_fault(self) -> None:
        """Called on every tick: put the fault file back if something changed it."""
        self._write_fault(self._node.fault_file_on)

    # ------------------------------------------------------------ actions
    async def _perform(self, actions: tuple[Action, ...]) -> bool:
        """Perform actions in order; True when the daemon may exit."""
        for action in actions:
            match action:
                case Action(kind=Kind.CANCEL_STEP):
                    await self._cancel_step()
                case Action(kind=Kind.RUN_STEP, step=Step() as step):
                    self._start_step(step)
                case Action(kind=Kind.START_TIMER, timer=Timer() as timer, delay_s=float(delay)):
                    self._timers.arm(timer, delay, action.reason)
                case Action(kind=Kind.CANCEL_TIMER, timer=Timer() as timer):
                    self._timers.disarm(timer)
                case Action(
                    kind=Kind.WARM
                    | Kind.RENEW_LEASE
                    | Kind.POLL_LEASE
                    | Kind.WATCH_LEASE
                    | Kind.ASK_PEER as kind
                ):
                    self._start_background(kind)
                case Action(kind=Kind.POST, event=Event() as event):
                    self._post_verdict(event, action.ticks)
                case Action(kind=Kind.EXIT):
                    await self._cancel_step()
                    await self._unwound()
                    for task in self._tasks.values():
                        task.cancel()
                    for timer in Timer:
                        self._timers.disarm(timer)
                    self.exited.set()
                    return True
                case _:  # pragma: no cover - the machine builds only the shapes above
                    raise AssertionError(f"malformed action {action!r}")
        return False

    def _post_verdict(self, event: Event, ticks: int) -> None:
        """The machine judged a VIP mismatch persistent: act as keepalived's missed line."""
        vip = event is Event.KA_MASTER
        log.warning(
            "vip_mismatch", state=str(self._node.state), vip=vip, ticks=ticks, _event=str(event)
        )
        why = "VIP present" if vip else "VIP absent"
        self.post(
            event,
            f"{why} on {self._interface} for {ticks} ticks without a matching keepalived line",
        )

    def _fire(self, timer: Timer, token: int, reason: str) -> None:
        self._queue.put_nowait(Incoming(TIMER_EVENT[timer], reason, timer=(timer, token)))

    def _start_background(self, kind: Kind) -> None:
        """Run a background I/O (not a step: the machine does not wait for it); one of a kind
        at a time (one still running is enough: its event comes)."""
        fn = self._background.get(kind)
        if fn is None:
            log.warning("no_background_io", kind=str(kind))
            return
        task = self._tasks.get(kind)
        if task is not None and not task.done():
            (log.debug if kind in ROUTINE_KINDS else log.warning)(
                "background_io_still_running", kind=str(kind)
            )
            return
        self._tasks[kind] = asyncio.create_task(self._background_task(kind, fn), name=str(kind))

    async def _background_task(self, kind: Kind, fn: BackgroundFn) -> None:
        try:
            told = await fn()
        except Exception as exc:  # a failure costs what the I/O was for; the machine goes on
            self._metrics.errors.labels(str(kind)).inc()
            self.errors.record(str(kind), f"{type(exc).__name__}: {exc}")
            log.warning(
                "background_io_failed", kind=str(kind), error=f"{type(exc).__name__}: {exc}"
            )
            return
        if told is None:
            return
        event, reason = told
        if event not in ROUTINE_EVENTS:
            log.info("background_io", kind=str(kind), outcome=str(event), reason=reason)
        self.post(event, reason)

    def _start_step(self, step: Step) -> None:
        assert not self.busy, f"step {step} started while another runs"
        self._token += 1
        token = self._token
        self._task = asyncio.create_task(self._step_task(step, token), name=f"step-{step}")

    async def _unwound(self) -> None:
        """Wait (bounded) for a cancelled step to end.  Awaited by the next step's task (and
        at exit), never by the driver's loop: a step that resists its cancellation must not
        stop the renewals."""
        self._unwinding = {t for t in self._unwinding if not t.done()}
        if not self._unwinding:
            return
        await asyncio.wait(set(self._unwinding), timeout=CANCEL_WAIT_S)
        for task in self._unwinding:
            if not task.done():
                log.error("step_cancel_stuck", step=task.get_name(), waited_s=CANCEL_WAIT_S)

    async def _step_task(self, step: Step, token: int) -> None:
        await self._unwound()
        limit = self._step_timeout(step)
        started = time.monotonic()
        log.info("step_start", step=str(step), timeout_s=limit)
        try:
            async with asyncio.timeout(limit):
                await self._run_step(step)
        except TimeoutError:
            reason = f"{step} timed out after {limit:g} s"
            # The step's commands were just killed: name the ones that have not ended (one in
            # D state cannot die until its I/O returns: a node cut from Ceph), so FENCED_SELF
            # says what the demotion could not get back from.
            stuck = self._stuck()
            if stuck:
                reason += "; did not return: " + "; ".join(stuck)
            self._step_end(step, "timeout", started, reason)
            self.post(Event.STEP_TIMEOUT, reason, token=token)
        except asyncio.CancelledError:
            self._step_end(step, "cancelled", started, "superseded")
            raise
        except StepOutcome as exc:
            if exc.event not in OUTCOMES[step]:
                # A bug: the machine has no row for it in this step's state.  As a failure.
                reason = f"{step} ended with {exc.event}, not one of its outcomes: {exc}"
                log.error("step_outcome_undeclared", step=str(step), _event=str(exc.event))
                self._step_end(step, "failed", started, reason)
                self.errors.record(str(step), reason)
                self.post(Event.STEP_FAILED, reason, token=token)
                return
            self._step_end(step, "refused", started, str(exc))
            self.post(exc.event, f"{step}: {exc}", token=token)
        except Exception as exc:
            self._step_end(step, "failed", started, f"{type(exc).__name__}: {exc}")
            self.errors.record(str(step), f"{type(exc).__name__}: {exc}")
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
        """Cancel the running step and return at once; the next step waits for it to end."""
        task, self._task = self._task, None
        self._token += 1  # whatever it still posts is stale
        if task is None or task.done():
            return
        task.cancel()
        self._unwinding.add(task)
