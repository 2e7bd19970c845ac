#!/bin/sh
# A lab VM as a Harbor node: cgroup2, a containerd + dockerd of its own (state on tmpfs, no
# bridge, no iptables), and the node's image imported from a busybox rootfs (no registry).
# Run in the guest by lab/vm/daemon_node.py; prints the seconds dockerd took to answer.
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
IMAGE="$1"
D=/var/lib/hh-docker
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
mkdir -p "$D" /run/hh
mountpoint -q "$D" || mount -t tmpfs tmpfs "$D"
cat > "$D/containerd.toml" <<TOML
version = 2
root = "$D/containerd-root"
state = "/run/hh/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "/run/hh/containerd.sock"
TOML
t0=$(date +%s)
setsid containerd --config "$D/containerd.toml" > /run/hh/containerd.log 2>&1 < /dev/null &
echo $! > /run/hh/containerd.pid
while [ ! -S /run/hh/containerd.sock ]; do sleep 0.2; done
setsid dockerd -H unix:///run/docker.sock --data-root "$D/data" --exec-root /run/hh/docker \
  --pidfile /run/hh/dockerd.pid --containerd /run/hh/containerd.sock --bridge=none \
  --iptables=false --ip6tables=false --ip-masq=false --userland-proxy=false \
  > /run/hh/dockerd.log 2>&1 < /dev/null &
until docker version > /dev/null 2>&1; do sleep 0.5; done
echo "dockerd ready in $(( $(date +%s) - t0 )) s"
R=$(mktemp -d)
mkdir -p "$R/bin"
cp /bin/busybox "$R/bin/busybox"
for a in sh printf echo sync; do ln -s busybox "$R/bin/$a"; done
tar -C "$R" -c . | docker import -c 'ENTRYPOINT ["/bin/busybox"]' - "$IMAGE" > /dev/null
rm -rf "$R"
