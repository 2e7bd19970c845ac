"""Rise/fall debouncing of a stream of probe results (pure: no I/O, no clock)."""

from __future__ import annotations


class Debouncer:
    """Turns raw ok/not-ok results into a stable value.

    The value becomes True after ``rise`` consecutive good results and False after ``fall``
    consecutive bad ones; it never changes otherwise.  With ``initial=None`` the value is
    undecided (None) until the first run of ``rise`` goods or ``fall`` bads.
    """

    def __init__(self, rise: int, fall: int, initial: bool | None = None) -> None:
        if rise < 1 or fall < 1:
            raise ValueError(f"rise and fall must be >= 1 (got rise={rise}, fall={fall})")
        self.rise = rise
        self.fall = fall
        self._value = initial
        self._good = 0
        self._bad = 0

    @property
    def value(self) -> bool | None:
        """The debounced value (None: not decided yet)."""
        return self._value

    def update(self, ok: bool) -> bool | None:
        """Feed one result; returns the new value when it changes (or is first decided),
        else None."""
        if ok:
            self._good += 1
            self._bad = 0
            if self._value is not True and self._good >= self.rise:
                self._value = True
                return True
        else:
            self._bad += 1
            self._good = 0
            if self._value is not False and self._bad >= self.fall:
                self._value = False
                return False
        return None

    def __repr__(self) -> str:
        return f"Debouncer(rise={self.rise}, fall={self.fall}, value={self._value})"
