"""The VM tier's two-node cluster: the real keepalived, harbor-ha and dockerd in each VM.

Each VM of the :class:`~lab.vm.twonode.VmLab` becomes a node as on a real host: its own
containerd + dockerd (lab/vm/node_docker.sh), a Harbor-shaped compose project of one service
(busybox httpd, ``network_mode: host``, the data volume bind-mounted at /data, Harbor's health
API shape, core's ping and the registry's ``/v2/`` asking for credentials (what the start step
waits for), and a write endpoint that answers ``ok`` only after fdatasync: lab/vm/www), its env
file, keepalived's config rendered by ``harbor-ha render-keepalived``, then ``harbor-ha run``
and keepalived started in the background and remembered by PID.  VRRP runs on the lab bridge;
the client reaches the VIP from the bridge's netns (an address of the lab subnet on br0).

Why one service, not the nine of lab/harbor_shape: under TCG every container start and every
healthcheck exec costs seconds of the one vCPU.  The service has no Docker healthcheck; the
daemon's probes (containers running, serving through the port, health API) are the product's
own.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.dockerd import compose_v2_binary
from lab.vm.guest import GuestError, GuestResult
from lab.vm.twonode import REPO, SUBNET, VmLab
from lab.waiting import poll

HARBOR_HA = str(REPO / ".venv" / "bin" / "harbor-ha")
VIP = f"{SUBNET}.100"
CLIENT_IP = f"{SUBNET}.40"
PORT = 8080
IMAGE = "harbor-vm/core:lab"
RUN = Path("/run/hh")
ENV_FILE = RUN / "harbor-ha.env"
MOUNTPOINT = "/data/harbor"
OSD_REQUEST_TIMEOUT_S = 20
"""The tier's map option (the product's default is 60 s): a cut-node scenario under TCG within
the tier's budget.  The bound the cut scenario asserts is derived from it."""

# The tier's timing (TCG: userland 10-20x slower than native).  Demotion bounds: unmount and
# unmap each end within their timeouts, so a cut master ends BACKUP or FENCED_SELF within
# stop + unmount + unmap + the monitor's detection (see tests/vm/test_daemon_failover.py).
NODE_SETTINGS: dict[str, str] = {
    "VRRP_ROUTER_ID": "98",
    "VRRP_ADVERT_INTERVAL_S": "1",
    "RBD_BIN": "/usr/bin/rbd",
    "RBD_MAP_OPTIONS": f"osd_request_timeout={OSD_REQUEST_TIMEOUT_S},noshare",
    "COMMAND_TIMEOUT_S": "60",
    "FENCE_TIMEOUT_S": "90",
    "MAP_TIMEOUT_S": "90",
    "FSCK_TIMEOUT_S": "120",
    "MOUNT_TIMEOUT_S": "60",
    "START_TIMEOUT_S": "180",
    "STOP_TIMEOUT_S": "60",
    "UNMOUNT_TIMEOUT_S": "45",
    "UNMAP_TIMEOUT_S": "60",
    "PROBE_INTERVAL_S": "3",
    "PROBE_TIMEOUT_S": "5",
    "PROBE_FALL": "2",
    "STANDBY_CHECK_INTERVAL_S": "60",
    "BACKOFF_INITIAL_S": "5",
    "FENCED_SELF_RETRY_S": "30",
    # The lease under TCG: the agent's renewal and the rados CLI's lock info take seconds
    # here, so the tier scales the lease like the other timeouts (deadline 30-8-2 = 20 s).
    "LEASE_DURATION_S": "30",
    "LEASE_RENEW_INTERVAL_S": "2",
    "LEASE_STALE_MARGIN_S": "3",
    "LEASE_MARGIN_S": "8",
    "LEASE_OP_TIMEOUT_S": "10",
    "HARBOR_EXPECTED_CONTAINERS": "1",
    "HTTPS_PORT": str(PORT),
    "HEALTH_SCHEME": "http",
    "HEALTH_PATH": "/cgi-bin/health",
    "PRECREATE_CONTAINERS": "false",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "info",
}


def compose_file(mountpoint: str) -> str:
    return (
        "services:\n"
        "  core:\n"
        f"    image: {IMAGE}\n"
        "    container_name: harbor-core\n"
        "    restart: always\n"
        "    init: true\n"
        "    network_mode: host\n"
        f"    entrypoint: [/bin/busybox, httpd, -f, -p, '{PORT}', -h, /www, -c, /www/httpd.conf]\n"
        "    volumes:\n"
        f"      - {mountpoint}:/data\n"
        f"      - {REPO / 'lab' / 'vm' / 'www'}:/www:ro\n"
    )


