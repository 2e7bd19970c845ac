"""Debouncer: exhaustive over short result sequences, and a hypothesis property."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harbor_ha.probes.debounce import Debouncer


def reference(rise: int, fall: int, initial: bool | None, seq: list[bool]) -> list[bool | None]:
    """Straightforward model: value after each step, from the trailing run length."""
    value = initial
    values: list[bool | None] = []
    for i in range(len(seq)):
        run = 1
        while run <= i and seq[i - run] == seq[i]:
            run += 1
        if seq[i] and run >= rise:
            value = True
        elif not seq[i] and run >= fall:
            value = False
        values.append(value)
    return values


@pytest.mark.parametrize("initial", [None, True, False])
@pytest.mark.parametrize("rise", [1, 2, 3])
@pytest.mark.parametrize("fall", [1, 2, 3])
def test_exhaustive_matches_reference(rise: int, fall: int, initial: bool | None) -> None:
    """For every ok/bad sequence up to length 8, value and flip notifications match the model:
    update() returns the new value exactly when it changes, None otherwise."""
    for n in range(9):
        for seq in itertools.product([True, False], repeat=n):
            d = Debouncer(rise, fall, initial)
            expected = reference(rise, fall, initial, list(seq))
            previous = initial
            for ok, want in zip(seq, expected, strict=True):
                flip = d.update(ok)
                assert d.value == want, (rise, fall, initial, seq)
                assert flip == (want if want != previous else None), (rise, fall, initial, seq)
                previous = want


def test_undecided_until_first_run() -> None:
    """With initial=None the value stays None until rise goods or fall bads in a row."""
    d = Debouncer(rise=2, fall=3)
    assert d.value is None
    assert d.update(True) is None
    assert d.update(False) is None
    assert d.update(False) is None
    assert d.value is None
    assert d.update(False) is False
    assert d.value is False


def test_rejects_zero_counts() -> None:
    """rise and fall must be at least 1."""
    with pytest.raises(ValueError):
        Debouncer(0, 1)
    with pytest.raises(ValueError):
        Debouncer(1, 0)


@given(
    rise=st.integers(1, 5),
    fall=st.integers(1, 5),
    initial=st.sampled_from([None, True, False]),
    seq=st.lists(st.booleans(), max_size=60),
)
def test_never_flips_without_consecutive_results(
    rise: int, fall: int, initial: bool | None, seq: list[bool]
) -> None:
    """A flip to True is always preceded by >= rise consecutive goods (to False: >= fall bads),
    and the value never changes without a flip being reported."""
    d = Debouncer(rise, fall, initial)
    for i, ok in enumerate(seq):
        before = d.value
        flip = d.update(ok)
        run = 1
        while run <= i and seq[i - run] == ok:
            run += 1
        if flip is not None:
            assert flip == ok
            assert run >= (rise if ok else fall)
            assert flip != before
        else:
            assert d.value == before
