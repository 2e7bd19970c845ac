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
fi
# The lab's two settings, on every start and only when missing: a stop between initdb and
# the appends (a demotion during the first start) left PostgreSQL on loopback only for good
# (measured: the data row's writer refused through the VIP).
conf="$PGDATA/postgresql.conf"
hba="$PGDATA/pg_hba.conf"
if ! grep -qx "listen_addresses = '\*'" "$conf"; then
    runuser -u postgres -- sh -c "echo \"listen_addresses = '*'\" >> $conf"
fi
if ! grep -qx 'host all all 0.0.0.0/0 trust' "$hba"; then
    runuser -u postgres -- sh -c "echo 'host all all 0.0.0.0/0 trust' >> $hba"
fi
# initdb fsyncs its files, the appends must be too: a crash failover (the node fenced with
# dirty pages) lost them once (the taker's PostgreSQL: "syntax error ... line 816").
sync "$conf" "$hba" "$PGDATA"
mkdir -p /run/postgresql
chown postgres:postgres /run/postgresql
# exec, not runuser: runuser stays PostgreSQL's parent and, on the stop signal, SIGKILLs it 2 s
# later, so a clean demotion left a crashed database (crash recovery on the taker, measured).
exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
    postgres -D "$PGDATA" -p "${PGPORT:-5432}"
