"""Errors of the keepalived adapter: one base, one subclass per failure kind."""

from __future__ import annotations

from pathlib import Path


class KeepalivedError(Exception):
    """Base of every error the keepalived adapter raises."""


class BadFifoLine(KeepalivedError):
    """A notify_fifo line that is not one keepalived writes; ``reason`` says why."""

    def __init__(self, line: str, reason: str) -> None:
        shown = line if len(line) <= 120 else line[:120] + "..."
        super().__init__(f"bad notify_fifo line {shown!r}: {reason}")
        self.line = line
        self.reason = reason


class FifoError(KeepalivedError):
    """The notify FIFO cannot be created, opened or read (e.g. the path is not a FIFO)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"notify FIFO {path}: {reason}")
        self.path = path
        self.reason = reason


class TrackFileError(KeepalivedError):
    """A track file cannot be written or read; names the path."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"track file {path}: {reason}")
        self.path = path
        self.reason = reason


class RenderError(KeepalivedError):
    """The settings cannot be rendered into a safe keepalived.conf."""


class VipCheckError(KeepalivedError):
    """Whether the VIP is on the interface cannot be told (interface missing, ip failed)."""
