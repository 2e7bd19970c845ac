"""All the daemon's wiring, in one function: adapters, owners of the runtime facts, the driver,
the root tasks' objects, the status projection, the control handler and the HTTP servers."""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from harbor_ha.ceph import Ceph, write_keyring
from harbor_ha.ceph.monitors import monitor_addresses
from harbor_ha.compose import Compose
from harbor_ha.filesystem import Filesystem, mount_at
from harbor_ha.filesystem.shared import SharedFilesystem
from harbor_ha.history import HistoryWriter
from harbor_ha.http import Endpoints, HttpServers
from harbor_ha.keepalived.fifo import FifoReader
from harbor_ha.keepalived.trackfile import TrackFiles
from harbor_ha.keepalived.vip import vip_present
from harbor_ha.lease import Lease
from harbor_ha.machine import Event, Kind, Mode, Node, Policy, State
from harbor_ha.machine.readiness import readiness
from harbor_ha.metrics import Metrics
from harbor_ha.peer import PeerUnreachable, peer_status
from harbor_ha.probes.containers import ContainerProbe
from harbor_ha.probes.harbor import HarborProbe
from harbor_ha.replication.watch import ReplicationWatch
from harbor_ha.runner import CommandResult, ProcessRunner
from harbor_ha.settings import Settings

from .cluster import ClusterWatch
from .control import Control
from .driver import Driver
from .evictor import Evictor
from .failsafe import Failsafe
from .fenced import FencedSelfClock
from .leasing import Leasing
from .monitor import Monitor
from .pulse import Pulse
from .replication import WatchMetrics, replication_watch
from .sdnotify import SdNotifier, StatusReporter
from .shared_steps import SharedSteps
from .status import StatusView
from .steps import Steps
from .watchers import FifoFollower, VipTicker

log = structlog.get_logger("harbor_ha.daemon")


def policy_of(settings: Settings) -> Policy:
    """The machine's timing policy from the settings."""
    return Policy(
        mode=settings.mode,
        backoff_initial_s=settings.backoff_initial_s,
        backoff_max_s=settings.backoff_max_s,
        switchover_hold_s=settings.switchover_hold_s,
        fenced_self_retry_s=settings.fenced_self_retry_s,
        master_stable_s=settings.master_stable_s,
        vip_mismatch_ticks=settings.vip_mismatch_ticks,
        warm_standby=settings.warm_standby,
        lease_duration_s=float(settings.lease_duration_s),
        lease_renew_interval_s=settings.lease_renew_interval_s,
        lease_margin_s=settings.lease_margin_s,
        lease_watch_s=settings.lease_watch_s,
        failsafe=settings.failsafe_enabled,
        failsafe_window_s=settings.failsafe_window_s,
        failsafe_request_timeout_s=settings.failsafe_request_timeout_s,
        demotion_bound_s=(
            settings.stop_timeout_s + settings.unmount_timeout_s + settings.unmap_timeout_s
        ),
        drain_wait_s=settings.drain_wait_s,
    )


@dataclass
class Parts:
    settings: Settings
    runner: ProcessRunner
    metrics: Metrics
    notifier: SdNotifier
    track: TrackFiles
    ceph: Ceph
    lease: Lease
    leasing: Leasing
    fs: Filesystem
    compose: Compose
    containers: ContainerProbe
    harbor: HarborProbe
    wake: Pulse  # container events: wakes the monitor and the start step
    steps: Steps
    driver: Driver
    fifo_reader: FifoReader
    fifo: FifoFollower
    ticker: VipTicker
    monitor: Monitor
    control: Control
    http: HttpServers
    history: HistoryWriter
    failsafe: Failsafe
    replication: ReplicationWatch | None = None  # the replicated mode's watch; None in rbd
    cluster: ClusterWatch | None = None  # the cluster's consistency; None without the node list
    evictor: Evictor | None = None  # dead nodes' CephFS sessions; None unless configured
    shared: SharedFilesystem | None = None  # the shared mode's filesystem; None otherwise
    reconciled: bool = False

    async def vip_present(self) -> bool:
        return await vip_present(self.runner, self.settings)

    async def peer_state(self) -> str | None:
        """The peer's state from its /status (``peer_http_url``, within ``peer_timeout_s``);
        None: no URL, no answer, or a peer with this node's own name (not trusted)."""
        s = self.settings
        if not s.peer_url:
            return None
        try:
            status = await peer_status(s.peer_url, s.peer_timeout_s)
        except PeerUnreachable as exc:
            log.info("peer_state_unknown", peer=s.peer_url, error=str(exc))
            return None
        state = status.get("state")
        if status.get("node") == s.node_name or not isinstance(state, str):
            return None
        return state

    def occupied(self) -> bool:
        """Something (ours or not) is mounted at the mountpoint."""
        return mount_at(self.settings.mountpoint) is not None

    def alive(self) -> tuple[bool, str]:
        lag = time.monotonic() - self.ticker.last_tick_monotonic
        limit = 3 * self.settings.tick_interval_s + 5
        if lag > limit:
            return False, f"main loop has not ticked for {lag:.1f} s"
        return True, f"ticked {lag:.1f} s ago"


