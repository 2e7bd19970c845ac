"""VM tier fixtures: the lab Ceph on a bridge and two QEMU/TCG VMs running Debian's kernel.

Session-scoped, because a boot costs ~15 s under TCG: a bridge netns, the
Ceph mon + OSD in their own netns on it (the integration launcher), and two
VMs ``vm-a`` and ``vm-b`` with their taps on the bridge: two nodes with the
real rbd module, the production ``rbd``/``ceph`` CLIs and the product from
this checkout (the host's root over 9p).  Each test gets fresh images.
Teardown kills the VMs by PID, removes the taps and netns, stops Ceph, also
after a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from lab.vm import net, qemu
from lab.vm.twonode import PYTHON, VM_TIMEOUTS, VmLab, running_vm_lab

__all__ = ["PYTHON", "VM_TIMEOUTS", "VmLab"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/vm/" in str(item.fspath):
            item.add_marker(pytest.mark.vm)


@pytest.fixture(scope="session")
def vm_lab() -> Iterator[VmLab]:
    if os.geteuid() != 0:
        pytest.skip("the VM tier needs root")
    if shutil.which(qemu.QEMU) is None:
        pytest.skip("qemu-system-x86 is not installed (scripts/setup installs it)")
    with running_vm_lab() as vm_lab:
        yield vm_lab


@pytest.fixture
def lab(vm_lab: VmLab) -> Iterator[VmLab]:
    """The VM tier for one test; afterwards every VM unmaps what is left (force) and the
    test's images go (their leftover watchers blocklisted)."""
    yield vm_lab
    for name in vm_lab.vms:
        if not vm_lab.vms[name].alive():
            continue
        net.heal(vm_lab.bridge_ns, vm_lab.vms[name].tap)
        vm_lab.run(
            name,
            ["sh", "-c", "umount -l /mnt/harbor-* 2>/dev/null; for d in /dev/rbd[0-9]*; do "
             "[ -b $d ] && rbd device unmap -o force $d; done; true"],
            timeout_s=180,
        )  # fmt: skip
    for image in vm_lab.images:
        vm_lab.cluster.remove_image(image)
    vm_lab.images.clear()
