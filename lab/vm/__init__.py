"""The VM tier of the lab: Debian's stock kernel in QEMU/TCG, so tests run on the real krbd.

kernel     fetch and unpack Debian's kernel and udev packages (cached per kernel version)
initramfs  the busybox initramfs that loads the modules and switches to the host's root
qemu       launch one VM (by PID), QMP, console log, its tap on the lab bridge
agent      the guest side of the command channel (runs inside the VM, stdlib only)
guest      the host side: run a command in the guest, get rc/stdout/stderr, with a timeout
net        the lab bridge netns, the Ceph netns on it, and the VMs' taps
"""
