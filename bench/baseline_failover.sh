#!/bin/bash
# The naive failover, as ONE plain sequential shell script (the benchmark's baseline).
#
# Run inside the standby's network namespace (nsenter --net, so its mounts are visible to the
# node's dockerd). It polls `ip -j addr` every 50 ms until the VIP is on the interface, then,
# strictly one after the other:
#   rbd status -> ceph osd blocklist add (every watcher) -> rbd device map -o exclusive
#   -> fsck -p -> mount -> docker compose up -d -> wait until `docker ps` shows every container
#   of the project healthy and :443 accepts, as the usual keepalived check scripts count a
#   healthy Harbor (there: 11 healthy goharbor containers and :443).
# Same commands, binaries and arguments as harbor-ha uses (see bench/failover.py, which
# passes them in the environment). Each phase's end is written to $BASE_LOG as
# "PHASE EPOCH_SECONDS" (date +%s.%N: the same clock as the bench's time.time()).
#
# Environment (all required): BASE_VIP (address only), BASE_IFACE, BASE_RBD (the rbd CLI),
# BASE_CEPH_ARGS (--id/-c/--keyring), BASE_IMAGE (POOL/IMAGE), BASE_FS_TYPE,
# BASE_MOUNT_OPTIONS, BASE_MOUNTPOINT, BASE_COMPOSE (the compose command line),
# BASE_COMPOSE_FILE, BASE_PROJECT, DOCKER_HOST, BASE_HTTPS_PORT, BASE_LOG,
# BASE_EXPIRE_S (blocklist expiry). Optional BASE_DEADLINE_S (give up waiting, default 120).
# It never removes a blocklist entry.
set -u

stamp() { echo "$1 $(date +%s.%N)" >>"$BASE_LOG"; }
die() { stamp "failed:$1"; echo "baseline: $1" >&2; exit 1; }

# shellcheck disable=SC2206
CEPH_ARGS_A=($BASE_CEPH_ARGS)
# shellcheck disable=SC2206
COMPOSE_A=($BASE_COMPOSE)

# How many containers a healthy Harbor runs: the project's services (asked before the fault).
expected=$("${COMPOSE_A[@]}" -p "$BASE_PROJECT" -f "$BASE_COMPOSE_FILE" config --services | wc -l)
[ "$expected" -gt 0 ] || die "no-services"
stamp armed
deadline=$(( $(date +%s) + ${BASE_DEADLINE_S:-120} ))
until ip -j addr show dev "$BASE_IFACE" | grep -q "\"local\":\"$BASE_VIP\""; do
    [ "$(date +%s)" -lt "$deadline" ] || die "vip-never-came"
    sleep 0.05
done
stamp vip

watchers=$("$BASE_RBD" "${CEPH_ARGS_A[@]}" status "$BASE_IMAGE" --format json) \
    || die "rbd-status"
for addr in $(echo "$watchers" | jq -r '.watchers[].address'); do
    ceph "${CEPH_ARGS_A[@]}" osd blocklist add "$addr" "$BASE_EXPIRE_S" || die "blocklist"
done
stamp fenced

device=$("$BASE_RBD" "${CEPH_ARGS_A[@]}" device map -o exclusive "$BASE_IMAGE" | tail -n1) \
    || die "map"
[ -b "$device" ] || die "map-no-device"
stamp mapped

fsck -t "$BASE_FS_TYPE" -p "$device"
[ $? -lt 4 ] || die "fsck"
stamp fsck

mount -t "$BASE_FS_TYPE" -o "$BASE_MOUNT_OPTIONS" "$device" "$BASE_MOUNTPOINT" || die "mount"
stamp mounted

"${COMPOSE_A[@]}" -p "$BASE_PROJECT" -f "$BASE_COMPOSE_FILE" up -d --remove-orphans \
    >/dev/null 2>&1 || die "compose-up"
stamp compose_up

healthy_n() {
    docker ps -q --filter "label=com.docker.compose.project=$BASE_PROJECT" \
        --filter health=healthy | wc -l
}
until [ "$(healthy_n)" -ge "$expected" ] \
    && timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$BASE_HTTPS_PORT" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || die "never-healthy"
    sleep 0.05
done
stamp healthy
