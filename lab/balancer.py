"""The shared lab's load balancer in its ``lb`` netns: the real HAProxy running the config
``harbor-ha render-haproxy`` renders, and the real keepalived holding the VIP with the config
``harbor-ha render-keepalived --for lb`` renders (one balancer: the pair's second machine is
out of the lab's scope), both from the balancer's own env file (the cluster's settings).
One named deviation: the rendered ``track_process haproxy`` is removed, since keepalived
watches processes through the kernel's proc connector, which answers only in the initial
network namespace ("Failed to set/clear process event listen - errno 111" in a netns, and
the instance stays in FAULT).  A balancer machine runs it as rendered.

    start_balancer(st, workdir, cluster_env)   # haproxy + keepalived, PIDs in st.extra_pids
"""

from __future__ import annotations

import time
from pathlib import Path

from lab.keepalived import keepalived_argv
from lab.procs import LabError, alive, sh, spawn
from lab.state import HARBOR_HA, LabState

VIP_WITHIN_S = 30.0


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
