#!/bin/sh
set -eu
mkdir -p /data/redis
chown redis:redis /data/redis
exec runuser -u redis -- redis-server --bind 127.0.0.1 --port "${REDIS_PORT:-6379}" \
    --dir /data/redis --appendonly yes --appendfsync everysec --save "" --daemonize no \
    --protected-mode no
