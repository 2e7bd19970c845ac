"""The FENCED_SELF clock behind HarborHaFencedSelfStillMapped (daemon/fenced.py), and the
metrics the alert compares it with, as the daemon wires them."""

from __future__ import annotations

from harbor_ha.daemon.build import Parts
from harbor_ha.daemon.fenced import FencedSelfClock
from harbor_ha.metrics import Metrics
from tests.unit.test_status import parts

__all__ = ["parts"]


def test_the_clock_runs_from_the_first_fenced_self_until_a_clean_backup() -> None:
    """FENCED_SELF starts the clock; its retries (through the demotion states, back to
    FENCED_SELF) do not restart it; only a clean end in BACKUP resets it to 0."""
    metrics = Metrics()
    clock = FencedSelfClock(metrics)

    def since() -> float | None:
        return metrics.registry.get_sample_value("harbor_ha_fenced_self_since_timestamp_seconds")

    for at, to, expected in [
        (100.0, "FENCED_SELF", 100.0),
        (130.0, "STOPPING", 100.0),
        (131.0, "UNMOUNTING", 100.0),
        (160.0, "FENCED_SELF", 100.0),
        (200.0, "BACKUP", 0.0),
        (300.0, "FENCED_SELF", 300.0),
    ]:
        clock({"at": at, "to": to})
        assert since() == expected, to


def test_the_daemon_exports_the_mapping_and_the_blocklist_expiry(parts: Parts) -> None:
    """harbor_ha_image_mapped follows the steps' device; harbor_ha_blocklist_expire_seconds is
    the configured expiry (the alert's threshold)."""
    reg = parts.metrics.registry
    assert reg.get_sample_value("harbor_ha_image_mapped") == 0
    parts.steps.adopt("/dev/rbd0")
    assert reg.get_sample_value("harbor_ha_image_mapped") == 1
    expire = reg.get_sample_value("harbor_ha_blocklist_expire_seconds")
    assert expire == parts.settings.blocklist_expire_s
