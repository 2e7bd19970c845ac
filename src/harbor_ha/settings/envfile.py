"""The env file, read with exactly the grammar of systemd's ``EnvironmentFile=``.

The one parser of /etc/harbor-ha/harbor-ha.env: the CLI and the daemon (``harbor-ha run``)
both read the file through it, and it gives the values systemd gives the service.  It is a
transcription of systemd's state machine (``parse_env_file_internal`` in src/basic/env-file.c,
as used by ``load_env_file``; then the exec step drops assignments whose name is not a valid
variable name, ``strv_env_clean``).  The rules, all systemd's:

- a line whose first non-blank character is ``#`` or ``;`` is a comment; there are NO inline
  comments: ``KEY=value  # note`` sets ``value  # note``;
- blanks around the key, after ``=`` and at the end of an unquoted value are dropped;
- ``'...'`` quotes literally; ``"..."`` unescapes ``\\"`` ``\\\\`` ``\\``` ``\\$`` and keeps
  the backslash before any other character; quotes open only at the start of a value (or right
  after a closing quote: ``K="a" "b"`` is ``ab``), elsewhere they are plain characters;
- outside quotes a backslash takes the next character literally; a backslash at the end of a
  line continues the value on the next line (inside double quotes too);
- no ``$VAR`` expansion, no ``export``: ``export K=v`` has the name ``export K``, which is not
  a valid name, so systemd drops it;
- the last assignment of a name wins.

Whatever systemd ignores or reads in a way an operator would not expect is returned as a
*problem* (with the values systemd would still give), and the loader makes each one an error:
a line without ``=``, an invalid name, an unterminated quote, and a comment ending in a
backslash (systemd before v254, e.g. Debian 12's v252, continues such a
comment onto the next line; v254 and later do not: this parser follows v252, the problem
makes the file mean the same on both).  A file systemd refuses as a whole (a NUL byte, not
UTF-8: the service does not start) raises :class:`EnvFileError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum, auto
from pathlib import Path

COMMENTS = "#;"
WHITESPACE = " \t\n\r"
NEWLINE = "\n\r"
SHELL_NEED_ESCAPE = '"\\`$'
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _S(Enum):
    PRE_KEY = auto()
    KEY = auto()
    PRE_VALUE = auto()
    VALUE = auto()
    VALUE_ESCAPE = auto()
    SINGLE_QUOTE = auto()
    DOUBLE_QUOTE = auto()
    DOUBLE_QUOTE_ESCAPE = auto()
    COMMENT = auto()
    COMMENT_ESCAPE = auto()


@dataclass
class EnvFile:
    """What an env file sets: systemd's values, and the lines it ignores or misreads."""

    values: dict[str, str] = field(default_factory=dict)
    """The environment systemd's EnvironmentFile= gives the service, in file order."""
    lines: dict[str, int] = field(default_factory=dict)
    """The line each name was (last) set on."""
    problems: list[tuple[int, str]] = field(default_factory=list)
    """(line, message) for each line systemd ignores or reads unexpectedly."""


def _append(buf: list[str], c: str, trailing_ws: int | None) -> int | None:
    """Append ``c``; return where the trailing run of blanks starts (None: no such run)."""
    buf.append(c)
    if c not in WHITESPACE:
        return None
    return len(buf) - 1 if trailing_ws is None else trailing_ws


