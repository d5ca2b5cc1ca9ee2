#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for tests and benchmarks.
#
#   scripts/pg.sh start DIR   creates DIR (its parent must be reachable by the postgres
#                             user, e.g. a folder in /tmp), initializes a cluster in it, starts
#                             it on 127.0.0.1 and a free port below the ephemeral range, waits
#                             until it accepts connections, creates the database "domainmon"
#                             and prints its URL: postgres://postgres@127.0.0.1:PORT/domainmon
#   scripts/pg.sh stop DIR    stops that server (fast, then immediate) and removes DIR;
#                             safe to call twice or on a server that never started
#   scripts/pg.sh restart DIR restarts it on the same port (reconnection tests)
#
# PostgreSQL refuses to run as root: as root every server command runs as the postgres
# user, which then owns DIR. Durability is switched off (fsync, full page writes): the
# cluster lives for one test run. Logs: DIR/server.log. PG_BIN overrides the binaries'
# folder; PG_KEEP=1 keeps DIR on stop; PG_OPTIONS adds server settings to the start
# (`-c shared_buffers=1GB`, as the benchmarks do: see PG_BENCH_OPTIONS in bench/lib.sh).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DB_NAME=domainmon
READY_SECONDS=60 # a busy machine with 2 cores and several test runs

die() {
        echo "scripts/pg.sh: $*" >&2
        exit 1
}

# as_owner CMD...: runs CMD as the user that may run the server.
as_owner() {
        if [ "$(id -u)" -eq 0 ]; then
                runuser -u postgres -- "$@"
        else
                "$@"
        fi
}

# Ports below the kernel's ephemeral range cannot be taken by an outgoing connection
# between our check and the server's bind.
pick_port() {
        local lo hi span port
        read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
        hi=$((lo - 1))
        lo=$((hi - 10000))
        [ "$lo" -ge 1024 ] || lo=1024
        span=$((hi - lo))
        for _ in $(seq 200); do
                port=$((lo + (RANDOM * 32768 + RANDOM) % span))
                if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                        echo "$port"
                        return 0
                fi
        done
        return 1
}

cmd_start() {
        local dir=$1 port tries url
        [ -x "$PG_BIN/initdb" ] || die "$PG_BIN/initdb not found (scripts/deps.sh installs postgresql)"
        mkdir -p "$dir"
        dir=$(cd "$dir" && pwd)
        [ ! -e "$dir/data" ] || die "$dir already holds a cluster"
        if [ "$(id -u)" -eq 0 ]; then
                chown postgres: "$dir"
        fi
        chmod 700 "$dir"
        as_owner "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
                >"$dir/initdb.log" 2>&1 || {
                tail -n 20 "$dir/initdb.log" >&2
                die "initdb failed"
        }
        # A port can still be lost to another server starting at the same moment: try again
        # with another one.
        for tries in 1 2 3 4 5; do
                port=$(pick_port) || die "no free port below the ephemeral range"
                if as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
                        -t "$READY_SECONDS" -o "-p $port -k $dir -c listen_addresses=127.0.0.1 \
-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200 \
${PG_OPTIONS:-}" \
                        start >"$dir/pg_ctl.log" 2>&1; then
                        break
                fi
                as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
                if ! grep -q "could not bind\|Address already in use" "$dir/server.log" 2>/dev/null ||
                        [ "$tries" -eq 5 ]; then
                        tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
                        die "the server did not start"
                fi
        done
        echo "$port" >"$dir/port"
        local deadline=$((SECONDS + READY_SECONDS))
        until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; do
                [ "$SECONDS" -lt "$deadline" ] || die "the server on port $port is not ready after ${READY_SECONDS}s"
                sleep 0.2
        done
        "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB_NAME" ||
                die "cannot create the database $DB_NAME"
        url="postgres://postgres@127.0.0.1:$port/$DB_NAME"
        echo "$url" >"$dir/url"
        echo "$url"
}

cmd_stop() {
        local dir=$1
        [ -d "$dir" ] || return 0
        if [ -f "$dir/data/postmaster.pid" ]; then
                as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 20 stop >/dev/null 2>&1 ||
                        as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 20 stop \
                                >/dev/null 2>&1 || true
        fi
        if [ -n "${PG_KEEP:-}" ]; then
                echo "scripts/pg.sh: kept $dir" >&2
        else
                rm -rf "$dir"
        fi
}

cmd_restart() {
        local dir=$1 port
        [ -f "$dir/port" ] || die "$dir holds no started server"
        port=$(cat "$dir/port")
        as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w \
                -t "$READY_SECONDS" restart >"$dir/pg_ctl.log" 2>&1 || die "restart failed"
        local deadline=$((SECONDS + READY_SECONDS))
        until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; do
                [ "$SECONDS" -lt "$deadline" ] || die "the server is not ready after ${READY_SECONDS}s"
                sleep 0.2
        done
}

[ $# -eq 2 ] || die "usage: scripts/pg.sh start|stop|restart DIR"
case "$1" in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
restart) cmd_restart "$2" ;;
*) die "usage: scripts/pg.sh start|stop|restart DIR" ;;
esac