def node_env(lab: VmLab, name: str, image: str) -> str:
    vm = lab.vms[name]
    peer = next(v for n, v in lab.vms.items() if n != name)
    c = lab.cluster
    lines = {
        "NODE_NAME": name,
        "INTERFACE": "eth0",
        "VIP": f"{VIP}/24",
        "VRRP_UNICAST_SRC_IP": vm.ip,
        "VRRP_UNICAST_PEERS": peer.ip,
        "KEEPALIVED_FIFO": str(RUN / "keepalived.fifo"),
        "PRIORITY_FILE": str(RUN / "priority"),
        "FAULT_FILE": str(RUN / "fault"),
        "KEEPALIVED_CONF": str(RUN / "keepalived.conf"),
        "RUNTIME_DIR": str(RUN / "rt"),
        "STATE_DIR": str(RUN / "state"),
        "CEPH_CONF": str(c.conf),
        "CEPH_KEYRING": str(c.harbor_keyring),
        "CEPH_USER": "harbor",
        "CEPH_POOL": c.pool,
        "CEPH_IMAGE": image,
        "LEASE_OBJECT": f"harbor-ha.lease.{image}",
        "MOUNTPOINT": MOUNTPOINT,
        "COMPOSE_FILE": str(RUN / "harbor" / "docker-compose.yml"),
        "COMPOSE_PROJECT": "harbor",
        "DOCKER_HOST": "unix:///run/docker.sock",
        # compose v2 (one static binary): v1 is python, ~45 s per `up` under TCG.
        "COMPOSE_COMMAND": compose_v2_binary() or "auto",
        "HTTP_PORT": "9105",
        "PEER_HTTP_URL": f"http://{peer.ip}:9105",
        **NODE_SETTINGS,
    }
    return "".join(f"HARBOR_HA_{k}={v}\n" for k, v in lines.items())


@dataclass
class Node:
    """One VM as a cluster node: the PIDs of its harbor-ha and keepalived (in the guest)."""

    lab: VmLab
    name: str
    pids: dict[str, int]

    def sh(self, script: str, timeout_s: float = 120.0, stdin: str | None = None) -> GuestResult:
        return self.lab.vms[self.name].agent.run(
            ["sh", "-c", script], timeout_s=timeout_s, stdin=stdin, cwd=str(REPO)
        )

    def status(self) -> dict[str, Any] | None:
        """The daemon's /status, read inside the guest (works while the VM is cut off)."""
        try:
            r = self.sh("curl -s -m 10 http://127.0.0.1:9105/status", timeout_s=20)
        except GuestError:
            return None
        if r.rc != 0:
            return None
        with contextlib.suppress(ValueError):
            data: dict[str, Any] = json.loads(r.stdout)
            return data
        return None

    def state(self) -> str:
        st = self.status()
        return str(st["state"]) if st else "DOWN"

    def start(self) -> None:
        """harbor-ha first (it creates the FIFO and track files), then keepalived, as systemd
        orders them; each in its own session, its PID remembered."""
        self.sh(f"rm -f {RUN}/rt/control.sock").check()
        r = self.sh(
            f"setsid {HARBOR_HA} --env-file {ENV_FILE} run >> {RUN}/harbor-ha.log 2>&1 "
            "< /dev/null & echo $!"
        ).check()
        self.pids["harbor-ha"] = int(r.stdout.split()[-1])
        self.sh(
            f"i=0; until [ -S {RUN}/rt/control.sock ]; do i=$((i+1)); [ $i -gt 600 ] && exit 1;"
            f" kill -0 {self.pids['harbor-ha']} || exit 2; sleep 0.2; done",
            timeout_s=150,
        ).check()
        r = self.sh(
            f"setsid keepalived -n -l -D -f {RUN}/keepalived.conf -p {RUN}/ka.pid "
            f"-r {RUN}/vrrp.pid -c {RUN}/checkers.pid -b {RUN}/bfd.pid >> {RUN}/keepalived.log "
            "2>&1 < /dev/null & echo $!"
        ).check()
        self.pids["keepalived"] = int(r.stdout.split()[-1])

    def kill(self) -> None:
        """kill -9 of keepalived and harbor-ha by PID (krbd mapping, mount and Harbor stay)."""
        pids = " ".join(
            str(self.pids.pop(k)) for k in ("keepalived", "harbor-ha") if k in self.pids
        )
        if pids:
            self.sh(f"kill -9 {pids}; for p in {pids}; do while kill -0 $p 2>/dev/null; do "
                    "sleep 0.1; done; done", timeout_s=30).check()  # fmt: skip

    def log_tail(self, lines: int = 60) -> str:
        with contextlib.suppress(GuestError):
            return self.sh(f"tail -n {lines} {RUN}/harbor-ha.log", timeout_s=20).stdout
        return ""

    def log_lines(self, msg: str) -> list[dict[str, Any]]:
        """The daemon's JSON log lines with ``"msg": MSG``, oldest first."""
        with contextlib.suppress(GuestError):
            out = self.sh(f'grep -F \'"msg": "{msg}"\' {RUN}/harbor-ha.log', timeout_s=20)
            return [json.loads(ln) for ln in out.stdout.splitlines() if ln.startswith("{")]
        return []

    def transitions(self) -> list[dict[str, Any]]:
        """The daemon's transitions (its ``transition`` log lines), oldest first."""
        return self.log_lines("transition")


