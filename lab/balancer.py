"""The shared lab's load balancer in its ``lb`` netns: the real HAProxy running the config
``harbor-ha render-haproxy`` renders, and the real keepalived holding the VIP with the config
``harbor-ha render-keepalived --for lb`` renders (one balancer: the pair's second machine is
out of the lab's scope), both from the balancer's own env file (the cluster's settings).
HAProxy gets one addition, a stats socket (``lb/haproxy.sock``) the lab reads server states
from.  One named deviation: the rendered ``track_process haproxy`` is removed, since keepalived
watches processes through the kernel's proc connector, which answers only in the initial
network namespace ("Failed to set/clear process event listen - errno 111" in a netns, and
the instance stays in FAULT).  A balancer machine runs it as rendered.

    start_balancer(st, workdir, cluster_env)   # haproxy + keepalived, PIDs in st.extra_pids
    in_rotation(st)                            # the servers HAProxy has UP
    wait_in_rotation(st, within_s)             # until every node is
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from lab.keepalived import keepalived_argv
from lab.procs import LabError, alive, sh, spawn
from lab.state import HARBOR_HA, LabState

VIP_WITHIN_S = 30.0
BACKEND = "harbor_nodes"


def start_balancer(st: LabState, workdir: Path, cluster_env: dict[str, str]) -> Path:
    """Render haproxy.cfg and keepalived.conf with harbor-ha's CLI, start HAProxy, then
    keepalived, in ``{prefix}-lb``; wait until the VIP is on the balancer.  Returns the
    rendered haproxy.cfg."""
    netns = f"{st.prefix}-lb"
    workdir.mkdir(parents=True, exist_ok=True)
    env_file = workdir / "harbor-ha.env"
    lines = {
        **cluster_env,
        "HARBOR_HA_NODE_NAME": "lb",
        # The balancer mounts nothing; the shared mode's settings want the field set.
        "HARBOR_HA_SHARED_FS_TYPE": "none",
        "HARBOR_HA_RUNTIME_DIR": str(workdir / "run"),
        "HARBOR_HA_STATE_DIR": str(workdir / "state"),
    }
    env_file.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    cfg, ka_conf = workdir / "haproxy.cfg", workdir / "keepalived.conf"
    cli = [HARBOR_HA, "--env-file", str(env_file)]
    sh(*cli, "render-haproxy", "-o", str(cfg))
    cfg.write_text(with_stats_socket(cfg.read_text(), workdir / "haproxy.sock"))
    sh(*cli, "render-keepalived", "--for", "lb", "-o", str(ka_conf))
    ka_conf.write_text(without_track_process(ka_conf.read_text()))
    sh("haproxy", "-c", "-f", str(cfg))
    st.extra_pids["haproxy"] = spawn(
        ["nsenter", f"--net=/run/netns/{netns}", "haproxy", "-db", "-f", str(cfg)],
        workdir / "haproxy.log",
    )
    st.save()
    st.extra_pids["keepalived-lb"] = spawn(
        keepalived_argv(netns, ka_conf, workdir), workdir / "keepalived.log"
    )
    st.save()
    deadline = time.monotonic() + VIP_WITHIN_S
    logs = [workdir / "haproxy.log", workdir / "keepalived.log"]
    while st.vip_address not in sh("ip", "-n", netns, "addr", "show", "dev", "eth0").stdout:
        for what in ("haproxy", "keepalived-lb"):
            if not alive(st.extra_pids[what]):
                raise LabError(f"{what} in {netns} exited: {_tails(logs)}")
        if time.monotonic() > deadline:
            raise LabError(f"the VIP is not on {netns} after {VIP_WITHIN_S} s: {_tails(logs)}")
        time.sleep(0.2)
    return cfg


def with_stats_socket(conf: str, sock: Path) -> str:
    """``conf`` with a stats socket (level user: reads only) in its global section."""
    lines = conf.splitlines()
    at = lines.index("global") + 1
    lines.insert(at, f"    stats socket {sock} mode 600 level user")
    return "\n".join(lines) + "\n"


def stats_socket(st: LabState) -> Path:
    return Path(st.labdir) / "lb" / "haproxy.sock"


def in_rotation(st: LabState, timeout_s: float = 2.0) -> set[str]:
    """The servers of the backend HAProxy has UP (``show stat`` on its stats socket)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(stats_socket(st)))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode(errors="replace")
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise LabError(f"HAProxy's stats socket answered: {text[:200]!r}")
    header = lines[0][2:].split(",")
    name, server, status = header.index("pxname"), header.index("svname"), header.index("status")
    up = set()
    for line in lines[1:]:
        row = line.split(",")
        if len(row) > status and row[name] == BACKEND and row[server] != "BACKEND":
            up.update([row[server]] if row[status].startswith("UP") else [])
    return up


def wait_in_rotation(st: LabState, within_s: float) -> float:
    """Seconds until HAProxy has as many servers UP as the lab has nodes (LabError after
    ``within_s``)."""
    t0 = time.monotonic()
    while True:
        try:
            up = in_rotation(st)
        except OSError as exc:
            up, why = set(), str(exc)
        else:
            why = f"UP: {sorted(up)}"
        if len(up) == len(st.nodes):
            return time.monotonic() - t0
        if time.monotonic() - t0 > within_s:
            raise LabError(f"HAProxy has not every node UP after {within_s:g} s ({why})")
        time.sleep(0.2)


def without_track_process(conf: str) -> str:
    """``conf`` without its vrrp_track_process block and the instance's track_process."""
    out: list[str] = []
    skipping = False
    for line in conf.splitlines():
        head = line.strip()
        if head.startswith(("vrrp_track_process ", "track_process {")):
            skipping = True
        elif skipping and head == "}":
            skipping = False
        elif not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def _tails(logs: list[Path], lines: int = 15) -> str:
    """The last lines of each log (the lab dir is gone after a failed bring-up)."""
    out = []
    for log in logs:
        text = log.read_text(errors="replace") if log.exists() else "(none)"
        out.append(f"--- {log.name}:\n" + "\n".join(text.splitlines()[-lines:]))
    return "\n".join(out)
