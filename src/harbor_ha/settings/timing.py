"""Settings of time: the bound of every step, and the daemon's periods and backoff."""

from __future__ import annotations

from pydantic import BaseModel, Field

from harbor_ha.settings.units import Seconds


class TimeoutSettings(BaseModel):
    """The bound of every step and of one external command."""

    fence_timeout_s: Seconds = Field(
        default=30.0,
        description="Bound on fencing: rbd status + blocklist adds + watchers gone.",
    )
    map_timeout_s: Seconds = Field(
        default=30.0,
        description="Bound on rbd device map (and on unmap's force fallback).",
    )
    fsck_timeout_s: Seconds = Field(
        default=600.0,
        description="fsck of a large ext4 after a crash can take minutes.",
    )
    mount_timeout_s: Seconds = Field(
        default=30.0,
        description="Bound on mount itself (after fsck).",
    )
    format_timeout_s: Seconds = Field(
        default=600.0,
        description=(
            "Bound on the operator's format command (mkfs). mkfs.ext4 with lazy inode-table init "
            "takes seconds even on a large image; 10 min covers slow storage."
        ),
    )
    start_timeout_s: Seconds = Field(
        default=180.0,
        description="compose up until every container is healthy (Harbor's DB start is slow).",
    )
    stop_timeout_s: Seconds = Field(
        default=60.0,
        description="Bound on stopping Harbor (compose stop, kill by label).",
    )
    unmount_timeout_s: Seconds = Field(
        default=30.0,
        description="Bound on the staged unmount (umount, TERM, KILL, umount).",
    )
    unmount_term_grace_s: Seconds = Field(
        default=3.0,
        description="Wait after TERM to the mount's users before KILL.",
    )
    unmap_timeout_s: Seconds = Field(
        default=30.0,
        description="Bound on rbd device unmap (then -o force).",
    )
    command_timeout_s: Seconds = Field(
        default=15.0,
        description="Default timeout for one external command (probes, status queries).",
    )


class BehaviourSettings(BaseModel):
    """Periods, backoff, hold times and shutdown of the daemon."""

    tick_interval_s: Seconds = Field(
        default=1.0,
        description="Period of the VIP-vs-state check and the watchdog.",
    )
    vip_mismatch_ticks: int = Field(
        default=2,
        ge=1,
        description="Ticks the VIP must disagree with the state before acting without a FIFO line.",
    )
    backoff_initial_s: Seconds = Field(
        default=10.0,
        description="Fault hold after a failed promotion; doubles per consecutive failure.",
    )
    backoff_max_s: Seconds = Field(
        default=300.0,
        description="Cap of the doubling backoff: a broken node retries every 5 min at most.",
    )
    master_stable_s: Seconds = Field(
        default=60.0,
        description=(
            "MASTER this long forgets past failed promotions; until then the backoff keeps "
            "doubling, so two nodes fencing each other in a partition slow down."
        ),
    )
    fenced_self_retry_s: Seconds = Field(
        default=30.0,
        description="Period of the automatic retry of a demotion that ended in FENCED_SELF.",
    )
    switchover_hold_s: Seconds = Field(
        default=15.0,
        description="Fault file kept set after a switchover so the peer keeps the VIP.",
    )
    shutdown_timeout_s: Seconds = Field(
        default=30.0,
        description="Bound on the whole shutdown (running step, servers, tasks).",
    )
    stop_harbor_on_exit: bool = Field(
        default=False,
        description="Demote (stop Harbor, unmount, unmap) on SIGTERM. Off: a restart is hitless.",
    )
