#!/usr/bin/env bash
# A throwaway Redis server for tests and benchmarks.
#
#   scripts/redis.sh start DIR   creates DIR, starts redis-server on 127.0.0.1 and a free
#                                port below the ephemeral range (no persistence, working
#                                files in DIR), waits until it answers PING and prints its
#                                URL: redis://127.0.0.1:PORT/0
#   scripts/redis.sh stop DIR    stops that server and removes DIR; safe to call twice or
#                                on a server that never started
#   scripts/redis.sh restart DIR stops it and starts it again on the same port, empty
#                                (outage tests)
#
# Logs: DIR/server.log. REDIS_KEEP=1 keeps DIR on stop.
set -euo pipefail

READY_SECONDS=30

die() {
        echo "scripts/redis.sh: $*" >&2
        exit 1
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

# run_server DIR PORT: starts the server in the background and waits for PING.
run_server() {
        local dir=$1 port=$2 deadline
        redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
                --daemonize no --logfile "$dir/server.log" --pidfile "$dir/redis.pid" \
                >/dev/null 2>&1 &
        echo $! >"$dir/pid"
        deadline=$((SECONDS + READY_SECONDS))
        until redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; do
                if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
                        return 1
                fi
                [ "$SECONDS" -lt "$deadline" ] || return 1
                sleep 0.05
        done
}

stop_server() {
        local dir=$1 pid
        [ -f "$dir/pid" ] || return 0
        pid=$(cat "$dir/pid")
        if kill -0 "$pid" 2>/dev/null; then
                kill "$pid" 2>/dev/null || true
                for _ in $(seq 100); do
                        kill -0 "$pid" 2>/dev/null || break
                        sleep 0.05
                done
                kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$dir/pid"
}

cmd_start() {
        local dir=$1 port url
        command -v redis-server >/dev/null || die "redis-server not found (scripts/deps.sh installs it)"
        mkdir -p "$dir"
        dir=$(cd "$dir" && pwd)
        for _ in 1 2 3 4 5; do
                port=$(pick_port) || die "no free port below the ephemeral range"
                if run_server "$dir" "$port"; then
                        echo "$port" >"$dir/port"
                        url="redis://127.0.0.1:$port/0"
                        echo "$url" >"$dir/url"
                        echo "$url"
                        return 0
                fi
                stop_server "$dir"
        done
        tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
        die "the server did not start"
}

cmd_stop() {
        local dir=$1
        [ -d "$dir" ] || return 0
        stop_server "$dir"
        if [ -n "${REDIS_KEEP:-}" ]; then
                echo "scripts/redis.sh: kept $dir" >&2
        else
                rm -rf "$dir"
        fi
}

cmd_restart() {
        local dir=$1 port
        [ -f "$dir/port" ] || die "$dir holds no started server"
        port=$(cat "$dir/port")
        stop_server "$dir"
        run_server "$dir" "$port" || die "restart failed"
}

[ $# -eq 2 ] || die "usage: scripts/redis.sh start|stop|restart DIR"
case "$1" in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
restart) cmd_restart "$2" ;;
*) die "usage: scripts/redis.sh start|stop|restart DIR" ;;
esac
