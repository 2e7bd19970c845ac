"""The `harbor-ha` command.  The only place that parses argv and reads the process environment.

Exit codes (`status` has its own, see below):
  0  success
  1  the daemon stopped because a root task died / a command failed
  2  usage error or invalid configuration (one line per bad variable)
  3  the daemon could not start, or `check` found problems
  4  the daemon is not reachable on its control socket
  5  the daemon refused the request (e.g. switchover on a node that is not MASTER)
  (`switchover --wait`: 1 also when the peer did not serve within --timeout)

`status` exits like a monitoring plugin (crm_mon -s, Nagios): 0 OK (MASTER with Harbor
healthy, or BACKUP ready), 1 WARNING (maintenance, backoff, not ready, a step running),
2 CRITICAL (FENCED_SELF, MASTER with Harbor unhealthy), 3 UNKNOWN (daemon unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from harbor_ha import __version__
from harbor_ha.commands.control import Refused, Unreachable, request
from harbor_ha.machine import Mode
from harbor_ha.settings import Settings, SettingsError, load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PROBLEMS = 3
EXIT_UNREACHABLE = 4
EXIT_REFUSED = 5

DEFAULT_ENV_FILE = Path("/etc/harbor-ha/harbor-ha.env")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="harbor-ha",
        description="Keeps one Harbor registry available on two nodes (keepalived + Ceph RBD).",
    )
    p.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help=f"settings file (KEY=VALUE lines); default {DEFAULT_ENV_FILE} if it exists",
    )
    p.add_argument("--version", action="version", version=f"harbor-ha {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run the daemon (systemd: Type=notify)")
    st = sub.add_parser("status", help="show the running daemon's state")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    ck = sub.add_parser(
        "check", help="preflight: config, binaries, Ceph access, keepalived, Docker"
    )
    ck.add_argument("--json", action="store_true", help="machine-readable output")
    ls = sub.add_parser("list", help="every node: state, VIP, health, fault, last failover")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    hi = sub.add_parser("history", help="transitions and failovers, kept across restarts")
    hi.add_argument("--json", action="store_true", help="machine-readable output (JSON lines)")
    hi.add_argument("--failovers", action="store_true", help="only completed failovers")
    hi.add_argument("-n", "--limit", type=int, default=50, help="last N records (0 = all)")
    rk = sub.add_parser("render-keepalived", help="write keepalived.conf for this node")
    rk.add_argument(
        "-o",
        "--output",
        default=None,
        help="file to write ('-' = stdout); default: settings.keepalived_conf",
    )
    rk.add_argument(
        "--for",
        dest="front",
        choices=["node", "lb", "lvs"],
        default="node",
        help="node: a harbor-ha node (default); lb: a VIP in front of a pair of HAProxy "
        "machines; lvs: keepalived's own load balancer over HARBOR_HA_NODES",
    )
    rh = sub.add_parser(
        "render-haproxy", help="write haproxy.cfg for a load balancer over HARBOR_HA_NODES"
    )
    rh.add_argument("-o", "--output", default="-", help="file to write ('-' = stdout, default)")
    so = sub.add_parser("switchover", help="hand the VIP to the peer (this node must be MASTER)")
    so.add_argument(
        "--wait", action="store_true", help="return when the peer serves (reads its /status)"
    )
    so.add_argument("--timeout", type=float, default=120.0, help="seconds --wait waits")
    mt = sub.add_parser(
        "maintenance",
        help="keep this node from taking the VIP (shared mode: drain it and keep it out)",
    )
    mt.add_argument("mode", choices=["on", "off"])
    sub.add_parser("retry", help="retry a demotion that ended in FENCED_SELF")
    sub.add_parser(
        "drain",
        help="shared mode: readiness 503, wait the balancer's detection time, stop Harbor; "
        "`maintenance off` rejoins",
    )
    nt = sub.add_parser(
        "notify",
        help="forward a keepalived role to the daemon (notify_master/notify_backup scripts)",
    )
    nt.add_argument(
        "words",
        nargs="+",
        metavar="WORD",
        help="master|backup|fault|stop, or keepalived's 'INSTANCE NAME STATE PRIO'",
    )
    fm = sub.add_parser("format", help="make a filesystem on a NEW image (operator only)")
    fm.add_argument(
        "--yes-i-know-this-image-is-new",
        dest="confirm",
        action="store_true",
        help="required: the image must never have held a filesystem",
    )
    rp = sub.add_parser("replication", help="the replicated pair's Harbor replication")
    rs = rp.add_subparsers(dest="action", required=True, metavar="ACTION")
    setup = rs.add_parser(
        "setup",
        help="on both Harbors: the endpoint at the peer's own address and an event-based "
        "policy to it (idempotent; a differing one is reported, never overwritten)",
    )
    setup.add_argument(
        "--credentials",
        type=Path,
        default=Path("/etc/harbor-ha/replication.ini"),
        help="the pair's accounts, readable by root only (see docs/runbook.md)",
    )
    setup.add_argument("--timeout", type=float, default=10.0, help="seconds per API call")
    sub.add_parser("version", help="print the version")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    env_file: Path | None = args.env_file
    if env_file is None and DEFAULT_ENV_FILE.is_file():
        env_file = DEFAULT_ENV_FILE
    return load_settings(env_file, os.environ)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"harbor-ha {__version__}")
        return EXIT_OK
    if args.command == "replication":  # the pair's Harbors only: no node settings needed
        return _replication_setup(args)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"harbor-ha: invalid setting: {problem}", file=sys.stderr)
        return EXIT_USAGE
    handler = {
        "run": _run,
        "status": _status,
        "list": _list,
        "history": _history,
        "check": _check,
        "render-keepalived": _render,
        "render-haproxy": _render_haproxy,
        "switchover": _switchover,
        "maintenance": _maintenance,
        "retry": _retry,
        "drain": _drain,
        "notify": _notify,
        "format": _format,
    }[args.command]
    return handler(settings, args)


# ------------------------------------------------------------- replication
def _replication_setup(args: argparse.Namespace) -> int:
    from harbor_ha.replication.api import HarborApiError
    from harbor_ha.replication.credentials import CredentialsError, read_pair
    from harbor_ha.replication.setup import setup_pair

    try:
        a, b, cas = read_pair(args.credentials)
    except CredentialsError as exc:
        print(f"harbor-ha: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        findings = asyncio.run(setup_pair(a, b, cas, args.timeout))
    except HarborApiError as exc:
        print(f"harbor-ha: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    for level, message in findings:
        print(f"{level:8} {message}")
    return EXIT_PROBLEMS if any(level == "CONFLICT" for level, _ in findings) else EXIT_OK


# ------------------------------------------------------------------ daemon
def _run(settings: Settings, _: argparse.Namespace) -> int:
    from harbor_ha import logs
    from harbor_ha.daemon.app import run_daemon

    logs.configure(
        settings.log_level,
        settings.log_format,
        node=settings.node_name,
        syslog_prefix=logs.stderr_is_journal(os.environ.get("JOURNAL_STREAM")),
    )
    return asyncio.run(run_daemon(settings, notify_socket=os.environ.get("NOTIFY_SOCKET")))


# ----------------------------------------------------------------- control
def _call(
    settings: Settings,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    quiet: bool = False,
) -> int:
    try:
        data = asyncio.run(request(settings, method, path, body))
    except Unreachable as exc:
        print(f"harbor-ha: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except Refused as exc:
        print(f"harbor-ha: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except ValueError as exc:
        print(f"harbor-ha: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not quiet:
        print(json.dumps(data, indent=1, default=str))
    return EXIT_OK


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from harbor_ha.commands.views import UNKNOWN, verdict

    try:
        data = asyncio.run(request(settings, "GET", "/status"))
    except Unreachable as exc:
        print(f"harbor-ha: {exc}", file=sys.stderr)
        return UNKNOWN
    code, summary = verdict(data)
    if args.json:
        print(json.dumps(data, indent=1, default=str))
    else:
        print(format_status(data))
        print(f"{'verdict':<17}  {summary}")
    return code


def _list(settings: Settings, args: argparse.Namespace) -> int:
    from harbor_ha.commands.peer import PeerUnreachable, peer_status
    from harbor_ha.commands.views import list_header, node_row, table

    async def one(name: str | None, url: str) -> tuple[str, dict[str, Any] | None, str]:
        try:
            status = await peer_status(url, settings.peer_timeout_s)
        except PeerUnreachable as exc:
            return (name or url, None, str(exc))
        return (str(status.get("node", name or url)), status, "")

    async def every() -> list[tuple[str, dict[str, Any] | None, str]]:
        nodes: list[tuple[str, dict[str, Any] | None, str]] = []
        try:
            nodes.append((settings.node_name, await request(settings, "GET", "/status"), ""))
        except Unreachable as exc:
            nodes.append((settings.node_name, None, str(exc)))
        nodes += await asyncio.gather(*(one(name, url) for name, url in settings.peers))
        return nodes

    nodes = asyncio.run(every())
    if args.json:
        out = [{"node": n, "reachable": st is not None, "error": err, "status": st}
               for n, st, err in nodes]  # fmt: skip
        print(json.dumps(out, indent=1, default=str))
    else:
        repl = any(st is not None and st.get("replication") is not None for _, st, _ in nodes)
        rows = [node_row(n, st, err, replication=repl) for n, st, err in nodes]
        print(table(list_header(repl), rows))
        if not settings.peers:
            print("(other nodes not shown: set HARBOR_HA_NODES or HARBOR_HA_PEER_HTTP_URL)")
    return EXIT_OK if all(st is not None for _, st, _ in nodes) else EXIT_UNREACHABLE


def _history(settings: Settings, args: argparse.Namespace) -> int:
    from harbor_ha.commands.views import HISTORY_HEADER, history_rows, table
    from harbor_ha.history import read_history

    records = [
        r for r in read_history(settings.state_dir) if not args.failovers or "failover_s" in r
    ]
    if args.limit > 0:
        records = records[-args.limit :]
    if args.json:
        for r in records:
            print(json.dumps(r, default=str))
    else:
        print(table(HISTORY_HEADER, history_rows(records)))
    return EXIT_OK


def format_status(data: dict[str, Any]) -> str:
    """The human table of `harbor-ha status` (a replication row in the replicated mode)."""
    from harbor_ha.commands.views import replication_text

    rows = [
        ("node", data.get("node")),
        ("state", data.get("state")),
        ("in state", f"{data.get('seconds_in_state', 0):.1f} s"),
        ("running step", data.get("step") or "-"),
        ("VIP here", data.get("vip_present")),
        ("keepalived wants", "MASTER" if data.get("want_master") else "BACKUP"),
        ("fault file", "SET" if data.get("fault") else "clear"),
        ("maintenance", "on" if data.get("maintenance") else "off"),
        ("harbor healthy", data.get("harbor_healthy")),
        ("harbor degraded", ", ".join(data.get("harbor_degraded") or []) or "-"),
        ("standby ready", data.get("standby_ready")),
        ("device", data.get("device") or "-"),
        ("failed promotions", data.get("failures")),
    ]
    if data.get("replication") is not None:
        rows.append(("replication", replication_text(data["replication"], long=True)))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    for problem in data.get("standby_problems") or []:
        lines.append(f"{'problem':<{width}}  {problem}")
    transitions = data.get("last_transitions") or []
    if transitions:
        lines.append("")
        lines.append("last transitions:")
        for t in transitions[-5:]:
            lines.append(
                f"  {t.get('from')} -> {t.get('to')}  on {t.get('event')}: {t.get('reason')}"
            )
    errors = data.get("last_errors") or []
    if errors:
        lines.append("last errors:")
        for e in errors[-5:]:
            lines.append(f"  {e.get('where')}: {e.get('error')}")
    return "\n".join(lines)


def _switchover(settings: Settings, args: argparse.Namespace) -> int:
    from harbor_ha.commands.peer import wait_until_serving

    if args.wait and not settings.peer_url:
        print(
            "harbor-ha: switchover --wait needs HARBOR_HA_PEER_HTTP_URL "
            "(or a two-node HARBOR_HA_NODES)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    code = _call(settings, "POST", "/control/switchover", {}, quiet=args.wait)
    if code != EXIT_OK or not args.wait:
        return code
    served, last = asyncio.run(
        wait_until_serving(
            settings.peer_url,
            timeout_s=args.timeout,
            request_timeout_s=settings.peer_timeout_s,
        )
    )
    if served:
        print(f"switchover done: {last}")
        return EXIT_OK
    print(f"harbor-ha: the peer did not serve within {args.timeout:g} s: {last}", file=sys.stderr)
    return EXIT_FAILED


def _maintenance(settings: Settings, args: argparse.Namespace) -> int:
    return _call(settings, "POST", "/control/maintenance", {"on": args.mode == "on"})


def _drain(settings: Settings, _: argparse.Namespace) -> int:
    return _call(settings, "POST", "/control/drain", {})


def _retry(settings: Settings, _: argparse.Namespace) -> int:
    return _call(settings, "POST", "/control/retry", {})


def parse_notify(words: list[str]) -> dict[str, str]:
    """`notify master` or keepalived's generic notify arguments `INSTANCE "VI_1" MASTER 100`."""
    states = ("MASTER", "BACKUP", "FAULT", "STOP")
    if len(words) == 1 and words[0].upper() in states:
        return {"state": words[0].upper()}
    if len(words) >= 3 and words[0].upper() == "INSTANCE" and words[2].upper() in states:
        return {"instance": words[1].strip('"'), "state": words[2].upper()}
    raise ValueError(
        f"cannot read notify arguments {' '.join(words)!r}: "
        "want master|backup|fault|stop or INSTANCE NAME STATE [PRIORITY]"
    )


