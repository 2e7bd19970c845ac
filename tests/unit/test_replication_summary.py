"""The pure parts of the replicated mode's replication watch: the summary of a policy's latest
execution (harbor_ha.replication.summary) and the peer's outages, each owing one catch-up
run (harbor_ha.replication.recovery)."""

from __future__ import annotations

import datetime
from typing import Any

import harbor_client.models as models
import pytest
from harbor_client.api_client import ApiClient

from harbor_ha.commands.views import ago, replication_text
from harbor_ha.replication.recovery import PeerRecovery
from harbor_ha.replication.summary import NONE, UNKNOWN, parse_time, summarise

NOW = datetime.datetime(2026, 12, 7, 6, 0, 0, tzinfo=datetime.UTC).timestamp()


def execution(**fields: Any) -> dict[str, Any]:
    """A ReplicationExecution as Harbor serializes it (Go's RFC 3339 with nanoseconds)."""
    base = {
        "id": 7, "policy_id": 3, "status": "Succeed", "trigger": "event_based",
        "start_time": "2026-12-07T05:58:00.123456789Z",
        "end_time": "2026-12-07T05:59:00.5Z", "status_text": "", "total": 4, "failed": 0,
        "succeed": 4, "in_progress": 0, "stopped": 0,
    }  # fmt: skip
    return {**base, **fields}


def test_the_example_executions_are_harbors_model() -> None:
    """The executions these tests summarise deserialize as Harbor's ReplicationExecution
    (the model generated from Harbor's swagger), times included."""
    (parsed,) = ApiClient()._ApiClient__deserialize([execution()], "list[ReplicationExecution]")
    assert isinstance(parsed, models.ReplicationExecution) and parsed.failed == 0
    assert parsed.end_time.timestamp() == pytest.approx(NOW - 59.5)


def test_a_finished_execution_is_aged_from_its_end() -> None:
    """Succeed or Failed: the status, the items failed of the total, the age since end_time,
    the id and the trigger."""
    s = summarise("harbor-ha-to-b", 3, execution(), NOW)
    assert (s.status, s.failed, s.total, s.execution_id) == ("Succeed", 0, 4, 7)
    assert s.age_s == pytest.approx(59.5) and s.trigger == "event_based"
    f = summarise("harbor-ha-to-b", 3, execution(status="Failed", failed=2), NOW)
    assert (f.status, f.failed, f.total) == ("Failed", 2, 4)


@pytest.mark.parametrize("end", ["0001-01-01T00:00:00Z", "", None])
def test_a_running_execution_is_aged_from_its_start(end: str | None) -> None:
    """InProgress has no end yet (Go's zero time, empty or absent): the age is since
    start_time."""
    s = summarise("p", 3, execution(status="InProgress", end_time=end), NOW)
    assert s.status == "InProgress" and s.age_s == pytest.approx(120 - 0.123456, abs=1e-3)


def test_no_execution_and_odd_answers() -> None:
    """No execution yet: status none, no age, no items; a status none of Harbor's four reads
    unknown; times that do not parse give no age; a Harbor clock ahead of ours gives age 0;
    a long status_text is cut."""
    none = summarise("p", 3, None, NOW)
    assert (none.status, none.age_s, none.failed, none.total) == (NONE, None, 0, 0)
    odd = summarise(
        "p", 3, execution(status="Running", start_time="soon", end_time=None, total=None), NOW
    )
    assert (odd.status, odd.age_s, odd.total) == (UNKNOWN, None, 0)
    ahead = summarise("p", 3, execution(end_time="2026-12-07T06:00:05Z"), NOW)
    assert ahead.age_s == 0
    assert len(summarise("p", 3, execution(status_text="x" * 999), NOW).status_text) == 200
    assert parse_time("2026-12-07T06:00:00") == NOW  # no zone: UTC, as Harbor writes


def test_the_peer_is_down_after_two_failed_probes_and_its_return_owes_one_run() -> None:
    """One failed probe is not an outage; two in a row are ("down" once); the first good probe
    after is "back" and owes one run, paid once; a new outage cancels an unpaid debt (its own
    return owes the run)."""
    r = PeerRecovery()
    assert [r.probed(ok) for ok in (True, False, True)] == [None, None, None]
    assert not r.owed
    assert [r.probed(ok) for ok in (False, False, False)] == [None, "down", None]
    assert not r.owed
    assert r.probed(True) == "back" and r.owed
    assert r.probed(True) is None and r.owed  # not paid yet: still owed, not owed twice
    r.paid()
    assert not r.owed and r.probed(True) is None and not r.owed
    r.probed(False), r.probed(False), r.probed(True)
    assert r.owed
    assert r.probed(False) is None and r.probed(False) == "down" and not r.owed


def test_the_status_line_of_the_watch() -> None:
    """What `status` and `list` print of /status's "replication": "-" in the rbd mode, "not
    configured", the latest execution with its age, an unreachable peer, a failing watch."""
    assert replication_text(None) == "-"
    assert replication_text({"configured": False, "problem": "x: no such file"}) == (
        "not configured"
    )
    assert "x: no such file" in replication_text(
        {"configured": False, "problem": "x: no such file"}, long=True
    )
    last = summarise("harbor-ha-to-b", 3, execution(status="Failed", failed=1), NOW).as_dict()
    rep = {"configured": True, "last": last, "peer": "b", "peer_reachable": False}
    assert replication_text(rep) == "Failed 59 s ago; peer b unreachable"
    long = replication_text({**rep, "problem": "HTTP 401"}, long=True)
    assert "1 of 4 items failed (harbor-ha-to-b, event_based)" in long and "HTTP 401" in long
    assert ago(7200) == "2 h ago" and ago(None) == "at an unknown time"
