"""The fault suite's count of fresh masters demoted on their own Harbor's health
(tests/faults/promotions.py), over harbor-ha JSON log lines as the daemon writes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tests.faults.promotions import tally


def line(at: float, frm: str, to: str, event: str, reason: str = "") -> str:
    ts = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    rec = {"msg": "transition", "timestamp": ts, "from": frm, "to": to, "event": event,
           "reason": reason}  # fmt: skip
    return json.dumps(rec)


def test_counts_promotions_and_only_uninjected_fresh_demotions(tmp_path: Path) -> None:
    """Three promotions; a demotion 5 s after one (nothing injected) counts; one after an
    injected switch does not; one 100 s after its promotion is not fresh."""
    log = tmp_path / "a.log"
    t = 1_800_000_000.0
    log.write_text(
        "\n".join([
            line(t, "STARTING", "MASTER", "STEP_DONE"),
            line(t + 5, "MASTER", "STOPPING", "HARBOR_UNHEALTHY", "registry unknown status"),
            line(t + 20, "STARTING", "MASTER", "STEP_DONE"),
            line(t + 25, "MASTER", "STOPPING", "HARBOR_UNHEALTHY", "core switched"),
            line(t + 40, "STARTING", "MASTER", "STEP_DONE"),
            line(t + 140, "MASTER", "STOPPING", "HARBOR_UNHEALTHY", "late"),
        ])
        + "\n"
    )  # fmt: skip
    result = tally({"a": log}, {"a": [t + 22]}, since=t - 1)
    assert result.promotions == 3
    assert (
        len(result.fresh_demotions) == 1 and "registry unknown status" in result.fresh_demotions[0]
    )
    assert "promotions to MASTER: 3" in result.line()