def _notify(settings: Settings, args: argparse.Namespace) -> int:
    try:
        body = parse_notify(args.words)
    except ValueError as exc:
        print(f"harbor-ha: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _call(settings, "POST", "/control/notify", body)


# -------------------------------------------------------------- offline
def _render(settings: Settings, args: argparse.Namespace) -> int:
    from harbor_ha.keepalived.balancer import lvs_detection_s, render_front
    from harbor_ha.keepalived.errors import RenderError
    from harbor_ha.keepalived.render import render_config

    try:
        text = (
            render_config(settings) if args.front == "node" else render_front(settings, args.front)
        )
    except RenderError as exc:
        print(f"harbor-ha: cannot render keepalived.conf: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.front == "lvs":
        _detection(lvs_detection_s(settings), "keepalived's checker")
    target = args.output if args.output is not None else str(settings.keepalived_conf)
    return _write(target, text)


def _detection(seconds: float, who: str) -> None:
    print(
        f"harbor-ha: {who} takes a node that stops serving out of rotation within "
        f"{seconds:g} s: a node's drain must wait at least {seconds:g} s",
        file=sys.stderr,
    )


def _render_haproxy(settings: Settings, args: argparse.Namespace) -> int:
    from harbor_ha.haproxy import detection_s, render_haproxy

    try:
        text = render_haproxy(settings)
    except ValueError as exc:
        print(f"harbor-ha: cannot render haproxy.cfg: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _detection(detection_s(settings), "HAProxy")
    return _write(args.output, text)


def _write(target: str, text: str) -> int:
    """Write a rendered config to ``target`` atomically ('-': stdout)."""
    if target == "-":
        sys.stdout.write(text)
        return EXIT_OK
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    print(f"wrote {path}")
    return EXIT_OK


def _check(settings: Settings, args: argparse.Namespace) -> int:
    from harbor_ha import logs
    from harbor_ha.commands.preflight import preflight

    # The adapters' log lines go to stderr: stdout is the report (or the JSON of --json).
    logs.configure(settings.log_level, settings.log_format, node=settings.node_name)

    problems = asyncio.run(preflight(settings))
    failed = any(level == "FAIL" for level, _ in problems)
    if args.json:
        findings = [{"level": level, "message": message} for level, message in problems]
        print(json.dumps({"ok": not failed, "findings": findings}, indent=1))
        return EXIT_PROBLEMS if failed else EXIT_OK
    for level, message in problems:
        print(f"{level}: {message}")
    if failed:
        return EXIT_PROBLEMS
    print("OK: preflight passed")
    return EXIT_OK


def _format(settings: Settings, args: argparse.Namespace) -> int:
    if settings.mode is Mode.SHARED:
        print(
            "harbor-ha: format refused: HARBOR_HA_MODE=shared never formats (nor checks) a "
            "shared filesystem: its servers own it, and the other nodes use it",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS
    if settings.mode is not Mode.RBD:
        print(
            f"harbor-ha: format refused: HARBOR_HA_MODE={settings.mode} has no image "
            "(each Harbor keeps its data on its own storage)",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS
    if not args.confirm:
        print(
            "harbor-ha: format refused: pass --yes-i-know-this-image-is-new "
            "(only for an image that never held a filesystem)",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS
    from harbor_ha.commands.format import format_image

    try:
        message = asyncio.run(format_image(settings, confirm=args.confirm))
    except Exception as exc:
        print(f"harbor-ha: format refused: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(message)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
