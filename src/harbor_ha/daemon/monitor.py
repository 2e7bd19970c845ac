"""Health and readiness: probes turned into machine events and the priority track file.

- MASTER: Harbor (containers up, serving through its proxy, the health API's critical
  components after the first checker period), debounced; and the storage
  (still mounted from our device, still read-write, device still readable).
  Unhealthy Harbor -> HARBOR_UNHEALTHY; storage lost -> STORAGE_LOST (2 probes in a row;
  STORAGE_STUCK when the read got no answer: Ceph does not answer this node).
- replicated BACKUP: this node's own Harbor, judged as a master's; the verdict is the
  machine's ``harbor_down`` (the fault file) and the priority file.
- BACKUP: readiness to take over (Ceph reachable, image there, no stale local
  mapping, Docker up, Harbor's images present: :mod:`.standby_readiness`, each fact at its own
  cadence).  Not ready -> priority file 0, so a broken standby never wins an election
  (safety rule 9).

The monitor reports facts and performs writes; what they mean is the machine's
(``machine.readiness``: the readiness verdict, the priority file's value, the event it
tells, whether to pre-create Harbor's containers now; ``machine.verdicts``: the storage
finding's event).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from harbor_ha.machine import Event, Mode, Probes
from harbor_ha.machine.readiness import (
    JUDGES_READINESS,
    Readiness,
    harbor_readiness,
    precreate_now,
    priority,
    standby_readiness,
)
from harbor_ha.machine.verdicts import (
    SHARED_STORAGE_EVENT,
    STORAGE_EVENT,
    SharedFinding,
    StorageFinding,
)
from harbor_ha.metrics import Metrics
from harbor_ha.probes.debounce import Debouncer
from harbor_ha.settings import Settings

from .driver import Driver
from .ports import (
    CephPort,
    ComposePort,
    ContainerProbePort,
    FilesystemPort,
    HarborProbePort,
    HarborReport,
    SharedFilesystemPort,
    TrackFilesPort,
)
from .pulse import Pulse
from .recent import Errors
from .standby_readiness import StandbyReadiness

log = structlog.get_logger("harbor_ha.monitor")

RESTART_WINDOW_EVERY = 4
"""A MASTER's restart window (harbor_health_grace_s long) opens at most once per this many
windows: a container in a crash loop (Docker's restart backoff starts at 0.1 s) must not keep
the master's failures uncounted forever."""


class Monitor:
    """One loop, woken by its interval or by a container event.  Owns the probe results: the
    debounced Harbor health of the current MASTER period, the standby's readiness and its
    problems, and the priority track file that publishes the readiness."""

    def __init__(
        self,
        settings: Settings,
        *,
        driver: Driver,
        metrics: Metrics,
        harbor: HarborProbePort,
        containers: ContainerProbePort,
        ceph: CephPort,
        fs: FilesystemPort,
        compose: ComposePort,
        device: Callable[[], str | None],
        track: TrackFilesPort,
        wake: Pulse,
        ceph_monitors: Sequence[tuple[str, int]] = (),
        shared: SharedFilesystemPort | None = None,
    ) -> None:
        self._shared = shared  # the shared mode's filesystem (its SERVING storage probe)
        self._s = settings
        self._driver = driver
        self._metrics = metrics
        self._harbor = harbor
        self._containers = containers
        self._fs = fs
        self._compose = compose
        self._device = device
        self._track = track
        self._wake = wake
        self._readiness = StandbyReadiness(
            settings, ceph=ceph, containers=containers, compose=compose,
            monitors=list(ceph_monitors),
        )  # fmt: skip
        self._health = Debouncer(settings.probe_rise, settings.probe_fall, initial=True)
        self._storage = Debouncer(1, 2, initial=True)
        self._held = False  # the machine's failsafe_held at the last storage probe
        self._last_since = 0.0
        self._next_standby_check = 0.0
        self._standby_since = -1.0  # the BACKUP period (driver.since) last checked
        self._started_seen = False  # a container started since the last check
        self._healthy: tuple[float, bool | None] | None = None  # (driver.since, value)
        self._entered = time.monotonic()  # when the node entered its current state
        self._degraded: tuple[str, ...] = ()  # non-critical components not healthy
        self._precreate_failed = -1.0  # the BACKUP period (driver.since) whose precreate failed
        self._restart_window = (-1e9, -1e9)  # (opened, ends): a MASTER's container restarted
        self.ready: bool | None = None
        self.ready_problems: list[str] = []
        self.probes: dict[str, Any] = {}
        self.errors = Errors()

    # ------------------------------------------------------------- views
    def harbor_healthy(self, since: float) -> bool | None:
        """The debounced health measured in the state the node entered at ``since``, or None
        when the monitor has not probed Harbor in that state (yet)."""
        if self._healthy is None or self._healthy[0] != since:
            return None
        return self._healthy[1]

    @property
    def degraded(self) -> tuple[str, ...]:
        """Non-critical components of Harbor's health API that read unhealthy at the MASTER's
        last probe (empty on a standby)."""
        return self._degraded

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            mark = self._wake.mark()
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a probe bug must not kill the daemon's safety loop
                self._metrics.errors.labels("monitor").inc()
                self.errors.record("monitor", f"{type(exc).__name__}: {exc}")
                log.exception("monitor_error")
            left = self._s.probe_interval_s - (time.monotonic() - started)
            if left > 0:
                await self._wake.wait(mark, left)

    async def check_once(self) -> None:
        node, since = self._driver.node, self._driver.since
        if since != self._last_since:  # the node entered a new state
            # A fresh MASTER was verified healthy by its start step (rbd) or as a standby
            # (replicated); a replicated standby's verdict starts undecided.
            initial = None if node.probes is Probes.HARBOR else True
            self._health = Debouncer(self._s.probe_rise, self._s.probe_fall, initial=initial)
            self._storage = Debouncer(1, 2, initial=True)
            self._last_since = since
            self._entered = time.monotonic()
            self._next_standby_check = 0.0  # a fresh BACKUP checks its readiness at once
            self._readiness.reset()  # ... every fact of it
        probes = node.probes
        # Each gauge is only true in the probes that measure it: no stale 1 from the last role.
        if probes is not Probes.MASTER:
            self._metrics.harbor_healthy.set(0)
            self._set_degraded(())
        if probes is not Probes.STANDBY:
            self.probes.pop("standby_ceph_age_s", None)
        if probes not in JUDGES_READINESS:
            self._metrics.ready.set(0)
        if probes is Probes.MASTER:
            await self._check_master(since)
        elif probes is Probes.HARBOR:
            await self._check_standby_harbor()
        elif probes is Probes.STANDBY:
            now = time.monotonic()
            started, self._started_seen = self._started_seen, False
            if now >= self._next_standby_check:  # its readiness check also looks
                self._next_standby_check = now + self._s.standby_check_interval_s
                await self._check_standby()
            elif started:  # a container started here: a data-bearing one?
                await self._stop_stray_data_services()
        else:
            self._write_priority(priority(probes, None))

    def container_started(self) -> None:
        """A container of the project started (Docker's event): a standby's next check (the
        event wakes it at once) looks for data-bearing services running without the image.
        On a MASTER it is a restart (Docker's restart policy, an operator's `docker
        restart`, dockerd restarting): it opens one restart window (below)."""
        self._started_seen = True
        if self._driver.node.probes is Probes.MASTER:
            now = time.monotonic()
            opened, _ends = self._restart_window
            grace = self._s.harbor_health_grace_s
            if now - opened >= RESTART_WINDOW_EVERY * grace:
                self._restart_window = (now, now + grace)
                log.info(
                    "restart_window", seconds=grace,
                    reason="a container restarted on the MASTER: its failures while it comes "
                    "back do not count toward probe_fall, the health API is not judged",
                )  # fmt: skip

    def _write_priority(self, ready: bool) -> None:
        """Write the priority track file as the machine's verdict says."""
        try:
            if self._track.set_ready(ready):
                log.info("priority_file", value=int(ready), state=str(self._driver.node.state))
            self._metrics.track_file.labels("priority").set(int(ready))
        except Exception as exc:
            self._metrics.errors.labels("priority_file").inc()
            self.errors.record("priority_file", str(exc))
            log.error("priority_file_write_failed", error=str(exc))

    # ----------------------------------------------------------- master
    async def _check_master(self, since: float) -> None:
        if self._s.mode is Mode.RBD:
            await self._check_storage()
        elif self._shared is not None and self._shared.mounts:
            await self._check_shared_storage()
        # Harbor's health API is judged only after one checker period of core's: before it,
        # a component reads "unknown status" or a verdict older than the promotion.  In the
        # replicated mode Harbor ran (and was judged) long before the VIP came: no grace.
        now = time.monotonic()
        restarting = now < self._restart_window[1]
        fresh = self._s.mode in (Mode.RBD, Mode.SHARED)  # Harbor started with this state
        grace = self._s.harbor_health_grace_s if fresh else 0.0
        judged = now - self._entered >= grace and not restarting
        report = await self._harbor.check(judge_health=judged)
        ok = bool(report.healthy)
        self._probe("harbor", ok)
        self.probes["harbor"] = _describe(report)
        self._set_degraded(report.degraded)
        if not ok and restarting:  # a restarting container: ride it out, once per window
            log.info("harbor_probe_failed_while_restarting", reason=str(report.reason))
            return
        flipped = self._health.update(ok)
        self._healthy = (since, self._health.value)
        self._metrics.harbor_healthy.set(1 if self._health.value else 0)
        self._write_priority(priority(Probes.MASTER, self._health.value))
        if flipped is False:
            self._driver.post(Event.HARBOR_UNHEALTHY, f"harbor unhealthy: {report.reason}")
        elif flipped is True:
            self._driver.post(Event.HARBOR_HEALTHY, "harbor healthy again")

    async def _check_storage(self) -> None:
        """The rbd mode's MASTER: the image still mounted, writable and readable."""
        finding, why = await self._storage_finding()
        event = STORAGE_EVENT[finding]
        storage_ok = event is None
        self._probe("storage", storage_ok)
        held, self._held = self._held, self._driver.node.failsafe_held
        if held and not self._held:
            # The failsafe hold ended (Ceph answers the lease again): judge the storage
            # afresh, so a read that began in the outage (no answer) does not demote alone.
            self._storage = Debouncer(1, 2, initial=True)
        self._storage.update(storage_ok)
        if event is not None and self._storage.value is False:
            # Each failed probe once debounced: a MASTER kept serving on STORAGE_STUCK (while
            # the failsafe holds) hears it again, and an error after that still demotes.
            self._driver.post(event, why)

    async def _check_shared_storage(self) -> None:
        """The shared mode's SERVING node: the configured filesystem still mounted at the
        mountpoint (mountinfo: type and source, read-write) and answering a statfs.  What
        mountinfo shows is certain and posted at once; an error or no answer twice in a row."""
        finding, why = await self._shared_finding()
        event = SHARED_STORAGE_EVENT[finding]
        ok = event is None
        self._probe("storage", ok)
        self.probes["storage"] = {"finding": finding.name, "reason": why}
        self._storage.update(ok)
        certain = finding in (SharedFinding.NOT_MOUNTED, SharedFinding.FOREIGN,
                              SharedFinding.READ_ONLY)  # fmt: skip
        if event is not None and (certain or self._storage.value is False):
            self._driver.post(event, why)

    async def _shared_finding(self) -> tuple[SharedFinding, str]:
        assert self._shared is not None
        found, why = self._shared.problem()
        if found != "OURS":
            return SharedFinding[found], why
        answered, error = await self._shared.answers(self._s.probe_timeout_s)
        if answered is None:
            return SharedFinding.NO_ANSWER, error
        if not answered:
            return SharedFinding.ERROR, error
        return SharedFinding.OK, ""

    async def _check_standby_harbor(self) -> None:
        """The replicated mode's standby runs its own Harbor: judge it as a master's (the
        containers, serving through its proxy, the critical components), debounced, and
        tell the machine when the verdict differs from what it holds (``harbor_down``: the
        fault file), so a standby whose Harbor is broken never takes the VIP and one that
        recovered may again.  The priority file and /ready follow the same verdict
        (``machine.readiness.harbor_readiness``)."""
        report = await self._harbor.check(judge_health=True)
        ok = bool(report.healthy)
        self._probe("harbor", ok)
        self.probes["harbor"] = _describe(report)
        self._set_degraded(report.degraded)
        self._health.update(ok)
        healthy = self._health.value
        verdict = harbor_readiness(self._driver.node, healthy, str(report.reason))
        if healthy != self.ready or list(verdict.problems) != self.ready_problems:
            log.info("standby_harbor", healthy=healthy, reason=str(report.reason))
        self._publish(verdict)
        if verdict.tell is Event.HARBOR_HEALTHY:
            self._driver.post(verdict.tell, "harbor healthy on the standby")
        elif verdict.tell is not None:
            self._driver.post(verdict.tell, f"harbor unhealthy: {report.reason}")

    def _publish(self, verdict: Readiness) -> None:
        """A standby's readiness verdict: /readiness's and /status's view, the ready metric,
        the priority track file."""
        self.ready, self.ready_problems = verdict.ready, list(verdict.problems)
        self._metrics.ready.set(1 if verdict.ready else 0)
        self._write_priority(verdict.priority)

    async def _storage_finding(self) -> tuple[StorageFinding, str]:
        """What the storage probe found (and why), checked in order: the read only when the
        cheap checks pass.  The machine's STORAGE_EVENT says which event a finding is."""
        device = self._device()
        if device is None:
            return StorageFinding.NO_DEVICE, "no mapped device recorded"
        if not self._fs.is_mounted_from(device):
            why = f"{self._s.mountpoint} no longer mounted from {device}"
            return StorageFinding.NOT_MOUNTED, why
        if self._fs.is_read_only():
            return (StorageFinding.READ_ONLY,
                    f"{self._s.mountpoint} went read-only (I/O errors: fenced?)")  # fmt: skip
        readable = await self._fs.read_probe(device, self._s.probe_timeout_s)
        if readable is None:
            why = f"no answer from a read of {device} within {self._s.probe_timeout_s:g} s"
            return StorageFinding.NO_ANSWER, why
        if not readable:
            return StorageFinding.UNREADABLE, f"{device} is not readable (blocklisted or lock lost)"
        return StorageFinding.OK, ""

    # ---------------------------------------------------------- standby
    async def _check_standby(self) -> None:
        """The readiness facts, judged by the machine (``standby_readiness``): published, a
        pre-create if ``precreate_now`` says so, STANDBY_READY when the verdict tells it."""
        problems = await self._readiness.problems()
        self.probes["standby_ceph_age_s"] = _rounded(self._readiness.ceph_age_s)
        first = self._standby_since != self._last_since
        self._standby_since = self._last_since
        verdict = standby_readiness(problems, was=self.ready, first=first)
        self._probe("standby", verdict.ready)
        if verdict.ready != self.ready or problems != self.ready_problems:
            log.info("standby_readiness", ready=verdict.ready, problems=problems)
        self._publish(verdict)
        await self._stop_stray_data_services()
        failed = self._precreate_failed == self._last_since
        node = self._driver.node
        if precreate_now(
            node, verdict, enabled=self._s.precreate_containers, failed_this_period=failed
        ):
            await self._precreate()
        if verdict.tell is not None:  # the machine decides what a ready standby does (WARM)
            self._driver.post(verdict.tell, "standby ready")

    async def _stop_stray_data_services(self) -> None:
        """Data-bearing services running on this BACKUP node (no image mapped or mounted
        here: dockerd's restart policy brought them back, or an operator started them) ->
        DATA_ON_STANDBY: the machine stops Harbor (safety rule 5).  Asked through the Docker
        API (no process); a failure to ask is logged only (the next check asks again)."""
        try:
            running = await self._containers.running_services()
            stray = await self._compose.data_containers(running)
        except Exception as exc:
            log.debug("stray_check_failed", error=str(exc))
            return
        if stray:
            names = sorted({running[cid] or "(no service label)" for cid in stray})
            self._driver.post(
                Event.DATA_ON_STANDBY,
                f"data-bearing services running on the standby without the image: "
                f"{', '.join(names)}",
            )

    async def _precreate(self) -> None:
        """Create Harbor's containers (never start them), as the machine decided
        (``precreate_now``), only when the project has no container at all, so a standby
        never touches containers it did not make.  A failure only costs speed; it is
        reported as the fact the machine's next decision reads (the period it failed in)."""
        try:
            if await self._containers.project_containers():
                return
            await self._compose.create(self._s.command_timeout_s)
        except Exception as exc:
            self._precreate_failed = self._last_since
            self._metrics.errors.labels("precreate").inc()
            log.warning(
                "precreate_failed", error=str(exc),
                reason="not retried until the next standby period: the promotion creates them",
            )  # fmt: skip

    def _set_degraded(self, degraded: tuple[str, ...]) -> None:
        """Publish the non-critical components that read unhealthy (metric, one log line per
        change): an alert's business, never a failover."""
        if degraded == self._degraded:
            return
        for name in set(self._degraded) - set(degraded):
            self._metrics.harbor_degraded.labels(name).set(0)
        for name in degraded:
            self._metrics.harbor_degraded.labels(name).set(1)
        log.info(
            "harbor_degraded",
            components=list(degraded),
            was=list(self._degraded),
            reason="non-critical components of the health API not healthy: no failover",
        )
        self._degraded = degraded

    def _probe(self, name: str, ok: bool) -> None:
        self._metrics.probe_results.labels(name, "ok" if ok else "fail").inc()
        self._metrics.probe_ok.labels(name).set(1 if ok else 0)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _describe(report: HarborReport) -> dict[str, Any]:
    out: dict[str, Any] = {"healthy": bool(report.healthy), "reason": str(report.reason)}
    if report.degraded:
        out["degraded"] = list(report.degraded)
    return out
