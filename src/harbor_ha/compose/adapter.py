"""The adapter the daemon holds: Harbor's compose project on this node.

Every call is ``<compose> -p PROJECT -f FILE ...`` with ``DOCKER_HOST`` set, through the
runner, bounded by a timeout from the settings; the command lines are built in
:mod:`harbor_ha.compose.argv` and the outputs parsed in :mod:`harbor_ha.compose.parse`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import structlog

from harbor_ha.compose.argv import (
    compose_argv,
    compose_candidates,
    docker_argv,
    down_args,
    ps_args,
    ps_services_args,
    warm_args,
)
from harbor_ha.compose.errors import (
    ComposeError,
    ComposeFailed,
    ComposeNotFound,
    ComposeStillRunning,
)
from harbor_ha.compose.parse import (
    detail,
    parse_config_images,
    parse_ids,
    parse_image_list,
    parse_service_ids,
    service_blocks,
    services_naming,
    services_naming_only_secrets,
    startable_on_bare_mountpoint,
    strict_binds_under,
)
from harbor_ha.runner import CommandError, CommandResult, Runner
from harbor_ha.settings import Settings

log = structlog.get_logger("harbor_ha.compose")

VERIFY_POLL_S = 0.1
"""Period of the "is anything of the project still running?" poll after a kill."""


class Compose:
    """The Harbor compose project of this node."""

    def __init__(self, settings: Settings, runner: Runner) -> None:
        self._settings = settings
        self._runner = runner
        self._command: list[str] | None = None
        self._lock = asyncio.Lock()
        self._lifecycle = asyncio.Lock()
        """Serializes create/up/stop/down: a standby's create still running when the node is
        promoted must end before `up -d` (compose is not safe against itself)."""
        self._images_cache: tuple[tuple[float, int], list[str]] | None = None
        self._config_cache: tuple[tuple[float, int], str] | None = None
        self._classified: str | None = None  # the config text last classified (logged once)
        self._create_skips_logged: str | None = None  # the config whose skips were logged

    # ------------------------------------------------------------------ plumbing
    @property
    def project(self) -> str:
        return self._settings.compose_project

    def _env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self._settings.docker_host}

    async def command(self) -> list[str]:
        """The compose command line: settings.compose_command, or for ``auto`` the first of
        ``docker compose`` (v2) and ``docker-compose`` (v1) whose ``version`` works.  Cached."""
        if self._command is not None:
            return self._command
        async with self._lock:
            if self._command is not None:
                return self._command
            configured = self._settings.compose_command
            if configured != ["auto"]:
                self._command = list(configured)
                return self._command
            tried = []
            for candidate in compose_candidates(self._settings):
                argv = [*candidate, "version"]
                try:
                    res = await self._runner.run(
                        argv, timeout_s=self._settings.command_timeout_s, env=self._env()
                    )
                except CommandError as exc:
                    tried.append(f"{' '.join(argv)}: {exc}")
                    continue
                if res.ok:
                    self._command = candidate
                    log.info("compose_command", command=candidate, version=res.stdout.strip())
                    return candidate
                tried.append(f"{' '.join(argv)}: exit {res.returncode}: {detail(res)[:200]}")
            raise ComposeNotFound("no working compose command: " + "; ".join(tried))

    async def argv(self, *args: str) -> list[str]:
        """``<compose> -p PROJECT -f FILE args...``."""
        return compose_argv(await self.command(), self._settings, *args)

    async def _compose(self, *args: str, timeout_s: float) -> CommandResult:
        argv = await self.argv(*args)
        try:
            return await self._runner.run(argv, timeout_s=timeout_s, env=self._env())
        except CommandError as exc:
            raise ComposeFailed(str(exc)) from exc

    async def _docker(self, *args: str, timeout_s: float | None = None) -> CommandResult:
        argv = docker_argv(self._settings, *args)
        try:
            return await self._runner.run(
                argv,
                timeout_s=timeout_s or self._settings.command_timeout_s,
                env=self._env(),
            )
        except CommandError as exc:
            raise ComposeFailed(str(exc)) from exc

    # ----------------------------------------------------------------- lifecycle
    async def up(self, timeout_s: float | None = None) -> None:
        """``up -d --remove-orphans`` (orphans: containers of services no longer in the file,
        e.g. after a Harbor upgrade; they would otherwise keep running with the project's label).
        Returns when compose has started the containers; health is the probes' business."""
        await self._bring_up(
            ["up", "-d", "--remove-orphans"],
            what="compose up",
            failed="compose_up_failed",
            done="compose_up",
            timeout_s=timeout_s,
        )

    async def create(self, timeout_s: float | None = None) -> list[str]:
        """``up --no-start --no-deps --remove-orphans SERVICE...``: create the containers that
        can be created on a node whose data volume is not mounted, WITHOUT starting them.  A
        standby prepares them so that promotion's ``up -d`` (which recreates whatever changed
        in the file) only has to start them.  Left out: services with a long-syntax bind of a
        path under the mountpoint (``strict_binds_under``: Docker refuses to create them while
        the source is missing; Harbor's core, registry and trivy-adapter), logged once per
        compose config.  Created containers are not running: they do not count as Harbor
        running (reconcile, probes), and Docker does not start them on a dockerd restart even
        with ``restart: always`` (pinned by an integration test).  Returns the services."""
        config = await self._config()
        strict = strict_binds_under(config, str(self._settings.mountpoint))
        if strict and self._create_skips_logged != config:
            self._create_skips_logged = config
            log.info(
                "precreate_skips", project=self.project, services=sorted(strict),
                reason="long-syntax binds under the unmounted data volume: Docker cannot "
                "create them before the mount; the promotion creates them",
            )  # fmt: skip
        services = [name for name in service_blocks(config) if name not in strict]
        if not services:
            return []
        await self._bring_up(
            ["up", "--no-start", "--no-deps", "--remove-orphans", *services],
            what="compose up --no-start",
            failed="compose_create_failed",
            done="compose_created",
            timeout_s=timeout_s,
        )
        return services

    async def _bring_up(
        self, args: list[str], *, what: str, failed: str, done: str, timeout_s: float | None
    ) -> None:
        """Run compose ``args`` (up or create) bounded by start_timeout_s; log ``failed`` and
        raise ComposeFailed naming ``what`` on a non-zero exit, else log ``done``."""
        timeout = timeout_s or self._settings.start_timeout_s
        started = time.monotonic()
        async with self._lifecycle:
            res = await self._compose(*args, timeout_s=timeout)
        if not res.ok:
            log.warning(failed, project=self.project, rc=res.returncode)
            raise ComposeFailed(f"{what}: exit {res.returncode}: {detail(res)}")
        log.info(done, project=self.project, duration_s=round(time.monotonic() - started, 2))

    async def down(self, timeout_s: float | None = None) -> None:
        """``down -t compose_stop_timeout_s --remove-orphans``: stop AND remove the containers;
        if compose fails or anything of the project still runs, ``docker kill`` by label,
        then ``docker rm -f`` by label.  Verifies that no container of the project is left.

        Prefer this for demotion: Harbor's services have ``restart: always``, and Docker restarts
        such containers when dockerd restarts even after ``stop``/``kill`` (measured), i.e. a
        rebooted standby would run Harbor again.  Removed containers cannot come back."""
        deadline = await self._halt(down_args(self._settings), "down", timeout_s)
        left = max(deadline - time.monotonic(), 1.0)
        if await self.project_containers(timeout_s=left):
            removed = await self.remove_by_label(timeout_s=left)
            log.warning("compose_removed_by_label", project=self.project, removed=len(removed))
            remaining = await self.project_containers(timeout_s=left)
            if remaining:
                raise ComposeStillRunning(self.project, remaining, "present after down and rm")

    async def _halt(self, args: list[str], action: str, timeout_s: float | None) -> float:
        """Run compose ``args`` (stop or down) on 2/3 of the budget, then kill by label whatever
        still runs and verify nothing does (ComposeStillRunning).  Returns the deadline."""
        budget = timeout_s or self._settings.stop_timeout_s
        deadline = time.monotonic() + budget
        compose_ok = False
        try:
            async with self._lifecycle:
                res = await self._compose(*args, timeout_s=budget * 2 / 3)
            compose_ok = res.ok
            if not res.ok:
                log.warning(
                    f"compose_{action}_failed",
                    project=self.project,
                    rc=res.returncode,
                    detail=detail(res)[:200],
                )
        except ComposeError as exc:
            log.warning(f"compose_{action}_failed", project=self.project, error=str(exc))
        await self._kill_and_verify(deadline, compose_ok=compose_ok, action=action)
        return deadline

    async def _kill_and_verify(
        self, deadline: float, *, compose_ok: bool, action: str
    ) -> list[str]:
        def left() -> float:
            return max(deadline - time.monotonic(), 1.0)

        killed: list[str] = []
        running = await self.running_containers(timeout_s=left())
        if running:
            log.warning(
                "compose_kill_by_label",
                project=self.project,
                action=action,
                compose_ok=compose_ok,
                running=len(running),
            )
            killed = await self.kill_by_label(timeout_s=left())
        while running:
            running = await self.running_containers(timeout_s=left())
            if not running:
                break
            if time.monotonic() >= deadline:
                log.error("compose_still_running", project=self.project, ids=running)
                raise ComposeStillRunning(self.project, running)
            await asyncio.sleep(VERIFY_POLL_S)
        log.info(
            "compose_stopped", project=self.project, action=action, compose_ok=compose_ok,
            killed=[i[:12] for i in killed],
        )  # fmt: skip
        return killed

    async def running_containers(self, timeout_s: float | None = None) -> list[str]:
        """IDs of the project's running containers (``docker ps -q --filter label=...``)."""
        return await self._ps(all_=False, timeout_s=timeout_s)

    async def project_containers(self, timeout_s: float | None = None) -> list[str]:
        """IDs of all the project's containers, running or not (``docker ps -a``)."""
        return await self._ps(all_=True, timeout_s=timeout_s)

    async def _ps(self, *, all_: bool, timeout_s: float | None) -> list[str]:
        res = await self._docker(*ps_args(self.project, all_=all_), timeout_s=timeout_s)
        if not res.ok:
            raise ComposeFailed(f"docker ps: exit {res.returncode}: {detail(res)}")
        return parse_ids(res.stdout)

    async def remove_by_label(self, timeout_s: float | None = None) -> list[str]:
        """``docker rm -f`` every container of the project; returns the IDs removed."""
        ids = await self.project_containers(timeout_s=timeout_s)
        if not ids:
            return []
        res = await self._docker("rm", "-f", *ids, timeout_s=timeout_s)
        removed = [i for i in ids if i in res.stdout]
        log.info(
            "docker_rm", project=self.project, requested=len(ids), removed=len(removed),
            rc=res.returncode,
        )  # fmt: skip
        return removed

    async def kill_by_label(self, timeout_s: float | None = None) -> list[str]:
        """``docker kill`` every running container of the project; returns the IDs killed.
        A container that stopped in between is not an error."""
        ids = await self.running_containers(timeout_s=timeout_s)
        if not ids:
            return []
        res = await self._docker("kill", *ids, timeout_s=timeout_s)
        killed = [i for i in ids if i in res.stdout]
        log.info(
            "docker_kill", project=self.project, requested=len(ids), killed=len(killed),
            rc=res.returncode,
        )  # fmt: skip
        return killed

    # ------------------------------------------------------- data vs stateless
    async def config(self) -> str:
        """The normalized ``compose config`` (cached: see ``_config``)."""
        return await self._config()

    async def _config(self) -> str:
        """The normalized ``compose config``, cached until the file's mtime or size changes."""
        st = self._settings.compose_file.stat()
        key = (st.st_mtime, st.st_size)
        if self._config_cache is not None and self._config_cache[0] == key:
            return self._config_cache[1]
        res = await self._compose("config", timeout_s=self._settings.command_timeout_s)
        if not res.ok:
            raise ComposeFailed(f"compose config: exit {res.returncode}: {detail(res)}")
        self._config_cache = (key, res.stdout)
        return res.stdout

    async def data_services(self) -> list[str]:
        """The services that need the mount: settings.harbor_data_services, plus any service
        whose config names a path under the mountpoint.  Logged once per compose config: a
        service that binds only the mount's secrets (an https proxy's certificate under
        ``secret/``) at info, any other the setting misses as a warning."""
        config = await self._config()
        mountpoint = str(self._settings.mountpoint)
        listed = set(self._settings.harbor_data_services)
        naming = services_naming(config, mountpoint)
        if self._classified != config:
            self._classified = config
            secrets = set(services_naming_only_secrets(config, mountpoint))
            quiet = [name for name in naming if name not in listed and name in secrets]
            unlisted = [name for name in naming if name not in listed and name not in secrets]
            if quiet:
                log.info(
                    "service_needs_mounted_secrets", project=self.project, services=quiet,
                    reason=f"binds only {mountpoint}/secret: starts on the mount, not warm",
                )  # fmt: skip
            if unlisted:
                log.warning("data_service_not_listed", project=self.project, services=unlisted)
        return [name for name in service_blocks(config) if name in listed or name in naming]

    async def bare_startable(self) -> list[str]:
        """Services that bind the mountpoint itself and nothing below it (data-bearing, as
        every service naming the mountpoint is): after a dockerd restart their restart
        policy can start them on the bare mountpoint (the standby then stops them, but they
        ran).  ``harbor-ha check`` warns about them."""
        config = await self._config()
        return startable_on_bare_mountpoint(config, str(self._settings.mountpoint))

    async def stateless_services(self) -> list[str]:
        """The project's services that keep nothing on the mount (proxy, portal, log)."""
        config = await self._config()
        data = set(await self.data_services())
        return [name for name in service_blocks(config) if name not in data]

    async def running_services(self, timeout_s: float | None = None) -> dict[str, str]:
        """Running containers of the project: id -> compose service."""
        res = await self._docker(*ps_services_args(self.project), timeout_s=timeout_s)
        if not res.ok:
            raise ComposeFailed(f"docker ps: exit {res.returncode}: {detail(res)}")
        return parse_service_ids(res.stdout)

    async def running_data_containers(self) -> list[str]:
        """IDs of running containers of data-bearing services (``docker ps``)."""
        return await self.data_containers(await self.running_services())

    async def data_containers(self, running: Mapping[str, str]) -> list[str]:
        """Of ``running`` (container id -> compose service), the data-bearing services'
        containers (or of no known service: a container of the project compose cannot place
        counts as data-bearing)."""
        if not running:
            return []
        try:
            stateless = set(await self.stateless_services())
        except (ComposeError, OSError) as exc:  # cannot tell: every container counts
            log.warning("stateless_services_unknown", project=self.project, error=str(exc))
            return list(running)
        return [cid for cid, service in running.items() if service not in stateless]

    async def warm(self, timeout_s: float | None = None) -> list[str]:
        """Start the stateless services that are not running (``up -d --no-deps``: never a
        dependency, so never a data-bearing service).  Returns the services started."""
        stateless = await self.stateless_services()
        running = set((await self.running_services()).values())
        todo = [name for name in stateless if name not in running]
        if not todo:
            return []
        await self._bring_up(
            warm_args(todo),
            what="compose up -d --no-deps (stateless)",
            failed="compose_warm_failed",
            done="compose_warm",
            timeout_s=timeout_s,
        )
        return todo

    # ------------------------------------------------------------------ readiness
    async def validate(self) -> list[str]:
        """Problems with the compose file (``config -q``): empty when it is valid."""
        try:
            res = await self._compose("config", "-q", timeout_s=self._settings.command_timeout_s)
        except ComposeError as exc:
            return [str(exc)]
        if res.ok:
            return []
        lines = [ln.strip() for ln in (res.stderr or res.stdout).splitlines() if ln.strip()]
        return lines or [f"compose config: exit {res.returncode}"]

    async def images(self) -> list[str]:
        """Image references the compose file uses (``config --images`` where compose has it
        (v2), else parsed from the normalized ``config`` output (v1 1.29 has no --images)).
        Cached until the compose file's mtime or size changes (the standby asks often)."""
        try:
            st = self._settings.compose_file.stat()
            key: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except OSError:
            key = None
        if key is not None and self._images_cache is not None and self._images_cache[0] == key:
            return list(self._images_cache[1])
        images = await self._images_uncached()
        if key is not None:
            self._images_cache = (key, images)
        return list(images)

    async def _images_uncached(self) -> list[str]:
        timeout = self._settings.command_timeout_s
        res = await self._compose("config", "--images", timeout_s=timeout)
        # v1 1.29 prints its usage on stderr and exits 0 for an unknown config option.
        if res.ok and res.stdout.strip():
            return parse_image_list(res.stdout)
        res = await self._compose("config", timeout_s=timeout)
        if not res.ok:
            raise ComposeFailed(f"compose config: exit {res.returncode}: {detail(res)}")
        return parse_config_images(res.stdout)
