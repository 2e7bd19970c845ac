"""The compose adapter's errors."""

from __future__ import annotations


class ComposeError(Exception):
    """Base of this package's errors."""


class ComposeNotFound(ComposeError):
    """Neither ``docker compose`` (v2) nor ``docker-compose`` (v1) works."""


class ComposeFailed(ComposeError):
    """A compose or docker command failed (exit status, timeout or missing executable)."""


class ComposeStillRunning(ComposeError):
    """Containers of the project are still running after stop/kill."""

    def __init__(
        self, project: str, ids: list[str], what: str = "running after stop and kill"
    ) -> None:
        super().__init__(
            f"project {project}: {len(ids)} container(s) still {what}: "
            + " ".join(i[:12] for i in ids)
        )
        self.ids = ids
