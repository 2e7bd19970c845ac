"""keepalived track files: how fit this node is, written atomically.

keepalived watches each track file by inotify and reads it as a number:
leading ``0`` means octal to it, so we write plain decimal and a newline.
A reader must never see a half-written file, so every write goes to a temp
file in the same directory and is renamed over the target.  No fsync: the
files are written on the event loop, and a disk that stalls must not stop it
(the lease's renewals run there); they live in /run and every start rewrites
them, so durability across a crash buys nothing.

Two files (see render.py): the *priority* file (1 = ready, 0 = not; weighted)
and the weight-0 *fault* file (non-zero puts keepalived in FAULT at once).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import structlog

from harbor_ha.keepalived.errors import TrackFileError

log = structlog.get_logger(__name__)

_NUMBER_RE = re.compile(r"-?[0-9]+")


def write_track_file(path: Path, value: int) -> None:
    """Atomically replace ``path`` with ``value`` in plain decimal + newline."""
    path = Path(path)
    content = f"{int(value)}\n".encode("ascii")
    directory = path.parent
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.write(fd, content)
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise TrackFileError(path, f"cannot write: {exc.strerror or exc}") from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def read_track_file(path: Path) -> int | None:
    """The number in ``path``; None when it is missing, empty or not a plain number."""
    raw = _read_raw(Path(path))
    if raw is None:
        return None
    text = raw.decode("ascii", "replace").strip()
    if not _NUMBER_RE.fullmatch(text):
        return None
    return int(text)


def _read_raw(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(64)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TrackFileError(path, f"cannot read: {exc.strerror or exc}") from exc


class TrackFiles:
    """The priority file (1 ready / 0 not) and the fault file (1 fault / 0 clear).

    Writes happen only when the file's content differs from what we want: the
    content is read back on every call, so a file deleted or changed behind
    our back is rewritten at the next call.
    """

    def __init__(
        self,
        priority_path: Path,
        fault_path: Path,
        *,
        initial_ready: bool = False,
        initial_fault: bool = True,
    ) -> None:
        self.priority_path = Path(priority_path)
        self.fault_path = Path(fault_path)
        self.initial_ready = initial_ready
        self.initial_fault = initial_fault

    def ensure(self, *, keep_existing: bool = False) -> None:
        """Write both files with the initial values (not ready, fault on by default).

        A just-started node must not attract the VIP before it reconciled, hence
        fault on. ``keep_existing=True`` leaves a file that already holds a
        plain 0 or 1 alone (e.g. a daemon restarting on the MASTER it found
        healthy must not put it in FAULT); missing or garbage files still get
        the initial value. Creates the parent directories if missing.
        """
        for path, value in (
            (self.priority_path, int(self.initial_ready)),
            (self.fault_path, int(self.initial_fault)),
        ):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TrackFileError(path, f"cannot create directory: {exc}") from exc
            if keep_existing and _read_raw(path) in (b"0\n", b"1\n"):
                log.info("track_file_kept", path=str(path), value=read_track_file(path))
                continue
            write_track_file(path, value)
            log.info("track_file_initialised", path=str(path), value=value)

    def set_ready(self, ready: bool) -> bool:
        """Priority file := 1 if ready else 0. True when the file was (re)written."""
        return self._set(self.priority_path, int(ready), "priority")

    def set_fault(self, on: bool) -> bool:
        """Fault file := 1 if on else 0. True when the file was (re)written."""
        return self._set(self.fault_path, int(on), "fault")

    @property
    def priority_value(self) -> int | None:
        """The priority file's number now (None if missing or garbage)."""
        return read_track_file(self.priority_path)

    @property
    def fault_value(self) -> int | None:
        """The fault file's number now (None if missing or garbage)."""
        return read_track_file(self.fault_path)

    def _set(self, path: Path, value: int, which: str) -> bool:
        wanted = f"{value}\n".encode("ascii")
        current = _read_raw(path)
        if current == wanted:
            return False
        write_track_file(path, value)
        log.info(
            "track_file_written",
            which=which,
            path=str(path),
            value=value,
            was=None if current is None else current.decode("ascii", "replace").strip()[:20],
        )
        return True
