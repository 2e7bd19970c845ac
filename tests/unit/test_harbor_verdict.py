"""Harbor's verdict as Harbor really reports it: serving through the proxy is the start step's
end and the master's first check; the health API is judged per component criticality and only
after core's first checker period (its components read "unknown status" until their first
check, and each check is 10 s old at worst).

The HTTP side is real: an aiohttp server on loopback answers as Harbor's proxy does (ping,
``/v2/``, ``/api/v2.0/health``), and the real HealthProbe, HarborProbe, Monitor and Driver
talk to it.  Only the Docker side is a FAKE (a container probe that reports every container
up): the real one is tested against a real dockerd in tests/integration/docker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from harbor_ha.commands.views import WARNING
from harbor_ha.commands.views import verdict as status_verdict
from harbor_ha.daemon.driver import Driver
from harbor_ha.daemon.monitor import Monitor
from harbor_ha.daemon.pulse import Pulse
from harbor_ha.keepalived.trackfile import TrackFiles
from harbor_ha.machine import Event, Kind, Mode, Node, Policy, State, Step
from harbor_ha.metrics import Metrics
from harbor_ha.probes.containers import ContainerReport, judge
from harbor_ha.probes.criticality import noncritical_services
from harbor_ha.probes.harbor import HarborProbe, verdict
from harbor_ha.probes.http import HealthProbe, HealthReport, ServeReport, judge_serving
from harbor_ha.settings import Settings
from lab.waiting import until
from tests.fakes import example_settings

CRITICAL = ("core", "database", "redis", "registry")
UP = ContainerReport(True, {"harbor-core": "running/starting"}, "10 containers running")
SERVES = ServeReport(True, "serving: ping 200, registry 401")


def health(**components: str) -> HealthReport:
    overall = "healthy" if all(s == "healthy" for s in components.values()) else "unhealthy"
    ok = overall == "healthy"
    return HealthReport(ok, overall, dict(components), "")


ALL_HEALTHY = {
    name: "healthy"
    for name in ("core", "database", "jobservice", "portal", "redis", "registry", "registryctl")
}


# ------------------------------------------------------------------------- the pure verdict
def test_a_non_critical_component_degrades_and_never_fails() -> None:
    """trivy, portal or jobservice unhealthy: Harbor still counts as healthy (no failover),
    the components are named as degraded."""
    h = health(**{**ALL_HEALTHY, "trivy": "unhealthy", "portal": "unhealthy"})
    ok, reason, degraded = verdict(UP, SERVES, h, critical=CRITICAL, judge_health=True)
    assert ok and degraded == ("portal", "trivy") and "degraded" in reason


def test_a_critical_component_fails_and_a_missing_one_counts_as_not_healthy() -> None:
    """A critical component that reads unhealthy fails the verdict; so does one the health API
    does not report at all (an operator's setting names a component Harbor lacks)."""
    h = health(**{**ALL_HEALTHY, "database": "unhealthy"})
    ok, reason, _ = verdict(UP, SERVES, h, critical=CRITICAL, judge_health=True)
    assert not ok and "database unhealthy" in reason
    ok, reason, _ = verdict(UP, SERVES, health(**ALL_HEALTHY), critical=(*CRITICAL, "trivy"),
                            judge_health=True)  # fmt: skip
    assert not ok and "trivy not reported" in reason


def test_the_health_api_is_not_judged_in_the_first_checker_period() -> None:
    """Not judged: an 'unknown status' registry does not fail, and no component degrades; the
    containers and serving still decide."""
    h = health(**{**ALL_HEALTHY, "registry": "unknown status", "trivy": "unhealthy"})
    ok, _, degraded = verdict(UP, SERVES, h, critical=CRITICAL, judge_health=False)
    assert ok and degraded == ()
    not_serving = judge_serving(502, 401)
    ok, reason, _ = verdict(UP, not_serving, h, critical=CRITICAL, judge_health=False)
    assert not ok and "core not reached" in reason


def test_an_unanswered_health_api_fails_once_judged() -> None:
    """A health API that did not answer (or not with Harbor's JSON) fails once judged."""
    err = HealthReport(False, "error", {}, "health API: HTTP 502")
    ok, reason, _ = verdict(UP, SERVES, err, critical=CRITICAL, judge_health=True)
    assert not ok and "HTTP 502" in reason


def test_serving_needs_core_ping_200_and_the_registry_answering() -> None:
    """ping 200 and /v2/ 401 (token auth) or 200 (no auth) serve; a 502 from the proxy (its
    upstream not reached) or a 404 does not."""
    assert judge_serving(200, 401).ok and judge_serving(200, 200).ok
    assert not judge_serving(502, 401).ok
    assert not judge_serving(200, 502).ok
    assert "registry not reached" in judge_serving(200, 404).reason


# ------------------------------------------------------------- a Harbor answering over HTTP
@dataclass
class FakeProxy:
    """Harbor's proxy on loopback, answering as scripted: ping, /v2/ and the health JSON."""

    ping: int = 200
    registry: int = 401
    components: dict[str, str] = field(default_factory=lambda: dict(ALL_HEALTHY))
    pieces: bool = False  # write the health JSON in pieces, a pause between them

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/api/v2.0/ping":
            return web.Response(status=self.ping, text="Pong")
        if request.path == "/v2/":
            return web.Response(status=self.registry, text="{}")
        if request.path == "/api/v2.0/health":
            items = [
                {"name": n, "status": s} | ({} if s == "healthy" else {"error": s})
                for n, s in sorted(self.components.items())
            ]
            bad = any(s != "healthy" for s in self.components.values())
            body = {"status": "unhealthy" if bad else "healthy", "components": items}
            if not self.pieces:
                return web.json_response(body)  # always 200, as Harbor's
            text = json.dumps(body).encode()
            resp = web.StreamResponse()  # chunked, as a CGI printing in several calls
            await resp.prepare(request)
            for i in range(0, len(text), 40):
                await resp.write(text[i : i + 40])
                await asyncio.sleep(0.05)
            await resp.write_eof()
            return resp
        return web.Response(status=404)


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[FakeProxy, int]]:
    fake = FakeProxy()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, port
    finally:
        await runner.cleanup()