class _Parser:
    def __init__(self) -> None:
        self.out = EnvFile()
        self.key: list[str] = []
        self.value: list[str] = []
        self.key_ws: int | None = None  # index of the key's trailing blanks
        self.value_ws: int | None = None  # index of the unquoted value's trailing blanks
        self.line = 1
        self.key_line = 1
        self.quote_line = 1
        self.state = _S.PRE_KEY

    def push(self, *, chomp: bool) -> None:
        if chomp and self.value_ws is not None:
            del self.value[self.value_ws :]
        if self.key_ws is not None:
            del self.key[self.key_ws :]
        name, value = "".join(self.key), "".join(self.value)
        self.key, self.value = [], []
        problems = self.out.problems
        if not _NAME.fullmatch(name):
            why = " (systemd has no 'export')" if name.startswith("export ") else ""
            problems.append((self.key_line, f"{name!r} is not a valid variable name{why}"))
            return
        self.out.values.pop(name, None)  # the last assignment wins (and keeps file order)
        self.out.values[name] = value
        self.out.lines[name] = self.key_line

    def no_equals(self) -> None:
        text = "".join(self.key).strip()
        self.out.problems.append((self.key_line, f"{text!r} has no '=' (systemd ignores it)"))
        self.key = []

    def feed(self, c: str) -> None:  # one branch per state, as in systemd
        s = self.state
        if c == "\n":
            self.line += 1
        if s is _S.PRE_KEY:
            if c in COMMENTS:
                self.state = _S.COMMENT
            elif c not in WHITESPACE:
                self.state, self.key_ws, self.key_line = _S.KEY, None, self.line
                self.key.append(c)
        elif s is _S.KEY:
            if c in NEWLINE:
                self.state = _S.PRE_KEY
                self.no_equals()
            elif c == "=":
                self.state, self.value_ws = _S.PRE_VALUE, None
            else:
                self.key_ws = _append(self.key, c, self.key_ws)
        elif s is _S.PRE_VALUE:
            if c in NEWLINE:
                self.state = _S.PRE_KEY
                self.push(chomp=False)
            elif c == "'":
                self.state, self.quote_line = _S.SINGLE_QUOTE, self.line
            elif c == '"':
                self.state, self.quote_line = _S.DOUBLE_QUOTE, self.line
            elif c == "\\":
                self.state = _S.VALUE_ESCAPE
            elif c not in WHITESPACE:
                self.state = _S.VALUE
                self.value.append(c)
        elif s is _S.VALUE:
            if c in NEWLINE:
                self.state = _S.PRE_KEY
                self.push(chomp=True)
            elif c == "\\":
                self.state, self.value_ws = _S.VALUE_ESCAPE, None
            else:
                self.value_ws = _append(self.value, c, self.value_ws)
        elif s is _S.VALUE_ESCAPE:
            self.state = _S.VALUE
            if c not in NEWLINE:
                self.value.append(c)
        elif s is _S.SINGLE_QUOTE:
            if c == "'":
                self.state = _S.PRE_VALUE
            else:
                self.value.append(c)
        elif s is _S.DOUBLE_QUOTE:
            if c == '"':
                self.state = _S.PRE_VALUE
            elif c == "\\":
                self.state = _S.DOUBLE_QUOTE_ESCAPE
            else:
                self.value.append(c)
        elif s is _S.DOUBLE_QUOTE_ESCAPE:
            self.state = _S.DOUBLE_QUOTE
            if c in SHELL_NEED_ESCAPE:
                self.value.append(c)
            elif c != "\n":
                self.value += ["\\", c]
        elif s is _S.COMMENT:
            if c == "\\":
                self.state = _S.COMMENT_ESCAPE
            elif c in NEWLINE:
                self.state = _S.PRE_KEY
        else:  # COMMENT_ESCAPE: systemd < 254 swallows the next character, newline included
            if c in NEWLINE:
                msg = "a comment ending in '\\' runs on into this line in systemd < 254 only"
                self.out.problems.append((self.line, msg))
            self.state = _S.COMMENT

    def finish(self) -> EnvFile:
        s = self.state
        if s in (_S.SINGLE_QUOTE, _S.DOUBLE_QUOTE, _S.DOUBLE_QUOTE_ESCAPE):
            self.out.problems.append((self.quote_line, "quote not closed before the end"))
        if s in (
            _S.PRE_VALUE,
            _S.VALUE,
            _S.VALUE_ESCAPE,
            _S.SINGLE_QUOTE,
            _S.DOUBLE_QUOTE,
            _S.DOUBLE_QUOTE_ESCAPE,
        ):
            self.push(chomp=s is _S.VALUE)
        elif s is _S.KEY:
            self.no_equals()
        self.out.problems.sort()
        return self.out


class EnvFileError(Exception):
    """A file systemd would refuse as a whole (missing, unreadable, not UTF-8, a NUL byte)."""


def parse_env_bytes(data: bytes, where: str = "env file") -> EnvFile:
    """Parse an env file's bytes exactly as systemd's EnvironmentFile= does.

    Raises EnvFileError where systemd refuses the whole file (and the service does not
    start): a NUL byte, or bytes that are not UTF-8.
    """
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise EnvFileError(f"{where}:{line}: NUL byte (systemd refuses the file)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise EnvFileError(f"{where}:{line}: not valid UTF-8 (systemd refuses the file)") from None
    return parse_env_text(text)


def parse_env_text(text: str) -> EnvFile:
    """Parse an env file's (NUL-free) text exactly as systemd's EnvironmentFile= does."""
    parser = _Parser()
    for c in text:
        parser.feed(c)
    return parser.finish()


def read_env_file(path: Path) -> EnvFile:
    """Read and parse ``path`` (see :func:`parse_env_bytes`)."""
    if not path.is_file():
        raise EnvFileError(f"env file {path}: not found or not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EnvFileError(f"env file {path}: {exc.strerror}") from None
    return parse_env_bytes(data, f"env file {path}")
