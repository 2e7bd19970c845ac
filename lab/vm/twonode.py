"""The VM tier as a running lab: the lab Ceph on a bridge and two QEMU/TCG VMs (vm-a, vm-b)
running Debian's kernel with the real rbd module, the production ``rbd``/``ceph`` CLIs and the
product from this checkout (the host's root over 9p).  Everything is stopped again on exit, by
PID, also after a failure.  Used by the tests/vm fixtures and by bench/krbd_steps.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harbor_ha.settings import Settings
from lab.ceph import CephCluster, start_cluster, stop_cluster
from lab.vm import net, qemu
from lab.vm.guest import GuestResult
from lab.vm.kernel import ensure_kernel

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")
SUBNET = "10.98.0"
CEPH_IP = f"{SUBNET}.20"
NODES = {"vm-a": 31, "vm-b": 32}
GUEST_PY_TIMEOUT_S = 240.0

# Timeouts for the product inside a TCG guest: userland there is 10-20x slower than native.
VM_TIMEOUTS: dict[str, Any] = {
    "command_timeout_s": 60.0,
    "map_timeout_s": 90.0,
    "unmap_timeout_s": 120.0,
    "fence_timeout_s": 90.0,
    "mount_timeout_s": 60.0,
    "unmount_timeout_s": 60.0,
    "fsck_timeout_s": 120.0,
    "format_timeout_s": 120.0,
}


@dataclass
class VmLab:
    """The running VM tier: cluster, VMs by name, the bridge netns."""

    cluster: CephCluster
    bridge_ns: str
    vms: dict[str, qemu.Vm]
    images: list[str] = field(default_factory=list)
    last_output: str = ""
    """stdout + stderr of the last steps() call (the product's log lines among them)."""

    def image(self, name: str, size_mb: int = 64) -> str:
        self.cluster.create_image(name, size_mb)
        self.images.append(name)
        return name

    def settings(self, image: str, node: str, **overrides: Any) -> Settings:
        fields: dict[str, Any] = {
            "rbd_bin": "/usr/bin/rbd",
            "mountpoint": Path(f"/mnt/harbor-{image}"),
            "node_name": node,
            **VM_TIMEOUTS,
        }
        fields.update(overrides)
        return self.cluster.settings(image=image, **fields)

    def run(self, vm: str, argv: list[str], timeout_s: float = 120.0) -> GuestResult:
        return self.vms[vm].agent.run(argv, timeout_s=timeout_s, cwd=str(REPO))

    def steps(self, vm: str, settings: Settings, *steps: str) -> list[dict[str, Any]]:
        """Run guest_steps STEPS in the VM with ``settings``; one record per step."""
        res = self.vms[vm].agent.run(
            [PYTHON, "-m", "lab.vm.guest_steps", *steps],
            timeout_s=GUEST_PY_TIMEOUT_S,
            stdin=settings.model_dump_json(),
            cwd=str(REPO),
        )
        self.last_output = res.stdout + res.stderr
        records = [json.loads(ln) for ln in res.stdout.splitlines() if ln.startswith("{")]
        if len(records) != len(steps):
            raise AssertionError(f"guest_steps {steps}: rc {res.rc}\n{res.stdout}\n{res.stderr}")
        return records


def on_each(names: Iterable[str], fn: Callable[[str], None]) -> None:
    """Run ``fn(name)`` for every name at once, one thread each (a guest is slow under TCG);
    the first error is raised once all have ended."""
    errors: list[BaseException] = []

    def one(name: str) -> None:
        try:
            fn(name)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@contextlib.contextmanager
def running_vm_lab() -> Iterator[VmLab]:
    """Bridge, Ceph and the two VMs; everything stopped again on exit (also on failure).

    Used by the ``vm_lab`` fixture and by bench/krbd_steps.py."""
    prefix = f"hv{os.getpid() % 100000}"
    bridge_ns, ceph_ns = f"{prefix}-br", f"{prefix}-ceph"
    workdir = Path(tempfile.mkdtemp(prefix="hhc-vm-"))
    vms: dict[str, qemu.Vm] = {}
    cluster: CephCluster | None = None
    started = time.monotonic()
    try:
        ensure_kernel()
        net.make_bridge(bridge_ns)
        net.add_host(bridge_ns, ceph_ns, f"{CEPH_IP}/24", f"{prefix}-c")
        # The Ceph files (conf, keyrings) must exist before the VMs boot: the guests see the
        # host's root through 9p with cache=loose, which does not notice files created later.
        cluster = start_cluster(workdir / "ceph", ceph_ns, CEPH_IP)

        def boot(name: str) -> None:
            host = NODES[name]
            vms[name] = qemu.launch(
                ensure_kernel(),
                name=name,
                address=f"{SUBNET}.{host}/24",
                mac=f"52:54:00:98:00:{host:02x}",
                bridge_ns=bridge_ns,
                tap=f"{prefix}-t{name[-1]}",
                workdir=workdir / name,
            )

        on_each(NODES, boot)
        print(
            f"\nvm_lab ready in {time.monotonic() - started:.1f} s (ceph {cluster.startup_s:.1f} s,"
            f" boots {', '.join(f'{n} {v.boot_s:.1f} s' for n, v in vms.items())})"
        )
        yield VmLab(cluster=cluster, bridge_ns=bridge_ns, vms=vms)
    finally:
        for vm in vms.values():
            qemu.stop(vm)
        if cluster is not None:
            stop_cluster(cluster, remove_workdir=False)
        net.del_netns(ceph_ns)
        net.del_netns(bridge_ns)
        shutil.rmtree(workdir, ignore_errors=True)
