#!/usr/bin/env bash
# A second PostgreSQL 15 server whose flushes take SLOWFLUSH_US longer (slowflush.c),
# for `make bench-pg-slowflush`. Usage: server.sh start|stop. It keeps its data in
# var/slowflush/ and listens on 127.0.0.1:$SLOWFLUSH_PORT (5433); the server on 5432
# is not touched. Settings other than the port follow that server's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir="$root/var/slowflush"
port="${SLOWFLUSH_PORT:-5433}"
us="${SLOWFLUSH_US:-80}"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ]; then
    echo "server.sh: no PostgreSQL server binaries under /usr/lib/postgresql; install postgresql" >&2
    exit 2
fi
# initdb and postgres refuse to run as root; run them as the postgres account then.
as_owner() {
    if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else bash -c "$*"; fi
}

case "${1:-}" in
start)
    mkdir -p "$dir"
    gcc -O2 -shared -fPIC -o "$dir/slowflush.so" "$here/slowflush.c" -ldl
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "'$bin/initdb' -D '$dir/data' -A trust -U postgres" > "$dir/initdb.log"
        cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = on
autovacuum = off
shared_buffers = 128MB
max_wal_size = 1GB
CONF
    fi
    as_owner "'$bin/pg_ctl' -D '$dir/data' -m fast -w stop" > /dev/null 2>&1 || true
    as_owner "LD_PRELOAD='$dir/slowflush.so' SLOWFLUSH_US=$us '$bin/pg_ctl' -D '$dir/data' -o '-p $port' -l '$dir/server.log' -w start" > /dev/null
    psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc \
        "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
        psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE test"
    echo "postgresql://postgres@127.0.0.1:$port/test"
    ;;
stop)
    as_owner "'$bin/pg_ctl' -D '$dir/data' -m fast -w stop" > /dev/null
    ;;
*)
    echo "usage: $0 start|stop (SLOWFLUSH_US=80 SLOWFLUSH_PORT=5433)" >&2
    exit 2
    ;;
esac
