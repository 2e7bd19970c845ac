"""What the driver's observations mean is the machine's decision (machine/verdicts.py): the
storage probe's findings, the lease step's judgment of a holder, a refused standby's poll."""

from __future__ import annotations

import pytest

from harbor_ha.machine import DEMOTING, Event, State
from harbor_ha.machine.verdicts import (
    CLAIM_BACK_LOOKS,
    STORAGE_EVENT,
    StorageFinding,
    lease_step_verdict,
    peer_poll_verdict,
    poll_verdict,
)

E = Event


def test_every_storage_finding_has_its_event_and_only_no_answer_is_stuck() -> None:
    """Each finding of the storage probe is decided: healthy (None), STORAGE_STUCK for a read
    without an answer (Ceph does not answer: the failsafe may keep the master serving), and
    STORAGE_LOST for every error (unmounted, read-only, unreadable, no device)."""
    assert set(STORAGE_EVENT) == set(StorageFinding)
    assert STORAGE_EVENT[StorageFinding.OK] is None
    assert {f for f, e in STORAGE_EVENT.items() if e is E.STORAGE_STUCK} == {
        StorageFinding.NO_ANSWER
    }
    others = set(StorageFinding) - {StorageFinding.OK, StorageFinding.NO_ANSWER}
    assert {STORAGE_EVENT[f] for f in others} == {E.STORAGE_LOST}


def test_a_holder_that_did_not_renew_is_stale_whatever_it_says() -> None:
    """The lease step: a holder whose expiry did not move is fenced (LEASE_STALE), even if
    its /status answers (a paused master's HTTP may answer from a stale process)."""
    for state in (None, "MASTER", "STOPPING"):
        assert lease_step_verdict(False, state) is E.LEASE_STALE


@pytest.mark.parametrize("state", sorted(str(s) for s in DEMOTING))
def test_a_renewing_holder_that_demotes_is_waited_for(state: str) -> None:
    """A holder that renews and says it is demoting (STOPPING, UNMOUNTING, UNMAPPING) will
    release the lease: LEASE_HOLDER_DEMOTING (the machine waits, bounded), never a fence."""
    assert lease_step_verdict(True, state) is E.LEASE_HOLDER_DEMOTING


@pytest.mark.parametrize("state", [None, "MASTER", "STARTING", "BACKUP", "garbage"])
def test_any_other_renewing_holder_refuses_the_promotion(state: str | None) -> None:
    """A holder that renews and is not demoting (or whose /status does not answer): the
    promotion is refused (LEASE_HELD_BY_PEER) and the holder is never fenced."""
    assert lease_step_verdict(True, state) is E.LEASE_HELD_BY_PEER


def test_poll_claims_back_a_free_lease_or_one_whose_expiry_stopped() -> None:
    """A refused standby's poll: the lease free -> claim back; the holder's expiry unchanged
    over CLAIM_BACK_LOOKS polls -> claim back; fewer looks, or a moving expiry -> the
    holder's state decides (None)."""
    assert poll_verdict(True, [])[0] is E.LEASE_CLAIM_BACK
    same = [5.0] * CLAIM_BACK_LOOKS
    assert poll_verdict(False, same)[0] is E.LEASE_CLAIM_BACK
    assert poll_verdict(False, same[:-1])[0] is None
    assert poll_verdict(False, [4.0, *same[1:]])[0] is None
    assert poll_verdict(False, [1.0, 2.0, 3.0])[0] is None


def test_a_renewing_holder_that_serves_means_the_partition_healed() -> None:
    """The holder renews: if its /status says MASTER (holding the lease) the partition
    healed (claim back: this node may be elected standby again); else keep waiting."""
    assert peer_poll_verdict(str(State.MASTER))[0] is E.LEASE_CLAIM_BACK
    for state in (None, "STOPPING", "BACKUP"):
        assert peer_poll_verdict(state)[0] is E.LEASE_PEER_RENEWS