def settings(tmp_path: Path, port: int, **extra: object) -> Settings:
    return example_settings(
        priority_file=tmp_path / "prio", fault_file=tmp_path / "fault",
        runtime_dir=tmp_path / "run", probe_host="127.0.0.1", https_port=port,
        health_scheme="http", probe_fall=2, **extra,
    )  # fmt: skip


async def test_a_health_answer_written_in_pieces_is_read_whole(
    tmp_path: Path, proxy: tuple[FakeProxy, int]
) -> None:
    """The health JSON arriving in several pieces with pauses between them (a CGI's printf
    calls, chunked encoding) is read to its end, not judged on its first piece."""
    fake, port = proxy
    fake.pieces = True
    probe = HealthProbe(settings(tmp_path, port))
    try:
        report = await probe.check()
    finally:
        await probe.close()
    assert report.ok and set(report.components) == set(ALL_HEALTHY), report.reason


async def test_serves_asks_the_proxy_over_http(
    tmp_path: Path, proxy: tuple[FakeProxy, int]
) -> None:
    """The real serving probe GETs ping and /v2/ through the proxy's port and reports each
    answer; the registry unreachable behind the proxy (502) is not serving."""
    fake, port = proxy
    probe = HealthProbe(settings(tmp_path, port))
    try:
        report = await probe.serves()
        assert report.ok and report.answers == {"/api/v2.0/ping": "200", "/v2/": "401"}
        fake.registry = 502
        report = await probe.serves()
        assert not report.ok and "registry not reached" in report.reason
    finally:
        await probe.close()


class UpContainers:
    """FAKE container probe: every container running (Docker's side is integration's)."""

    async def check(self) -> ContainerReport:
        return UP

    async def close(self) -> None:
        return None


async def _step(step: Step) -> None:
    return None


async def _renewed() -> tuple[Event, str]:
    return Event.LEASE_RENEWED, "renewed"


