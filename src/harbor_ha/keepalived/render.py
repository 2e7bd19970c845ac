"""Render this node's keepalived.conf from Settings, and check a config file.

Choices (keepalived 2.2.7, measured; pinned by tests/integration/keepalived):

- ``script_user root`` + ``enable_script_security`` come BEFORE ``notify_fifo``:
  otherwise a SIGHUP reload silently kills the FIFO.
- ``fifo_write_vrrp_states_on_reload``: asks keepalived to write the states
  again after a reload. Measured on 2.2.7: a reload closes and reopens the FIFO
  (the reader may see an EOF) and writes only ``BACKUP_PRIORITY <prio>``, even
  on a MASTER: *_PRIORITY lines are priority news, never a state; the daemon
  must keep checking the VIP itself.
- ``vrrp_version 3`` for sub-second adverts; ``state BACKUP`` + ``nopreempt`` on
  both nodes: a recovering node never steals the VIP (only FAULT, stop or a
  crash of the master move it).
- ``notify_priority_changes true``: MASTER_PRIORITY/BACKUP_PRIORITY lines.
- Priority track file, weight ``priority_weight``, ``init_file 0``: if missing at
  keepalived start it is created as 0 = not ready.
- Fault track file, weight 0 (non-zero = FAULT), ``init_file 1`` WITHOUT
  ``overwrite``: a missing file (fresh boot, /run is a tmpfs) is created as 1,
  so a node whose daemon has not decided yet is in FAULT and cannot take the
  VIP; an existing file is the daemon's decision and is kept (``overwrite``
  would put a healthy MASTER in FAULT at every keepalived restart/reload).
  keepalived reads a file deleted while it runs as 0 (healthy): the daemon's
  TrackFiles re-check the content on every tick and rewrite it, so such a gap
  lasts at most one tick. keepalived cannot create the file if its directory
  is missing: the deployment must create the runtime directory before
  keepalived starts.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import structlog

from harbor_ha.keepalived.errors import RenderError
from harbor_ha.runner import CommandError, Runner
from harbor_ha.settings import Settings
from harbor_ha.settings.mode import Mode

log = structlog.get_logger(__name__)

PRIORITY_TRACK = "harbor_ha_priority"
FAULT_TRACK = "harbor_ha_fault"

TRACK_MEANING: dict[Mode, tuple[str, ...]] = {
    Mode.RBD: ("# 1 = this node is ready to serve Harbor (written by harbor-ha).",),
    Mode.REPLICATED: (
        "# 1 = this node's own Harbor is healthy (written by harbor-ha); the fault file below",
        "# is up while it is not (yet) seen healthy: keepalived elects only a healthy Harbor.",
    ),
}
"""The comment over the priority track file: what its value means in each mode (the config
is otherwise the same: harbor-ha writes both files in every mode)."""

# keepalived treats '#' and '!' as comment starts anywhere, braces as block
# delimiters and whitespace as separators: none may appear in a value.
_UNSAFE = re.compile(r"[\s\"'{}#!\\\x00-\x1f\x7f]")


def token(what: str, value: str) -> str:
    if not value or _UNSAFE.search(value):
        raise RenderError(
            f"{what} {value!r} cannot go into keepalived.conf "
            "(no whitespace, quotes, braces, '#', '!', backslash or control characters)"
        )
    return value


def _path(what: str, value: Path) -> str:
    if not value.is_absolute():
        raise RenderError(f"{what} {value} must be an absolute path")
    return '"' + token(what, str(value)) + '"'


def advert(seconds: float) -> str:
    return f"{round(seconds, 2):g}"


def vrrp_block(
    settings: Settings, *, options: list[str], track: tuple[str, list[str]]
) -> list[str]:
    """The vrrp_instance of a node or of a machine in front of the nodes: both BACKUP with
    nopreempt; ``options`` go after advert_int, ``track`` is (keyword, tracked names)."""
    iface = token("interface", settings.interface)
    lines = [
        f"vrrp_instance {token('vrrp_instance', settings.vrrp_instance)} {{",
        "    state BACKUP",
        "    nopreempt",
        f"    interface {iface}",
        f"    virtual_router_id {settings.vrrp_router_id}",
        f"    priority {settings.base_priority}",
        f"    advert_int {advert(settings.vrrp_advert_interval_s)}",
        *[f"    {option}" for option in options],
        # A refused standby's keepalived may hold the VIP for a moment in a partition (it
        # cannot hear the master): the master's periodic gratuitous ARP points the clients
        # back at it within a second, not after their ARP cache expires.
        "    garp_master_refresh 1",
    ]
    if settings.vrrp_unicast_peers:
        if settings.vrrp_unicast_src_ip:
            lines.append(
                f"    unicast_src_ip {token('unicast_src_ip', settings.vrrp_unicast_src_ip)}"
            )
        lines.append("    unicast_peer {")
        lines.extend(f"        {token('unicast peer', p)}" for p in settings.vrrp_unicast_peers)
        lines.append("    }")
    keyword, names = track
    lines += [
        "    virtual_ipaddress {",
        f"        {token('vip', settings.vip)} dev {iface}",
        "    }",
    ]
    if names:
        lines += [f"    {keyword} {{", *[f"        {n}" for n in names], "    }"]
    return [*lines, "}", ""]


def render_config(settings: Settings) -> str:
    """A complete keepalived.conf for this node (see the module doc for the choices)."""
    name = token("node_name", settings.node_name)
    fifo = _path("keepalived_fifo", settings.keepalived_fifo)
    prio_file = _path("priority_file", settings.priority_file)
    fault_file = _path("fault_file", settings.fault_file)

    lines = [
        f"# keepalived.conf for harbor-ha node {name}: generated by `harbor-ha render-keepalived`.",
        f"# Mode {settings.mode}. Do not edit by hand: change the settings and render again.",
        "",
        "global_defs {",
        f"    router_id {name}",
        "    # script_user + enable_script_security BEFORE notify_fifo: otherwise a",
        "    # SIGHUP reload silently stops the FIFO.",
        "    script_user root",
        "    enable_script_security",
        f"    notify_fifo {fifo}",
        "    fifo_write_vrrp_states_on_reload",
        "    vrrp_version 3",
        "}",
        "",
        *TRACK_MEANING[settings.mode],
        f"track_file {PRIORITY_TRACK} {{",
        f"    file {prio_file}",
        f"    weight {settings.priority_weight}",
        "    init_file 0",
        "}",
        "",
        "# Non-zero = FAULT. Created as 1 when missing: no VIP before harbor-ha decided.",
        f"track_file {FAULT_TRACK} {{",
        f"    file {fault_file}",
        "    weight 0",
        "    init_file 1",
        "}",
        "",
        *vrrp_block(
            settings,
            options=["notify_priority_changes true"],
            track=("track_file", [PRIORITY_TRACK, FAULT_TRACK]),
        ),
    ]
    return "\n".join(lines)


def _strip_comment(line: str) -> str:
    for i, ch in enumerate(line):
        if ch in "#!":
            return line[:i]
    return line


def static_problems(text: str, settings: Settings) -> list[str]:
    """What in ``text`` would break harbor-ha even if keepalived accepts it."""
    problems: list[str] = []
    fifo_at: int | None = None
    script_user_at: int | None = None
    files: set[str] = set()
    instances: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        words = _strip_comment(line).split()
        if not words:
            continue
        arg = words[1].strip('"') if len(words) > 1 else ""
        if words[0] in ("notify_fifo", "vrrp_notify_fifo") and arg == str(settings.keepalived_fifo):
            fifo_at = fifo_at or number
        elif words[0] == "script_user":
            script_user_at = script_user_at or number
        elif words[0] == "file":
            files.add(arg)
        elif words[0] == "vrrp_instance":
            instances.add(arg)
    if fifo_at is None:
        problems.append(f"no notify_fifo {settings.keepalived_fifo}: harbor-ha would hear nothing")
    elif script_user_at is None or script_user_at > fifo_at:
        problems.append(
            "script_user must come before notify_fifo (else a reload silently stops the FIFO)"
        )
    for what, path in (("priority", settings.priority_file), ("fault", settings.fault_file)):
        if str(path) not in files:
            problems.append(f"no track_file for the {what} file {path}")
    if settings.vrrp_instance not in instances:
        problems.append(f"no vrrp_instance {settings.vrrp_instance}")
    return problems


async def check_config(runner: Runner, settings: Settings, path: Path) -> list[str]:
    """Problems with the config at ``path`` (empty = ok): ``keepalived -t`` + static checks."""
    problems: list[str] = []
    try:
        text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8", errors="replace")
    except OSError as exc:
        return [f"{path}: cannot read: {exc.strerror or exc}"]
    problems += static_problems(text, settings)
    argv = [settings.keepalived_bin, "-t", "-f", str(path)]
    try:
        result = await runner.run(argv, timeout_s=settings.command_timeout_s)
    except CommandError as exc:
        problems.append(str(exc))
    else:
        if not result.ok:
            out = [ln.strip() for ln in (result.stderr + result.stdout).splitlines()]
            problems += [ln for ln in out if ln] or [f"keepalived -t exited {result.returncode}"]
    log.info("keepalived_config_checked", path=str(path), problems=len(problems))
    return problems
