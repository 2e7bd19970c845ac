"""Settings of the replicated mode's watch of Harbor's replication (the rbd mode ignores
them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from harbor_ha.settings.units import Seconds


class ReplicationSettings(BaseModel):
    """Where the pair's Harbor accounts are, and how often and how long the watch asks."""

    replication_credentials_file: Path = Field(
        default=Path("/etc/harbor-ha/replication.ini"),
        description=(
            "Replicated mode: the pair's Harbor accounts, one INI section per node name "
            "(url, username, password; root-only, 0600), the file `harbor-ha replication "
            "setup` reads. The daemon watches this node's section's Harbor and probes the "
            "other's. Missing: a warning once, and status says replication is not configured."
        ),
    )
    replication_watch_interval_s: Seconds = Field(
        default=30.0,
        description=(
            "Replicated mode: seconds between two looks at replication (the latest execution "
            "of this node's policy, a probe of the peer's Harbor). 30 s: an execution's status "
            "matters in minutes, not seconds (the alerts wait longer), and the peer counts as "
            "down after 2 failed probes in a row, so an outage of a minute or more is seen and "
            "its catch-up run started within a minute of the peer's return."
        ),
    )
    replication_timeout_s: Seconds = Field(
        default=5.0,
        description=(
            "Replicated mode: seconds each call of the watch to a Harbor's API may take (at "
            "most four per look). 5 s: Harbor answers them in milliseconds when well, a busy "
            "core within seconds, and four bounded calls stay inside the 30 s interval."
        ),
    )
