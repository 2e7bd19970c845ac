"""Per-command CPU of a process tree from the kernel's BSD process accounting (acct(2)).

While accounting is on, the kernel appends one record to a file for EVERY process that exits
on the machine (struct acct_v3: pid, ppid, command name, user and system time, elapsed
time).  ``Accounting`` turns it on for a window; ``descendants`` keeps the records of the
processes started, directly or not, by the given PIDs (the daemons), so a short-lived
``rbd`` or ``dd`` between two samples is counted as surely as a long one.

Resolution: the kernel stores each process's times in ticks of 1/100 s, rounded down, so a
process that used 4 ms shows 0: summed per command the figure is a lower bound, and the
difference to the parent's reaped-children time (cutime + cstime, exact) is printed as
"unattributed".  Accounting is global (one file for the whole machine); it is switched off
in ``__exit__`` whatever happens.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

RECORD = struct.Struct("<bbHIIIIIIf8H16s")
"""struct acct_v3 (linux/acct.h): flag, version, tty, exitcode, uid, gid, pid, ppid, btime,
etime (float, AHZ ticks), utime, stime, mem, io, rw, minflt, majflt, swaps (comp_t), comm."""
AHZ = 100
ACCT_VERSION_3 = 3


@dataclass(frozen=True)
class Exited:
    pid: int
    ppid: int
    comm: str
    cpu_s: float
    started: int  # wall clock, whole seconds
    elapsed_s: float

    def alive_at(self, when: int) -> bool:
        """Did this process run at second ``when`` (1 s of slack for the rounding)?"""
        return self.started - 1 <= when <= self.started + self.elapsed_s + 1


def _comp(value: int) -> int:
    """Decode a comp_t: 13-bit mantissa, 3-bit base-8 exponent."""
    return (value & 0x1FFF) << (3 * ((value >> 13) & 7))


def parse(data: bytes) -> list[Exited]:
    out: list[Exited] = []
    for off in range(0, len(data) - RECORD.size + 1, RECORD.size):
        f = RECORD.unpack_from(data, off)
        if f[1] != ACCT_VERSION_3:
            raise ValueError(f"acct record version {f[1]} (expected 3) at offset {off}")
        comm = f[18].split(b"\0", 1)[0].decode(errors="replace")
        cpu = (_comp(f[10]) + _comp(f[11])) / AHZ
        out.append(
            Exited(pid=f[6], ppid=f[7], comm=comm, cpu_s=cpu, started=f[8], elapsed_s=f[9] / AHZ)
        )
    return out


def descendants(records: list[Exited], roots: Collection[int]) -> dict[int, list[Exited]]:
    """root PID -> the records of its descendants (children, grandchildren, ...).  The roots
    live all along (their PIDs are never reused meanwhile); an exited parent is the record
    with that PID that ran when the child started (PIDs are reused quickly on a busy machine).
    """
    by_pid: dict[int, list[Exited]] = {}
    for r in records:
        by_pid.setdefault(r.pid, []).append(r)
    out: dict[int, list[Exited]] = {root: [] for root in roots}

    def root_of(r: Exited, depth: int = 0) -> int | None:
        if r.ppid in out:
            return r.ppid
        parent = next((p for p in by_pid.get(r.ppid, ()) if p.alive_at(r.started)), None)
        return None if parent is None or depth > 50 else root_of(parent, depth + 1)

    for r in records:
        root = root_of(r)
        if root is not None:
            out[root].append(r)
    return out


class Accounting:
    """``with Accounting(path) as acct: ...; acct.records()`` (root only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._libc = ctypes.CDLL(None, use_errno=True)

    def __enter__(self) -> Accounting:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"")
        if self._libc.acct(str(self.path).encode()) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"acct({self.path}): {os.strerror(err)}")
        return self

    def stop(self) -> None:
        self._libc.acct(None)

    def __exit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def records(self) -> list[Exited]:
        return parse(self.path.read_bytes())