async def master_checks(
    s: Settings, checks: int, before: Callable[[Monitor, int], Awaitable[None]] | None = None
) -> tuple[Driver, Monitor, Metrics]:
    """A real MASTER driver and monitor probing the real HarborProbe ``checks`` times (each
    after ``before(monitor, i)`` when given)."""
    track = TrackFiles(s.priority_file, s.fault_file)
    track.ensure()
    metrics = Metrics()
    node = Node(state=State.MASTER, want_master=True)
    driver = Driver(node, run_step=_step, step_timeout=lambda st: 60, track=track,
                    metrics=metrics, background={Kind.RENEW_LEASE: _renewed})  # fmt: skip
    harbor = HarborProbe(s, UpContainers())  # type: ignore[arg-type]

    class Mounted:
        def is_mounted_from(self, device: str) -> bool:
            return True

        def is_read_only(self) -> bool:
            return False

        async def read_probe(self, device: str, timeout_s: float) -> bool:
            return True

    monitor = Monitor(
        s, driver=driver, metrics=metrics, harbor=harbor, containers=None,  # type: ignore[arg-type]
        ceph=None, fs=Mounted(), compose=None, device=lambda: "/dev/rbd0", track=track,  # type: ignore[arg-type]
        wake=Pulse(),
    )  # fmt: skip
    task = asyncio.create_task(driver.run((node, ()), "test"))
    try:
        for i in range(checks):
            if driver.node.state is not State.MASTER:
                break  # demoted: the standby's checks are not under test here
            if before is not None:
                await before(monitor, i)
            await monitor.check_once()
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await harbor.close()
    return driver, monitor, metrics


def demotion_reason(driver: Driver) -> str:
    """The reason of the transition that left MASTER on HARBOR_UNHEALTHY."""
    left = [t for t in driver.transitions if t["from"] == "MASTER" and t["to"] != "MASTER"]
    assert left and left[0]["event"] == "HARBOR_UNHEALTHY", list(driver.transitions)
    return str(left[0]["reason"])


async def test_a_fresh_master_rides_out_unknown_status(
    tmp_path: Path, proxy: tuple[FakeProxy, int]
) -> None:
    """Just promoted, core's checker has not run yet: the registry reads 'unknown status'.
    Within harbor_health_grace_s the master stays MASTER; the same answers judged (grace 0)
    demote it after probe_fall probes."""
    fake, port = proxy
    fake.components["registry"] = "unknown status"
    driver, _, _ = await master_checks(settings(tmp_path, port), checks=4)
    assert driver.node.state is State.MASTER
    driver, _, _ = await master_checks(settings(tmp_path, port, harbor_health_grace_s=0), 4)
    assert driver.node.state is not State.MASTER
    assert "registry unknown status" in demotion_reason(driver)


async def test_a_trivy_outage_raises_an_alert_and_keeps_the_vip(
    tmp_path: Path, proxy: tuple[FakeProxy, int]
) -> None:
    """trivy unhealthy on a judged master: no demotion, the degraded gauge is 1 for trivy,
    /status lists it and `harbor-ha status` says WARNING; trivy back: the gauge returns to 0."""
    fake, port = proxy
    fake.components["trivy"] = "unhealthy"
    s = settings(tmp_path, port, harbor_health_grace_s=0)
    driver, monitor, metrics = await master_checks(s, checks=5)
    assert driver.node.state is State.MASTER
    sample = metrics.registry.get_sample_value
    assert sample("harbor_ha_harbor_component_degraded", {"component": "trivy"}) == 1
    assert monitor.degraded == ("trivy",)
    code, line = status_verdict(
        {"state": "MASTER", "harbor_healthy": True, "harbor_degraded": list(monitor.degraded)}
    )
    assert code == WARNING and "trivy" in line


async def test_a_master_whose_proxy_stops_reaching_core_demotes(
    tmp_path: Path, proxy: tuple[FakeProxy, int]
) -> None:
    """Core down behind the proxy (ping 502) is not serving: judged or not, the master
    demotes after probe_fall probes (the containers alone do not keep it)."""
    fake, port = proxy
    fake.ping = 502
    driver, _, _ = await master_checks(settings(tmp_path, port), checks=4)
    assert driver.node.state is not State.MASTER
    assert "core not reached" in demotion_reason(driver)


def test_a_non_critical_container_unhealthy_degrades_a_critical_one_fails() -> None:
    """trivy-adapter's container unhealthy (its own 30 s healthcheck failed three times) only
    degrades; registry's unhealthy fails; the count floor still applies."""
    minor = noncritical_services(CRITICAL)
    assert minor == {"jobservice", "portal", "registryctl", "trivy-adapter"}
    seen = {"registry": ("running/healthy", True), "trivy-adapter": ("running/unhealthy", False)}
    report = judge(seen, 2, {"trivy-adapter"})
    assert report.healthy and report.degraded == ("trivy-adapter",)
    ok, reason, degraded = verdict(report, SERVES, health(**ALL_HEALTHY), critical=CRITICAL,
                                   judge_health=True)  # fmt: skip
    assert ok and degraded == ("trivy-adapter",) and "degraded: trivy-adapter" in reason
    seen["registry"] = ("running/unhealthy", False)
    report = judge(seen, 2, {"trivy-adapter"})
    assert not report.healthy and "registry running/unhealthy" in report.reason
    assert not judge({"trivy-adapter": seen["trivy-adapter"]}, 2, {"trivy-adapter"}).healthy