def build(settings: Settings, *, notify_socket: str | None = None) -> Parts:
    metrics = Metrics()

    def observe(result: CommandResult) -> None:
        name = result.argv[0].rsplit("/", 1)[-1]
        metrics.command_duration.labels(name).observe(result.duration_s)

    runner = ProcessRunner(observer=observe)
    settings.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.ceph_user_key is not None and settings.ceph_keyring is None:
        keyring = write_keyring(settings, settings.runtime_dir / "ceph.keyring")
        settings = settings.model_copy(update={"ceph_keyring": keyring})
    s = settings

    async def vip() -> bool:
        return await vip_present(runner, s)

    containers = ContainerProbe(s)
    ceph, fs, compose = Ceph(s, runner), Filesystem(s, runner), Compose(s, runner)
    track = TrackFiles(s.priority_file, s.fault_file)
    wake = Pulse()
    notifier = SdNotifier(notify_socket)
    history = HistoryWriter(s.state_dir, s.node_name, max_bytes=s.history_max_bytes)
    harbor = HarborProbe(s, containers)
    lease = Lease(s)
    leasing = Leasing(s, lease, metrics)
    shared = SharedFilesystem(s, runner) if s.mode is Mode.SHARED else None
    shared_steps = (
        None if shared is None
        else SharedSteps(s, fs=shared, compose=compose, harbor=harbor, wake=wake)
    )  # fmt: skip
    steps = Steps(
        s, ceph=ceph, fs=fs, compose=compose, harbor=harbor, metrics=metrics, wake=wake,
        leasing=leasing, vip_present=vip, shared=shared_steps,
    )  # fmt: skip

    async def warm() -> None:
        await compose.warm(s.start_timeout_s)

    first = State.DOWN if s.mode is Mode.SHARED else State.BACKUP  # until reconciled
    driver = Driver(
        Node(state=first, demote_on_exit=s.stop_harbor_on_exit, policy=policy_of(s)),
        run_step=steps.run,
        step_timeout=steps.timeout,
        track=track,
        metrics=metrics,
        background={
            Kind.RENEW_LEASE: leasing.renew,
            Kind.POLL_LEASE: leasing.poll,
            Kind.WATCH_LEASE: leasing.watch,
            Kind.ASK_PEER: lambda: failsafe.ask(),
            Kind.WARM: warm,
        },
        interface=s.interface,
        observers=(StatusReporter(notifier), history, FencedSelfClock(metrics)),
        stuck=runner.unfinished_here,
    )
    failsafe = Failsafe(s, lease, lambda: driver.node, driver.decide)
    leasing.node = lambda: driver.node
    metrics.image_mapped.set_function(lambda: 1.0 if steps.device else 0.0)
    metrics.blocklist_expire.set(s.blocklist_expire_s)

    def bad_line(raw: str, reason: str) -> None:
        metrics.fifo_bad_lines.inc()
        log.warning("fifo_bad_line", line=raw[:200], reason=reason)

    def writer(present: bool) -> None:
        if present:
            driver.post(Event.KA_RETURNED, "a keepalived holds the notify FIFO again")
        else:
            driver.post(
                Event.KA_GONE,
                f"keepalived: no process has held the notify FIFO for "
                f"{s.keepalived_gone_after_s:g} s (it died)",
            )

    reader = FifoReader(
        s.keepalived_fifo, on_bad_line=bad_line, on_reopen=metrics.fifo_reopens.inc,
        writer_grace_s=s.keepalived_gone_after_s, on_writer=writer,
    )  # fmt: skip
    fifo = FifoFollower(s.vrrp_instance, driver, metrics)
    ticker = VipTicker(
        interval_s=s.tick_interval_s, driver=driver, metrics=metrics,
        vip_present=None if s.mode is Mode.SHARED else vip,  # no VIP on a shared node
        notifier=notifier,
    )  # fmt: skip
    monitor = Monitor(
        s, driver=driver, metrics=metrics, harbor=harbor, containers=containers, ceph=ceph,
        fs=fs, compose=compose, device=lambda: steps.device, track=track, wake=wake,
        ceph_monitors=monitor_addresses(s.ceph_mon_host, s.ceph_conf, s.ceph_user),
        shared=shared,
    )  # fmt: skip
    parts: Parts

    watched = WatchMetrics(metrics)
    replication = replication_watch(s, watched) if s.mode is Mode.REPLICATED else None
    cluster = ClusterWatch(s, metrics) if s.nodes and s.mode is Mode.SHARED else None
    status = StatusView(
        s.node_name, driver, steps, monitor, ticker, fifo, reconciled=lambda: parts.reconciled,
        replication=replication, replication_errors=watched.errors, cluster=cluster,
    )  # fmt: skip
    control = Control(driver, status.snapshot, s.vrrp_instance)

    def primary() -> tuple[bool, str]:
        """/primary and /serving: Harbor serves here (MASTER, or SERVING in the shared mode)
        and is healthy."""
        node = driver.node
        if not node.serving:
            return False, f"state is {node.state}"
        if status.harbor_healthy() is not True:
            return False, "harbor not healthy"
        return True, f"{node.state} and harbor healthy"

    def ready() -> tuple[bool, str]:
        return readiness(
            driver.node, parts.alive(), primary(), monitor.ready, monitor.ready_problems
        )

    http = HttpServers(
        Endpoints(
            registry=metrics.registry,
            alive=lambda: parts.alive(),
            primary=primary,
            serving=primary,
            ready=ready,
            status=status.snapshot,
            control=control.handle,
        ),
        host=s.http_host,
        port=s.http_port,
        control_socket=s.control_socket_path,
    )
    parts = Parts(
        settings=s, runner=runner, metrics=metrics, notifier=notifier, track=track, ceph=ceph,
        lease=lease, leasing=leasing, fs=fs, compose=compose, containers=containers,
        harbor=harbor, wake=wake,
        steps=steps,
        driver=driver,
        fifo_reader=reader, fifo=fifo, ticker=ticker, monitor=monitor, control=control,
        http=http, history=history, failsafe=failsafe, replication=replication,
        cluster=cluster, shared=shared,
        evictor=Evictor(s, runner, metrics) if s.shared_evict_after_s > 0 else None,
    )  # fmt: skip
    return parts
