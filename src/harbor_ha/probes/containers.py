"""Harbor's containers as the Docker API sees them (aiodocker), and the Docker event stream.

Up = at least ``harbor_expected_containers`` containers labelled
``com.docker.compose.project=PROJECT``, each with State.Status ``running`` and, if it has a
healthcheck, a State.Health.Status other than ``unhealthy``: Harbor's images check every 30 s
(Docker's default interval), so ``starting`` is a normal state for the first 30 s, not a failure
(a stopped container keeps its last health value, so both are checked). The standby's readiness
questions (the project's containers, the images present) are answered through the same client:
no ``docker`` CLI run per check. The event stream (the project's container events of
WATCH_EVENTS only: unfiltered, healthchecks flood exec_* events) lets the daemon react at once.
While it is connected, check() lists the containers again only after an event or
``probe_containers_full_s`` after its last list (the periodic backstop against a lost event);
otherwise its last look stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiodocker
import aiohttp
import structlog

from harbor_ha.probes.criticality import noncritical_services
from harbor_ha.settings import Settings

log = structlog.get_logger(__name__)

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
EVENTS_CONNECTED = "docker events connected"
EVENTS_RECONNECTED = "docker events reconnected"
"""What ``watch`` yields when its stream is established / re-established after a loss."""


def may_have_started(what: str) -> bool:
    """Whether a line of ``watch`` can mean a container started: its start event, or the
    stream (re)connecting (dockerd restarting starts its restart-policy containers before
    anyone listens again, so a start may have been missed)."""
    return what.endswith(" start") or what in (EVENTS_CONNECTED, EVENTS_RECONNECTED)


WATCH_EVENTS = (
    "start", "die", "stop", "health_status", "create", "destroy", "pause", "unpause", "rename",
)  # fmt: skip
"""Every container event that can change what check() reports (state, health, the set of
containers, a name); a kill or an OOM is followed by ``die``."""
BACKOFF_INITIAL_S = 0.1


class DockerApiError(Exception):
    """The Docker API did not answer a question (error, refused, timeout)."""


@dataclass(frozen=True)
class ContainerReport:
    """One look at the project's containers."""

    healthy: bool
    containers: dict[str, str] = field(default_factory=dict)
    """container name -> "running/healthy", "exited", "running/starting", ..."""
    reason: str = ""
    api_error: bool = False
    """Docker's API did not answer (the report says nothing about the containers)."""
    degraded: tuple[str, ...] = ()
    """Containers of non-critical services (portal, jobservice, registryctl, trivy-adapter by
    default) stopped or unhealthy: named, not failing."""


def container_status(state: dict[str, Any]) -> tuple[str, bool]:
    """("running/healthy"-style text, is it good?) from an inspect ``State`` object (pure)."""
    status = str(state.get("Status", "unknown"))
    health = state.get("Health")
    health_status = health.get("Status") if isinstance(health, dict) else None
    text = f"{status}/{health_status}" if health_status else status
    # Harbor's images check every 30 s (Docker's default): a started container reads
    # "starting" for about that long.  Only "unhealthy" (its retries failed) is a failure.
    good = status == "running" and health_status != "unhealthy"
    return text, good


_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: [a-z]+)\)")


def list_key(state: object, status: object) -> tuple[str, str]:
    """What of a container's list entry tells it changed (pure): its State ("running") and the
    health its Status text carries ("healthy", "unhealthy", "health: starting"; "" without a
    healthcheck).  The rest of the text, the uptime ("Up 5 seconds"), changes by itself."""
    m = _HEALTH_IN_STATUS.search(str(status))
    return str(state), m.group(1) if m else ""


def judge(
    containers: dict[str, tuple[str, bool]],
    expected: int,
    noncritical: Collection[str] = (),
) -> ContainerReport:
    """Verdict over name -> (status text, good) (pure).  A container named in ``noncritical``
    that is not good only degrades (named in ``degraded``); any other fails the verdict."""
    shown = {name: text for name, (text, _good) in sorted(containers.items())}
    bad = [name for name, (_text, good) in sorted(containers.items()) if not good]
    degraded = tuple(name for name in bad if name in noncritical)
    failing = [f"{name} {shown[name]}" for name in bad if name not in noncritical]
    if failing:
        return ContainerReport(
            False, shown, "containers not up: " + ", ".join(failing), degraded=degraded
        )
    if len(containers) < expected:
        return ContainerReport(
            False, shown, f"{len(containers)} of {expected} expected containers exist",
            degraded=degraded,
        )  # fmt: skip
    note = f"; degraded: {', '.join(degraded)}" if degraded else ""
    return ContainerReport(
        True, shown, f"{len(containers)} containers running, none unhealthy{note}",
        degraded=degraded,
    )  # fmt: skip