TEARDOWN = f"""
docker rm -f harbor-core > /dev/null 2>&1
for p in dockerd containerd; do
  [ -f {RUN}/$p.pid ] && kill $(cat {RUN}/$p.pid) 2> /dev/null
done
for p in dockerd containerd; do
  i=0; while [ -f {RUN}/$p.pid ] && kill -0 $(cat {RUN}/$p.pid) 2> /dev/null; do
    i=$((i+1)); [ $i -gt 100 ] && kill -9 $(cat {RUN}/$p.pid); sleep 0.2; done
done
umount -l {MOUNTPOINT} 2> /dev/null
for d in /dev/rbd[0-9]*; do [ -b $d ] && rbd device unmap -o force $d; done
umount -l /var/lib/hh-docker 2> /dev/null
ip addr del {VIP}/24 dev eth0 2> /dev/null
rm -rf {RUN}
true
"""


def teardown(node: Node) -> None:
    """Everything :func:`install` and :meth:`Node.start` started in the guest, stopped by PID;
    the data volume unmounted and unmapped, the VIP gone (the VMs serve later tests)."""
    with contextlib.suppress(GuestError):
        node.kill()
    with contextlib.suppress(GuestError):
        node.sh(TEARDOWN, timeout_s=240)


def install(lab: VmLab, name: str, image: str) -> Node:
    """Docker, the image, the compose project, the env file and keepalived's config."""
    node = Node(lab, name, {})
    r = node.sh(f"{REPO / 'lab' / 'vm' / 'node_docker.sh'} {IMAGE}", timeout_s=240)
    print(f"{name}: {r.stdout.strip()}")
    r.check()
    node.sh(f"mkdir -p {RUN}/harbor {RUN}/state {MOUNTPOINT} && cat > {ENV_FILE}",
            stdin=node_env(lab, name, image)).check()  # fmt: skip
    node.sh(f"cat > {RUN}/harbor/docker-compose.yml", stdin=compose_file(MOUNTPOINT)).check()
    node.sh(f"{HARBOR_HA} --env-file {ENV_FILE} render-keepalived", timeout_s=120).check()
    return node


def client_setup(lab: VmLab) -> None:
    """The client's address on the bridge (inside the bridge netns the lab created)."""
    subprocess.run(
        ["ip", "-n", lab.bridge_ns, "addr", "add", f"{CLIENT_IP}/24", "dev", "br0"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


def client_get(lab: VmLab, host: str, path: str, timeout_s: float = 20.0) -> str:
    """GET http://HOST:PORT/PATH from the bridge netns; the body ('' on any failure)."""
    try:
        res = subprocess.run(
            ["nsenter", f"--net=/run/netns/{lab.bridge_ns}", "curl", "-s", "-m",
             f"{timeout_s:g}", f"http://{host}:{PORT}{path}"],
            capture_output=True, text=True, timeout=timeout_s + 10,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return ""
    return res.stdout.strip()


def write_record(lab: VmLab, host: str, record: str, timeout_s: float = 20.0) -> bool:
    """One client write through ``host`` (the VIP, or a node's own address): acknowledged?"""
    return client_get(lab, host, f"/cgi-bin/write?r={record}", timeout_s) == f"ok {record}"


def wait_for(what: str, check: Any, timeout_s: float, poll_s: float = 2.0) -> Any:
    """Poll ``check()`` until it returns a truthy value; that value (a Timeout after)."""
    return poll(check, timeout_s, what, every_s=poll_s)
