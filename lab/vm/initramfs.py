"""The busybox initramfs: load the module closure, mount the host root over 9p, switch_root.

The host's root is mounted read-only (9p, ``cache=loose``) under a tmpfs
overlay, so the guest runs the host's own ``rbd``, ``ceph``, e2fsprogs and the
checkout's python, and may still write anywhere (into its tmpfs).  After
``switch_root`` it runs ``stage2.sh`` from the checkout (its path is on the
kernel command line): network, udevd, then the command agent.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tempfile
from pathlib import Path

from lab.vm.kernel import KernelTree, module_closure

MODULES = [
    "virtio_pci",
    "virtio_net",
    "virtio_console",
    "9pnet_virtio",
    "9p",
    "overlay",
    "crc32c_generic",
    "ext4",
    "rbd",
]
"""What the guest needs; module_closure() adds their dependencies (libceph, libcrc32c, ...)."""
BUSYBOX = Path("/bin/busybox")

INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r ko; do
  insmod "/modules/$ko" || echo "initramfs: insmod $ko failed"
done </modules/order
stage2=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in harbor.stage2=*) stage2="${arg#harbor.stage2=}" ;; esac
done
mkdir -p /lower /rw /newroot
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=262144,cache=loose hostroot /lower \
  || { echo "initramfs: 9p mount failed"; poweroff -f; }
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
  || { echo "initramfs: overlay mount failed"; poweroff -f; }
for d in proc sys dev; do mount --move "/$d" "/newroot/$d"; done
echo "initramfs: switch_root to $stage2"
exec switch_root /newroot /bin/sh "$stage2"
"""


def initramfs_path(tree: KernelTree) -> Path:
    return tree.root.parent / f"initramfs-{tree.version}.cpio.gz"


def ensure_initramfs(tree: KernelTree) -> Path:
    """Build (once per kernel version) the gzip'ed newc cpio; return its path."""
    out = initramfs_path(tree)
    if out.is_file():
        return out
    with tempfile.TemporaryDirectory(prefix="harbor-ha-initramfs-") as tmp:
        root = Path(tmp)
        (root / "bin").mkdir()
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        (root / "modules").mkdir()
        names = []
        for ko in module_closure(tree, MODULES):
            shutil.copy2(ko, root / "modules" / ko.name)
            names.append(ko.name)
        (root / "modules" / "order").write_text("\n".join(names) + "\n")
        init = root / "init"
        init.write_text(INIT)
        init.chmod(0o755)
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        res = subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet"],
            cwd=root,
            input="\n".join(files).encode(),
            capture_output=True,
            timeout=120,
            check=True,
        )
        tmp_out = out.with_name(out.name + ".tmp")
        tmp_out.write_bytes(gzip.compress(res.stdout, compresslevel=1))
        tmp_out.rename(out)
    return out


if __name__ == "__main__":
    from lab.vm.kernel import ensure_kernel

    print(ensure_initramfs(ensure_kernel()))
