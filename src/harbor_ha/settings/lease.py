"""Settings of the leadership lease in Ceph (issue 10) and of the failsafe to come."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class LeaseSettings(BaseModel):
    """The lease: a cls_lock exclusive lock with a duration on one RADOS object."""

    lease_object: str = Field(
        default="harbor-ha.lease",
        description=(
            "RADOS object in ceph_pool that carries the lease's lock (created by the first "
            "lock). The documented osd caps cover the prefix harbor-ha.lease."
        ),
    )
    lease_duration_s: int = Field(
        default=5,
        ge=2,
        description=(
            "Lock duration in whole seconds (cls_lock takes seconds). A peer can take the "
            "lease this long after the holder's last renewal; the master demotes itself "
            "before that (lease_margin_s). It bounds how long a frozen master blocks a "
            "failover on top of the existing detection; it must exceed several renewals "
            "so one slow Ceph answer does not demote."
        ),
    )
    lease_renew_interval_s: float = Field(
        default=0.5,
        gt=0,
        description=(
            "Renewal period of the master (also while it demotes cleanly, until it releases), "
            "the standby's lease watch while BACKUP, and its poll while the holder renews. "
            "Issue 10: the lease should add at most about one interval to a crash failover "
            "(with 0.1 s adverts: up to this + lease_stale_margin_s + the watch - keepalived's "
            "0.3 s hand-over, plus agent round trips; nothing at the default adverts); the "
            "stale judgment needs two reads this + lease_stale_margin_s apart, the first of "
            "them usually made by the watch before the promotion, so 0.5 s."
        ),
    )
    lease_watch_interval_s: float | None = Field(
        default=None,
        gt=0,
        description=(
            "How often a standby looks at the lease while BACKUP (one agent round trip "
            "each). A crash failover's lease step counts from the standby's first look at "
            "the dead holder's last expiry, which comes up to this long after that last "
            "renewal, and ends lease_renew_interval_s + lease_stale_margin_s after that "
            "look; keepalived hands the VIP over no sooner than 3 x vrrp_advert_interval_s "
            "after the crash. Unset: the slowest watch that still ends the judgment by then, "
            "3 x vrrp_advert_interval_s - lease_renew_interval_s - lease_stale_margin_s, "
            "kept within 0.1-1 s (0.75 s at the defaults, 0.1 s with 0.1 s adverts): a "
            "faster watch costs the standby CPU (one Ceph read each) and saves nothing."
        ),
    )
    lease_stale_margin_s: float = Field(
        default=0.25,
        ge=0,
        description=(
            "A standby finding the lease held judges the holder's expiry from two reads "
            "lease_renew_interval_s + this apart (the first may be its BACKUP watch's earliest "
            "look at that expiry): unchanged means the holder stopped "
            "renewing (it is fenced, then its lock broken); moved means it is alive (it is "
            "never fenced). Covers a renewal's jitter (timer lateness, Ceph's answer time)."
        ),
    )
    lease_margin_s: float = Field(
        default=1.5,
        gt=0,
        description=(
            "Self-demotion margin: the master's deadline is its last successful renewal "
            "+ lease_duration_s - lease_margin_s on the monotonic clock, so it stops "
            "serving before a peer could take an unfenced lease (the margin covers timer "
            "lateness and clock-rate differences, not the stop step: the deadline's demotion "
            "keeps renewing until it releases the lease, however long stop_timeout_s lets "
            "`compose stop` take)."
        ),
    )
    lease_op_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description=(
            "rados_osd_op_timeout/rados_mon_op_timeout of the lease agent: no lease call "
            "blocks longer (the daemon's own bound is this + 1 s, then the agent is killed)."
        ),
    )
    rados_bin: str = Field(
        default="rados",
        description=(
            "rados executable (the operator's view of the lease object; harbor-ha reads and "
            "breaks the lock through its agent)."
        ),
    )
    lease_agent_python: str = Field(
        default="/usr/bin/python3",
        description="The Python that has python3-rados (Debian's system Python 3.11).",
    )
    failsafe_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Shared secret of the failsafe (the same on both nodes): HMAC-SHA256 key of the "
            "request and of the peer's 'I cannot reach Ceph either, and will not promote' "
            "answer. Unset: no failsafe (a master that cannot renew demotes at its deadline)."
        ),
    )
    failsafe_peer: str | None = Field(
        default=None,
        description="The peer's failsafe listener host:port (harbor-ha to harbor-ha).",
    )
    failsafe_listen: str | None = Field(
        default=None,
        description=(
            "host:port this node's failsafe listener binds (the peer's failsafe_peer); never "
            "the read-only HTTP port. Unset: this node answers no failsafe request."
        ),
    )
    failsafe_window_s: float = Field(
        default=15.0,
        gt=0,
        description=(
            "How long a peer's promise not to promote lasts. The master that got it serves "
            "until window - lease_margin_s - failsafe_request_timeout_s after the answer, "
            "and asks again while Ceph stays unreachable."
        ),
    )
    failsafe_request_timeout_s: float = Field(
        default=1.5,
        gt=0,
        description=(
            "Bound on one failsafe request (connect, the peer's Ceph probe, the answer). "
            "The master asks this long before its deadline (after lease_duration_s - "
            "lease_margin_s - lease_renew_interval_s - this without a renewal)."
        ),
    )
    failsafe_probe_timeout_s: float = Field(
        default=1.0,
        gt=0,
        description="The peer's Ceph probe (a read of the lease through its agent).",
    )

    @property
    def failsafe_enabled(self) -> bool:
        secret = self.failsafe_secret
        return secret is not None and bool(secret.get_secret_value()) and bool(self.failsafe_peer)
