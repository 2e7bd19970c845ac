#!/bin/sh
# Stage 2 of a lab VM, run by the initramfs after switch_root into the overlay of the host's
# root: mounts, network, udevd, then the command agent (kept running). Parameters come from
# the kernel command line (harbor.ip, harbor.hostname, harbor.udev, harbor.python, harbor.agent).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    harbor.ip=*) IP="${arg#harbor.ip=}" ;;
    harbor.hostname=*) NAME="${arg#harbor.hostname=}" ;;
    harbor.udev=*) UDEV="${arg#harbor.udev=}" ;;
    harbor.python=*) PY="${arg#harbor.python=}" ;;
    harbor.agent=*) AGENT="${arg#harbor.agent=}" ;;
  esac
done
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
# /tmp stays the host's (read-only lower, tmpfs upper): the lab puts its Ceph conf there.
# The host's mount table and state must not leak in: fresh /etc/mtab view, no host fstab use.
ln -sf /proc/self/mounts /etc/mtab
hostname "$NAME"
ip link set lo up
ip addr add "$IP" dev eth0
ip link set eth0 up
# udevd from the unpacked udev package: rbd device map waits for its events.
tar -C "$UDEV" -cf - bin lib etc | tar -C / -xf - --keep-directory-symlink
/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add >/dev/null 2>&1
udevadm settle -t 20
echo "stage2: ready $NAME $IP"
while true; do
  "$PY" "$AGENT"
  echo "stage2: agent exited rc $?, restarting"
  sleep 1
done
