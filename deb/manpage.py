"""harbor-ha(8) in troff, generated from the CLI's own argparse parser (every command, option
and choice as the program defines them) and its docstring's exit codes, so the page cannot
drift from the program.  ``python -m deb.manpage > harbor-ha.8``."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from harbor_ha import __version__, cli

FILES = (
    ("/etc/harbor-ha/harbor-ha.env", "the settings (systemd EnvironmentFile= grammar)"),
    ("/usr/share/doc/harbor-ha/examples/harbor-ha.env.example", "every setting and its default"),
    ("/run/harbor-ha/", "control socket, track files read by keepalived, keepalived FIFO"),
    ("/var/lib/harbor-ha/", "state directory: the history journal"),
    ("/usr/share/harbor-ha/prometheus/", "alert and recording rules"),
    ("/usr/share/harbor-ha/grafana/", "the Grafana dashboard"),
)


def esc(text: str) -> str:
    """Escape text for troff: backslashes, dashes, and a leading dot or quote."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + out if out[:1] in (".", "'") else out


def _option_synopsis(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"\\fI{esc(action.metavar or action.dest).upper()}\\fR"  # type: ignore[arg-type]
    flags = ", ".join(f"\\fB{esc(o)}\\fR" for o in action.option_strings)
    if action.nargs == 0:
        return flags
    metavar = action.metavar or (
        "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    )
    return f"{flags} \\fI{esc(str(metavar))}\\fR"


def _arguments(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if not action.option_strings and action.choices:
            head = f"\\fI{esc('|'.join(map(str, action.choices)))}\\fR"
        else:
            head = _option_synopsis(action)
        help_text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            help_text += f" (default: {action.default})"
        lines += [".TP", head, esc(help_text)]
    return lines


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    out: dict[str, tuple[str, argparse.ArgumentParser]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: str(c.help or "") for c in action._choices_actions}
            for name, sub in action.choices.items():
                out[name] = (helps.get(name, ""), sub)
    return out


def _exit_codes() -> list[str]:
    doc = cli.__doc__ or ""
    start = doc.find("Exit codes")
    return [".nf", *(esc(line) for line in doc[start:].strip().splitlines()), ".fi"]


def render(today: dt.date | None = None) -> str:
    """The whole page."""
    parser = cli._parser()
    day = (today or dt.date.today()).isoformat()
    lines = [
        f'.TH HARBOR\\-HA 8 "{day}" "harbor-ha {__version__}" "System Administration"',
        ".SH NAME",
        "harbor\\-ha \\- " + esc(parser.description or ""),
        ".SH SYNOPSIS",
        "\\fBharbor\\-ha\\fR [\\fB\\-\\-env\\-file\\fR \\fIFILE\\fR]"
        " \\fICOMMAND\\fR [\\fIARGS\\fR]",
        ".br",
        "\\fBharbor\\-ha \\-\\-version\\fR",
        ".SH DESCRIPTION",
        "harbor\\-ha runs on both nodes of a two\\-node Harbor registry. keepalived elects the",
        "node holding the virtual IP; harbor\\-ha maps the Ceph RBD image (with its exclusive",
        "lock, fencing the peer first), mounts it and starts Harbor with docker compose on",
        "that node only. Run it as the systemd service \\fBharbor\\-ha.service\\fR",
        "(Type=notify, watchdog); the other commands talk to it or check its settings.",
        ".SH OPTIONS",
        *_arguments(parser),
        ".SH COMMANDS",
    ]
    todo = list(_subcommands(parser).items())
    while todo:
        name, (help_text, sub) = todo.pop(0)
        usage = sub.format_usage().removeprefix("usage: ").strip()
        lines += [".SS " + esc(name), esc(help_text) + ".", ".PP", "\\fB" + esc(usage) + "\\fR"]
        args = _arguments(sub)
        if args:
            lines += [".RS", *args, ".RE"]
        # a command with commands of its own (replication setup): a section each, next
        todo[:0] = [(f"{name} {n}", v) for n, v in _subcommands(sub).items()]
    lines += [".SH EXIT STATUS", *_exit_codes(), ".SH FILES"]
    for path, what in FILES:
        lines += [".TP", f"\\fI{esc(path)}\\fR", esc(what)]
    lines += [
        ".SH SEE ALSO",
        "\\fBkeepalived\\fR(8), \\fBrbd\\fR(8), \\fBsystemd.exec\\fR(5), "
        "\\fBjournalctl\\fR(1); /usr/share/doc/harbor\\-ha/runbook.md",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
