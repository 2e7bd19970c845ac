#!/bin/sh
# First start: initdb into the (empty) mount; then PostgreSQL in the foreground, on every
# address of the node's netns (the lab's writer commits rows through the VIP; trust
# authentication: a lab of netns-only addresses).
set -eu
mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 0700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    runuser -u postgres -- initdb -D "$PGDATA" --auth=trust --username=postgres -E UTF8 >/dev/null
    runuser -u postgres -- sh -c "echo \"listen_addresses = '*'\" >> $PGDATA/postgresql.conf"
    runuser -u postgres -- sh -c "echo 'host all all 0.0.0.0/0 trust' >> $PGDATA/pg_hba.conf"
    # initdb fsyncs its files, these appends must be too: a crash failover (the node fenced
    # with dirty pages) lost them once (the taker's PostgreSQL: "syntax error ... line 816").
    sync "$PGDATA/postgresql.conf" "$PGDATA/pg_hba.conf" "$PGDATA"
fi
mkdir -p /run/postgresql
chown postgres:postgres /run/postgresql
# exec, not runuser: runuser stays PostgreSQL's parent and, on the stop signal, SIGKILLs it 2 s
# later, so a clean demotion left a crashed database (crash recovery on the taker, measured).
exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
    postgres -D "$PGDATA" -p "${PGPORT:-5432}"