def _endpoint(docker_host: str) -> tuple[str, aiohttp.BaseConnector | None]:
    """(base URL, connector) for a DOCKER_HOST value."""
    parts = urlsplit(docker_host)
    if parts.scheme == "unix":
        return "http://docker", aiohttp.UnixConnector(path=parts.path)
    if parts.scheme == "tcp":
        return f"http://{parts.netloc}", None
    return docker_host.rstrip("/"), None


class ContainerProbe:
    """Docker API probe of the compose project ``settings.compose_project``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._docker: aiodocker.Docker | None = None
        self._seen: dict[str, tuple[tuple[str, str], str, tuple[str, bool], str]] = {}
        """container id -> ((list State, list Status), name, status) of its last inspect."""
        self._stream_live = False
        """watch() holds a connected event stream: no event means no change."""
        self._changed = True
        """An event (or a stream (re)connect) arrived since the last list began."""
        self._last: tuple[float, ContainerReport] | None = None
        """(monotonic time its list began, report) of the last check that listed."""
        self.lists = 0
        """How many times check() listed the containers (the tests count them)."""

    @property
    def changed(self) -> bool:
        """A container event arrived since the last list began (or no live event stream says
        otherwise): the next check() lists again."""
        return self._changed or not self._stream_live

    @property
    def _label(self) -> str:
        return f"{PROJECT_LABEL}={self._settings.compose_project}"

    def _client(self) -> aiodocker.Docker:
        if self._docker is None:
            self._docker = aiodocker.Docker(url=self._settings.docker_host)
        return self._docker

    async def close(self) -> None:
        if self._docker is not None:
            docker, self._docker = self._docker, None
            await docker.close()

    async def ping(self) -> bool:
        """Does the Docker API answer within probe_timeout_s?"""
        try:
            async with asyncio.timeout(self._settings.probe_timeout_s):
                await self._client().version()
        except (aiodocker.DockerError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("docker_ping_failed", error=f"{type(exc).__name__}: {exc}")
            return False
        return True

    async def project_containers(self) -> list[str]:
        """IDs of all the project's containers, running or not (what ``docker ps -a -q
        --filter label=...`` prints), bounded by command_timeout_s; DockerApiError if the API
        does not answer."""
        filters = json.dumps({"label": [self._label]})
        async with self._asking("containers"):
            listed = await self._client().containers.list(all=True, filters=filters)
        return [c.id for c in listed]

    async def running_services(self) -> dict[str, str]:
        """The project's running containers: id -> compose service (its label; "" when it
        has none), through the Docker API (no `docker ps` process), bounded by
        command_timeout_s; DockerApiError if the API does not answer."""
        filters = json.dumps({"label": [self._label], "status": ["running"]})
        async with self._asking("running containers"):
            listed = await self._client().containers.list(filters=filters)
        return {c.id: str((c["Labels"] or {}).get(SERVICE_LABEL, "")) for c in listed}

    async def missing_images(self, images: list[str]) -> list[str]:
        """Those of ``images`` the local Docker does not have (image inspect answers 404), in
        order, bounded by command_timeout_s for all; DockerApiError for any other failure."""
        if not images:
            return []

        async def absent(image: str) -> bool:
            try:
                await self._client().images.inspect(image)
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return True
                raise
            return False

        async with self._asking("image inspect"):
            gone = await asyncio.gather(*(absent(image) for image in images))
        missing = [image for image, no in zip(images, gone, strict=True) if no]
        if missing:
            log.warning("images_missing", project=self._settings.compose_project, images=missing)
        return missing

    @contextlib.asynccontextmanager
    async def _asking(self, what: str) -> AsyncIterator[None]:
        """Bound a Docker API question by command_timeout_s; its failures as DockerApiError."""
        timeout = self._settings.command_timeout_s
        try:
            async with asyncio.timeout(timeout):
                yield
        except TimeoutError as exc:
            raise DockerApiError(f"docker API {what}: timeout after {timeout:g} s") from exc
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as exc:
            raise DockerApiError(f"docker API {what}: {type(exc).__name__}: {exc}") from exc

    async def check(self) -> ContainerReport:
        """The project's containers, inspected when their list entry (state, status text) changed
        since the last look; never raises (errors are reported).  While the event stream is
        connected and nothing happened since the last list (younger than
        probe_containers_full_s), that list's report is returned without asking Docker."""
        now = time.monotonic()
        last = self._last
        if (
            last is not None
            and self._stream_live
            and not self._changed
            and now - last[0] < self._settings.probe_containers_full_s
        ):
            return last[1]
        # Cleared BEFORE the list: an event arriving while it runs makes the next check list.
        # The last report goes too: a list cancelled half-way must not leave it standing.
        self._changed = False
        self._last = None
        report = await self._list_and_judge()
        self.lists += 1
        if not report.api_error:
            self._last = (now, report)
        return report

    async def _list_and_judge(self) -> ContainerReport:
        try:
            async with asyncio.timeout(self._settings.probe_timeout_s):
                docker = self._client()
                listed = await docker.containers.list(
                    all=True, filters=json.dumps({"label": [self._label]})
                )
                # Inspect only what changed since the last look: the list's State, and the
                # health in its Status ("Up 3 minutes (healthy)"), change with every state or
                # health change (the uptime in it, every second in the first minute: ignored).
                keys = {c.id: list_key(c["State"], c["Status"]) for c in listed}
                stale = [
                    c for c in listed if c.id not in self._seen or self._seen[c.id][0] != keys[c.id]
                ]
                infos = await asyncio.gather(*(c.show() for c in stale))
        except TimeoutError:
            why = f"docker API: timeout after {self._settings.probe_timeout_s:g} s"
            return ContainerReport(False, {}, why, api_error=True)
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as exc:
            why = f"docker API: {type(exc).__name__}: {exc}"
            return ContainerReport(False, {}, why, api_error=True)
        fresh = {
            c.id: (keys[c.id], str(info.get("Name", c.id)).lstrip("/"),
                   container_status(info.get("State") or {}),
                   str(((info.get("Config") or {}).get("Labels") or {}).get(SERVICE_LABEL, "")))
            for c, info in zip(stale, infos, strict=True)
        }  # fmt: skip
        self._seen = {cid: fresh.get(cid) or self._seen[cid] for cid in keys}
        seen = {name: status for _, name, status, _svc in self._seen.values()}
        minor = noncritical_services(self._settings.harbor_critical_components)
        names = {name for _, name, _status, svc in self._seen.values() if svc in minor}
        return judge(seen, self._settings.harbor_expected_containers, names)

    async def watch(self) -> AsyncIterator[str]:
        """Yield "NAME ACTION" for each start/die/stop/health_status event of the project.

        Yields EVENTS_CONNECTED once the stream is established, and after a loss (dockerd
        restart: reconnects with backoff up to probe_interval_s) EVENTS_RECONNECTED (events
        may have been missed: re-check).  Never raises except
        CancelledError.
        """
        filters = json.dumps(
            {"type": ["container"], "label": [self._label], "event": list(WATCH_EVENTS)}
        )
        backoff = BACKOFF_INITIAL_S
        lost = False
        while True:
            base, connector = _endpoint(self._settings.docker_host)
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=self._settings.probe_timeout_s,
                sock_connect=self._settings.probe_timeout_s,
            )
            try:
                async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                    # Bounded until the response headers; the stream itself may be quiet for long.
                    async with asyncio.timeout(self._settings.probe_timeout_s):
                        resp = await session.get(f"{base}/events", params={"filters": filters})
                    async with resp:
                        if resp.status != 200:
                            raise aiohttp.ClientResponseError(
                                resp.request_info, (), status=resp.status, message="events"
                            )
                        log.info("docker_events_connected", reconnect=lost)
                        backoff = BACKOFF_INITIAL_S
                        # Events may have been missed before (or between) streams.
                        self._changed, self._stream_live = True, True
                        yield EVENTS_RECONNECTED if lost else EVENTS_CONNECTED
                        lost = False
                        async for line in resp.content:
                            text = line.strip()
                            if not text:
                                continue
                            self._changed = True  # even one we cannot parse
                            try:
                                event = json.loads(text)
                            except ValueError:
                                continue
                            yield _describe(event)
                log.warning("docker_events_ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the stream must survive any failure
                log.warning(
                    "docker_events_lost", error=f"{type(exc).__name__}: {exc}", retry_s=backoff
                )
            finally:
                self._stream_live = False
            lost = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._settings.probe_interval_s)


def _describe(event: dict[str, Any]) -> str:
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    name = attrs.get("name") or str(actor.get("ID", "?"))[:12]
    action = str(event.get("Action") or event.get("status") or "?")
    return f"{name} {action}"
