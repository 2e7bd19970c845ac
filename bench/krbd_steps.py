"""The storage steps on the real krbd (VM tier): how long each takes, as the product runs them.

Run as root from the repository top::

    .venv/bin/python -m bench.krbd_steps [--runs N]   (as root, from the repository top)

It starts the VM tier (tests/vm: the lab Ceph on a bridge, two QEMU/TCG VMs with Debian's
kernel), then N times: vm-a maps, checks, mounts, writes, unmounts, unmaps a fresh image
(promotion and clean demotion), and vm-b fences a live vm-a and maps (takeover). Each figure
is the product's own adapter call inside the guest (harbor_ha.ceph.Ceph,
harbor_ha.filesystem.Filesystem with a ProcessRunner, production rbd CLI), timed there.

TCG IS 10-20x SLOWER THAN NATIVE: these are not absolute times. They show where the time
goes on the real krbd and how steps compare; a real node is much faster (e.g. `ceph osd
blocklist add` 3.2-4.1 s in a VM vs 0.19 s natively).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess

from lab.vm.twonode import VmLab, running_vm_lab

PROMOTE = ["map", "format", "fsck", "mount", "write", "unmount", "unmap"]
TAKEOVER_OWNER = ["map", "format", "mount", "write"]
TAKEOVER = ["fence", "map", "fsck", "mount"]


def one_run(lab: VmLab, n: int, figures: dict[str, list[float]]) -> None:
    image = lab.image(f"bench-{n}")
    for rec in lab.steps("vm-a", lab.settings(image, "vm-a"), *PROMOTE):
        if not rec["ok"]:
            raise SystemExit(f"run {n}: {rec}")
        figures.setdefault(f"a.{rec['step']}", []).append(rec["duration_s"])
    image = lab.image(f"bench-{n}-t")
    for rec in lab.steps("vm-a", lab.settings(image, "vm-a"), *TAKEOVER_OWNER):
        if not rec["ok"]:
            raise SystemExit(f"run {n}: {rec}")
    for rec in lab.steps("vm-b", lab.settings(image, "vm-b"), *TAKEOVER):
        if not rec["ok"]:
            raise SystemExit(f"run {n}: {rec}")
        figures.setdefault(f"takeover.{rec['step']}", []).append(rec["duration_s"])
    for vm in ("vm-a", "vm-b"):
        lab.run(vm, ["sh", "-c", "umount -l /mnt/harbor-* 2>/dev/null; for d in /dev/rbd[0-9]*;"
                     " do [ -b $d ] && rbd device unmap -o force $d; done; true"], 180)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    figures: dict[str, list[float]] = {}
    with running_vm_lab() as lab:
        for n in range(args.runs):
            one_run(lab, n, figures)
            for image in lab.images:
                lab.cluster.remove_image(image)
            lab.images.clear()
    print(f"krbd storage steps, {args.runs} runs, QEMU/TCG guest (load before: {uptime.strip()})")
    print("TCG is 10-20x slower than native: relative figures, not absolute times.")
    print(f"{'step':<20} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, values in figures.items():
        print(
            f"{name:<20} {statistics.median(values):>9.2f} {min(values):>7.2f} {max(values):>7.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
