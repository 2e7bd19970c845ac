"""Whether the peer's Harbor is down, and the catch-up run its return owes (pure: no I/O).

Harbor does not retry an event-based push that failed while the destination was down: the
artifacts pushed here during the peer's outage reach it only by a full run of the policy.
So when the peer's Harbor answers again after ``down_after`` failed probes in a row, one
manual execution is owed; it is paid once (or given up when its outcome is unknown), and a
new outage cancels a debt not paid yet (its own return owes the run).

An outage shorter than ``down_after`` probes is never seen as one, yet the pushes made in it
failed too: so an event-based execution that failed, newer than any the watch has answered,
also owes one run (:meth:`PeerRecovery.executions`).  The run is started only while the peer
answers (``payable``); a manual run that fails owes nothing more (its failure is the
HarborHaReplicationFailed alert's, not a retry loop's)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DOWN_AFTER = 2
"""Failed probes in a row before the peer counts as down: one slow answer is not an outage,
two in a row (a watch interval apart) are."""


@dataclass
class PeerRecovery:
    down_after: int = DOWN_AFTER
    failures: int = 0
    down: bool = False
    owed: bool = False

    def probed(self, ok: bool) -> str | None:
        """Record one probe; "down" when the peer just became down, "back" when it just came
        back (a catch-up is now owed), else None."""
        if ok:
            self.failures = 0
            if self.down:
                self.down, self.owed = False, True
                return "back"
            return None
        self.failures += 1
        if not self.down and self.failures >= self.down_after:
            self.down, self.owed = True, False
            return "down"
        return None

    answered: int = -1  # the newest execution id already looked at (-1: none yet)

    def executions(self, recent: Iterable[Mapping[str, Any]]) -> bool:
        """Record the policy's newest executions (any order); True when one of them is an
        event-based execution that failed and is newer than every execution looked at before:
        a push the peer missed, which Harbor will not retry (one run is then owed).  A failure
        older than the newest execution already looked at owes nothing again."""
        failed = False
        newest = self.answered
        for ex in recent:
            ident = ex.get("id")
            if not isinstance(ident, int) or ident <= self.answered:
                continue
            newest = max(newest, ident)
            if ex.get("trigger") == "event_based" and ex.get("status") == "Failed":
                failed = True
        self.answered = newest
        if failed:
            self.owed = True
        return failed

    @property
    def payable(self) -> bool:
        """A catch-up is owed and the peer answers (a run now would reach it)."""
        return self.owed and not self.down and self.failures == 0

    def paid(self) -> None:
        """The catch-up was started (or may have been: never asked twice)."""
        self.owed = False
