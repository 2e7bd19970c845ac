"""The notify_fifo line grammar, and cutting a byte stream into lines (pure: no I/O).

keepalived (2.2.7, ``vrrp_notify.c``) writes one line per event::

    INSTANCE "VI_1" MASTER 100        (also BACKUP, FAULT, STOP, DELETED)
    INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100
    INSTANCE "VI_1" MASTER_PRIORITY 90   (with notify_priority_changes)
    INSTANCE "VI_1" BACKUP_PRIORITY 150  (with notify_priority_changes)
    GROUP "G1" MASTER 0               (sync groups: the priority is always 0)

and its checker (``lvs_notify_fifo``, same file when ``notify_fifo`` is used)::

    VS [192.168.201.15]:tcp:80 UP
    RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN

keepalived prints ``{UNKNOWN}`` for a state it has no word for; we reject that as
a bad line (nothing can be decided on it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harbor_ha.keepalived.errors import BadFifoLine

VRRP_KINDS = frozenset({"INSTANCE", "GROUP"})
LVS_KINDS = frozenset({"VS", "RS"})
VRRP_STATES = frozenset(
    {
        "MASTER",
        "BACKUP",
        "FAULT",
        "STOP",
        "DELETED",
        "MASTER_RX_LOWER_PRI",
        "MASTER_PRIORITY",
        "BACKUP_PRIORITY",
    }
)
"""Every state word keepalived 2.2.7 writes for an instance or a group."""
LVS_STATES = frozenset({"UP", "DOWN"})

MAX_LINE_CHARS = 4096
"""Longest line accepted (keepalived's lines are < 300 bytes: names are short)."""

_VRRP_RE = re.compile(r'(INSTANCE|GROUP) "([^"\x00-\x1f\x7f]+)" (\S+) (\S+)')
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class FifoLine:
    """One parsed notify_fifo line."""

    kind: str
    """INSTANCE | GROUP | VS | RS"""
    name: str
    """Instance/group name without quotes; for VS the service, for RS "<real> <virtual>"."""
    state: str
    """MASTER, BACKUP, FAULT, STOP, DELETED, MASTER_RX_LOWER_PRI, MASTER_PRIORITY,
    BACKUP_PRIORITY (INSTANCE/GROUP) or UP, DOWN (VS/RS)."""
    priority: int | None
    """Effective priority (INSTANCE), 0 (GROUP), None (VS/RS)."""
    raw: str
    """The line as read, without its newline."""


def parse_line(line: str, *, max_chars: int = MAX_LINE_CHARS) -> FifoLine:
    """Parse one notify_fifo line; raise BadFifoLine (with a reason) for anything else."""
    raw = line[:-1] if line.endswith("\n") else line
    if len(raw) > max_chars:
        raise BadFifoLine(raw, f"too long ({len(raw)} > {max_chars} characters)")
    text = raw.rstrip("\r").strip(" \t")
    if not text:
        raise BadFifoLine(raw, "empty line")
    if _CONTROL_RE.search(text):
        raise BadFifoLine(raw, "garbage: control characters")
    kind = text.split(" ", 1)[0]
    if kind in VRRP_KINDS:
        return _parse_vrrp(raw, text)
    if kind in LVS_KINDS:
        return _parse_lvs(raw, text, kind)
    raise BadFifoLine(raw, f"garbage: unknown line type {kind[:40]!r}")


def _parse_vrrp(raw: str, text: str) -> FifoLine:
    match = _VRRP_RE.fullmatch(text)
    if match is None:
        raise BadFifoLine(raw, 'garbage: expected TYPE "NAME" STATE PRIORITY')
    kind, name, state, prio = match.groups()
    if state == "{UNKNOWN}":
        raise BadFifoLine(raw, "keepalived reported a state it has no word for ({UNKNOWN})")
    if state not in VRRP_STATES:
        raise BadFifoLine(raw, f"unknown state word {state[:40]!r}")
    if not (prio.isascii() and prio.isdigit() and len(prio) <= 3 and int(prio) <= 255):
        raise BadFifoLine(raw, f"bad priority {prio[:40]!r} (expected 0..255)")
    return FifoLine(kind=kind, name=name, state=state, priority=int(prio), raw=raw)


def _parse_lvs(raw: str, text: str, kind: str) -> FifoLine:
    parts = text.split()
    minimum = 3 if kind == "VS" else 4
    if len(parts) < minimum:
        raise BadFifoLine(raw, f"garbage: a {kind} line needs at least {minimum} fields")
    state = parts[-1]
    if state not in LVS_STATES:
        raise BadFifoLine(raw, f"unknown state word {state[:40]!r}")
    return FifoLine(kind=kind, name=" ".join(parts[1:-1]), state=state, priority=None, raw=raw)


class LineSplitter:
    """Cuts a byte stream into lines; discards a line past ``max_bytes`` up to its newline."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.buf = bytearray()
        self.discarding = False

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """Complete lines in ``data`` as (bytes, too_long); a too-long one is reported once."""
        out: list[tuple[bytes, bool]] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl == -1:
                if not self.discarding:
                    self.buf += data[start:]
                    if len(self.buf) > self.max_bytes:
                        out.append((bytes(self.buf[:200]), True))
                        self.buf.clear()
                        self.discarding = True
                return out
            if self.discarding:
                self.discarding = False
            else:
                self.buf += data[start:nl]
                if len(self.buf) > self.max_bytes:
                    out.append((bytes(self.buf[:200]), True))
                else:
                    out.append((bytes(self.buf), False))
                self.buf.clear()
            start = nl + 1

    def reset(self) -> bytes:
        """Forget the stream (EOF); return a pending partial line, if any."""
        rest = b"" if self.discarding else bytes(self.buf)
        self.buf.clear()
        self.discarding = False
        return rest
