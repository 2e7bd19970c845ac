"""How the lab's registry client counts a failover's pulls (lab/traffic.first_good_pull): the
figures of the e2e registry module, the data row and bench.failover --stack registry."""

from __future__ import annotations

from pathlib import Path

from lab.traffic import Load, Traffic, first_good_pull

T0 = 100.0


def test_outage_after_the_fault_ends_at_the_first_good_pull() -> None:
    """A crash: every pull after the fault fails until the taker serves; the figure is the end
    of the first good pull after them, and every failure counts."""
    pulls = [(99.0, 99.5, True), (100.2, 101.0, False), (101.2, 102.0, False),
             (102.2, 103.4, True), (103.6, 104.0, True)]  # fmt: skip
    assert first_good_pull(pulls, T0) == (3.4, 2)


def test_good_pulls_on_the_old_master_before_the_outage_do_not_end_it() -> None:
    """An unhealthy handover: the old master's registry serves pulls until its demotion stops
    it; the outage after them is what the figure measures (not the first pull after the
    fault, which the old master answered)."""
    pulls = [(100.1, 100.5, True), (100.7, 101.0, True), (101.2, 101.3, False),
             (101.5, 101.6, False), (101.8, 105.0, False), (105.2, 106.25, True)]  # fmt: skip
    assert first_good_pull(pulls, T0) == (6.25, 3)


def test_no_failure_is_the_first_good_pull_after_the_fault() -> None:
    """Nothing failed (the client never saw the failover): the first good pull after the
    fault, 0 failed; pulls that began before the fault do not count."""
    pulls = [(99.0, 100.5, False), (100.6, 101.0, True)]
    assert first_good_pull(pulls, T0) == (1.0, 0)


def test_still_failing_has_no_first_pull() -> None:
    """No good pull after the last failure yet: None (the callers poll or fail on it)."""
    pulls = [(100.1, 100.9, True), (101.0, 102.0, False)]
    assert first_good_pull(pulls, T0) == (None, 1)


def _load_with(pulls: list[tuple[float, float, bool]]) -> Load:
    load = Load(Traffic("unused", "10.0.0.1", Path("/nonexistent"), Path("/nonexistent")))
    for began, ended, ok in pulls:
        load.pull_starts.append(began)
        load.pulls.attempts.append((ended, ok))
    return load


def test_a_success_on_the_old_master_is_not_a_pull_since_the_takeover() -> None:
    """The e2e's wait for the taker: pulls answered by the old master after the fault, then
    one that hangs through the outage (still in flight), are no pull begun after the taker
    became MASTER; only a good pull begun after that instant is."""
    load = _load_with([(100.1, 100.5, True), (100.7, 101.0, True)])
    assert not load.pulled_since(104.0)
    load.pull_starts.append(100.9)
    load.pulls.attempts.append((121.0, False))  # the hung pull, killed at skopeo's timeout
    assert not load.pulled_since(104.0)
    load.pull_starts.append(121.2)
    load.pulls.attempts.append((121.6, True))
    assert load.pulled_since(104.0)
