"""fsck exit code -> verdict (docs/design.md, safety rule 4), as a pure mapping."""

from __future__ import annotations

import pytest

from harbor_ha.filesystem import FsckOutcome, FsckVerdict, fsck_verdict


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (0, FsckVerdict.CLEAN),
        (1, FsckVerdict.CORRECTED),
        (2, FsckVerdict.REBOOT_ADVISED),
        (3, FsckVerdict.REBOOT_ADVISED),  # corrected + reboot advised (bit mask)
        (4, FsckVerdict.FAILED),
        (8, FsckVerdict.FAILED),
        (12, FsckVerdict.FAILED),
        (32, FsckVerdict.FAILED),
        (-9, FsckVerdict.FAILED),  # killed by a signal
    ],
)
def test_fsck_exit_codes(code: int, verdict: FsckVerdict) -> None:
    """0 clean, 1 corrected and 2/3 reboot-advised go on; >= 4 or a signal aborts."""
    assert fsck_verdict(code) is verdict


def test_outcome_carries_its_verdict() -> None:
    """FsckOutcome exposes the verdict of its code for logs and metrics."""
    assert FsckOutcome(code=1, duration_s=0.1, summary="fixed").verdict is FsckVerdict.CORRECTED
