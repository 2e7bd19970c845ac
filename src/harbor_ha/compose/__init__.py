"""Harbor's containers through docker compose (v2 ``docker compose`` or v1 ``docker-compose``)
and the docker CLI.

Stopping never trusts compose alone: whatever ``compose down`` did, the project's containers
(label ``com.docker.compose.project``) are killed and removed by label and the result is
verified (safety rule 6).  Modules: :mod:`.argv` (command lines), :mod:`.parse` (outputs,
pure), :mod:`.errors`, :mod:`.adapter` (:class:`Compose`).
"""

from harbor_ha.compose.adapter import VERIFY_POLL_S, Compose
from harbor_ha.compose.argv import PROJECT_LABEL
from harbor_ha.compose.errors import (
    ComposeError,
    ComposeFailed,
    ComposeNotFound,
    ComposeStillRunning,
)
from harbor_ha.compose.parse import parse_config_images

__all__ = [
    "PROJECT_LABEL",
    "VERIFY_POLL_S",
    "Compose",
    "ComposeError",
    "ComposeFailed",
    "ComposeNotFound",
    "ComposeStillRunning",
    "parse_config_images",
]
