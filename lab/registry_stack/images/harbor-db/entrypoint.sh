#!/bin/sh
# First start: initdb into the (empty) mount; then PostgreSQL in the foreground on loopback.
set -eu
mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 0700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    runuser -u postgres -- initdb -D "$PGDATA" --auth=trust --username=postgres -E UTF8 >/dev/null
    runuser -u postgres -- sh -c "echo \"listen_addresses = '127.0.0.1'\" >> $PGDATA/postgresql.conf"
fi
mkdir -p /run/postgresql
chown postgres:postgres /run/postgresql
exec runuser -u postgres -- postgres -D "$PGDATA" -p "${PGPORT:-5432}"
