"""Whether the peer's Harbor is down, and the catch-up run its return owes (pure: no I/O).

Harbor does not retry an event-based push that failed while the destination was down: the
artifacts pushed here during the peer's outage reach it only by a full run of the policy.
So when the peer's Harbor answers again after ``down_after`` failed probes in a row, one
manual execution is owed; it is paid once (or given up when its outcome is unknown), and a
new outage cancels a debt not paid yet (its own return owes the run)."""

from __future__ import annotations

from dataclasses import dataclass

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

    def paid(self) -> None:
        """The catch-up was started (or may have been: never asked twice)."""
        self.owed = False
