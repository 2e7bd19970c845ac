"""The VM tier itself: Debian's kernel with the real rbd module, on the lab bridge."""

from __future__ import annotations

from tests.vm.conftest import PYTHON, VmLab


def test_vm_runs_debian_kernel_with_krbd_and_reaches_ceph(lab: VmLab) -> None:
    """Each VM runs Debian's stock kernel with rbd loaded, the host's rbd CLI reaches the lab
    Ceph from inside it as the restricted user, and the checkout's product imports there."""
    conf, keyring = str(lab.cluster.conf), str(lab.cluster.harbor_keyring)
    for name in lab.vms:
        uname = lab.run(name, ["uname", "-r"]).check().stdout.strip()
        assert uname.endswith("-amd64"), uname
        assert lab.run(name, ["test", "-e", "/sys/bus/rbd/add_single_major"]).ok
        ls = lab.run(
            name, ["/usr/bin/rbd", "-c", conf, "--id", "harbor", "--keyring", keyring, "ls"]
        ).check()
        assert lab.cluster.image in ls.stdout.split()
        imp = lab.run(name, [PYTHON, "-c", "import harbor_ha.ceph, sys; print(sys.prefix)"])
        assert imp.check().stdout.strip().endswith(".venv")


def test_guest_command_timeout_is_enforced(lab: VmLab) -> None:
    """A command past its timeout is killed in the guest and reported as timed out."""
    res = lab.vms["vm-a"].agent.run(["sleep", "30"], timeout_s=1.0)
    assert res.timed_out and not res.ok and res.duration_s < 10