async def test_a_restart_on_the_master_is_ridden_out_once_per_window(
    tmp_path: Path, proxy: tuple[FakeProxy, int]
) -> None:
    """A container start event on a judged MASTER (core restarted) opens a restart window of
    harbor_health_grace_s: core not reached meanwhile does not count toward probe_fall.  A
    second restart soon after (a crash loop) opens none: the same failures then demote."""
    fake, port = proxy
    grace = 2.0
    s = settings(tmp_path, port, harbor_health_grace_s=grace)

    async def core_restarts(monitor: Monitor, i: int) -> None:
        if i == 0:
            await asyncio.sleep(grace + 0.1)  # past the fresh master's grace
            fake.ping = 502  # core restarting behind the proxy
            monitor.container_started()
        if i == 4:
            await asyncio.sleep(grace + 0.1)  # the window is over; core crash-loops
            monitor.container_started()

    driver, _, _ = await master_checks(s, checks=4, before=core_restarts)
    assert driver.node.state is State.MASTER
    fake.ping = 200
    driver, _, _ = await master_checks(s, checks=8, before=core_restarts)
    assert driver.node.state is not State.MASTER
    assert "core not reached" in demotion_reason(driver)


async def test_a_replicated_standby_publishes_the_machines_verdict_on_its_harbor(
    tmp_path: Path, proxy: tuple[FakeProxy, int]
) -> None:
    """A replicated BACKUP judges its own Harbor (the real HarborProbe over HTTP) and writes
    what the machine's verdict says: undecided after one probe (priority file 0, the fault
    file up: harbor_down); healthy for probe_rise probes: ready, priority 1, ready metric 1,
    HARBOR_HEALTHY clears harbor_down (fault file 0); core unhealthy for probe_fall probes:
    not ready naming core, priority 0, metric 0, HARBOR_UNHEALTHY raises the fault file."""
    fake, port = proxy
    s = settings(tmp_path, port, probe_rise=2)
    track = TrackFiles(s.priority_file, s.fault_file)
    track.ensure()
    metrics = Metrics()
    node = Node(policy=Policy(mode=Mode.REPLICATED), harbor_down=True)
    driver = Driver(node, run_step=_step, step_timeout=lambda st: 60, track=track,
                    metrics=metrics, background={})  # fmt: skip
    harbor = HarborProbe(s, UpContainers())  # type: ignore[arg-type]
    monitor = Monitor(
        s, driver=driver, metrics=metrics, harbor=harbor, containers=None,  # type: ignore[arg-type]
        ceph=None, fs=None, compose=None, device=lambda: None, track=track,  # type: ignore[arg-type]
        wake=Pulse(),
    )  # fmt: skip
    task = asyncio.create_task(driver.run((node, ()), "test"))

    def files() -> tuple[str, str]:
        return s.priority_file.read_text().strip(), s.fault_file.read_text().strip()

    def ready_metric() -> float | None:
        return metrics.registry.get_sample_value("harbor_ha_standby_ready")

    try:
        await until(lambda: len(driver.transitions) == 1)  # the node adopted: its period began
        await monitor.check_once()
        await asyncio.sleep(0.02)
        assert monitor.ready is False and files() == ("0", "1") and ready_metric() == 0
        await monitor.check_once()
        await until(lambda: not driver.node.harbor_down)
        assert monitor.ready is True and monitor.ready_problems == []
        assert files() == ("1", "0") and ready_metric() == 1
        assert driver.node.state is State.BACKUP
        fake.components["core"] = "unhealthy"
        for _ in range(2):
            await monitor.check_once()
        await until(lambda: driver.node.harbor_down)
        assert monitor.ready is False and "core" in monitor.ready_problems[0]
        assert files() == ("0", "1") and ready_metric() == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await harbor.close()
