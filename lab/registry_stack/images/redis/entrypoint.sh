#!/bin/sh
set -eu
mkdir -p /data/redis
chown redis:redis /data/redis
# exec (see harbor-db: runuser would SIGKILL redis 2 s after the stop signal)
exec setpriv --reuid=redis --regid=redis --init-groups -- \
    redis-server --bind 0.0.0.0 --port "${REDIS_PORT:-6379}" \
    --dir /data/redis --appendonly yes --appendfsync everysec --save "" --daemonize no \
    --protected-mode no
