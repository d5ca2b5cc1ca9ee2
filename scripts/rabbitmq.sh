#!/usr/bin/env bash
# A throwaway RabbitMQ for tests, kept apart from any other broker on the machine: its own
# folder, node name, epmd and ports on 127.0.0.1.
#
#   scripts/rabbitmq.sh start DIR     start one; prints its amqp:// URL on stdout
#   scripts/rabbitmq.sh stop DIR      stop it and its epmd (the folder stays)
#   scripts/rabbitmq.sh restart DIR   stop and start it on the same ports and data
#   scripts/rabbitmq.sh url DIR       print the URL again
#   scripts/rabbitmq.sh queues DIR    each queue's name and messages (ready and unacked)
#
# Why it looks like this (docs and TESTING.md): Debian's broker runs as the `rabbitmq` user,
# so DIR belongs to it; ports are picked below the kernel's ephemeral range, where an
# outgoing connection cannot take them first; the server and rabbitmqctl talk to an epmd of
# our own (one the node starts itself can lose a race at boot: "nodistribution"), and
# await_startup is only asked once epmd lists the node, or it gives up at once.
set -euo pipefail

RMQ_BIN=/usr/lib/rabbitmq/bin
DEADLINE=${DM_RABBITMQ_DEADLINE:-120} # seconds for one start, a busy machine included
USER_NAME=dmtest
USER_PASS=dmtest-pass

die() {
  echo "rabbitmq.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start|stop|restart|url|queues DIR" >&2
  exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

# A port nobody listens on, below the ephemeral range.
pick_port() {
  local low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
  local top=$((low - 1)) base=10000 p
  [ "$top" -gt "$base" ] || top=$((base + 1000))
  for _ in $(seq 1 200); do
    p=$((base + RANDOM % (top - base)))
    if ! ss -Htan "( sport = :$p )" | grep -q .; then
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

as_rabbitmq() {
  runuser -u rabbitmq -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$dir/home" \
    LANG=C.UTF-8 LC_ALL=C.UTF-8 ERL_EPMD_PORT="$EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1 "$@"
}

ctl() {
  as_rabbitmq "$RMQ_BIN/rabbitmqctl" -n "$NODE" "$@"
}

load_state() {
  [ -f "$dir/state" ] || die "$dir has no broker state (was it started with $0 start?)"
  # shellcheck disable=SC1091
  . "$dir/state"
}

url() {
  echo "amqp://$USER_NAME:$USER_PASS@127.0.0.1:$AMQP_PORT/"
}

epmd_up() {
  as_rabbitmq epmd -port "$EPMD_PORT" -names >/dev/null 2>&1
}

node_registered() {
  as_rabbitmq epmd -port "$EPMD_PORT" -names 2>/dev/null | grep -q "^name ${NODE%@*} "
}

server_alive() {
  [ -f "$dir/server.pid" ] && kill -0 "$(cat "$dir/server.pid")" 2>/dev/null
}

start_epmd() {
  epmd_up && return 0
  as_rabbitmq epmd -port "$EPMD_PORT" -address 127.0.0.1 -daemon
  for _ in $(seq 1 100); do
    epmd_up && return 0
    sleep 0.1
  done
  die "epmd did not come up on port $EPMD_PORT"
}

# Starts the node once; returns non-zero when it died or missed the deadline.
start_server() {
  : >"$dir/log/server.out"
  chown rabbitmq:rabbitmq "$dir/log/server.out"
  setsid runuser -u rabbitmq -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$dir/home" \
    LANG=C.UTF-8 LC_ALL=C.UTF-8 \
    ERL_EPMD_PORT="$EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_NODENAME="$NODE" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$AMQP_PORT" \
    RABBITMQ_DIST_PORT="$DIST_PORT" \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_PID_FILE="$dir/rabbit.pid" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
    RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    "$RMQ_BIN/rabbitmq-server" >>"$dir/log/server.out" 2>&1 </dev/null &
  echo $! >"$dir/server.pid"

  local end=$((SECONDS + DEADLINE))
  until node_registered; do
    server_alive || return 1
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
  local left=$((end - SECONDS))
  [ $left -gt 5 ] || left=5
  ctl await_startup --timeout "$left" >>"$dir/log/ctl.out" 2>&1 || return 1
  server_alive
}

# Ends the node: politely, then by the pid we started (never by name).
stop_server() {
  if node_registered; then
    ctl stop "$dir/rabbit.pid" >>"$dir/log/ctl.out" 2>&1 || true
  fi
  if [ -f "$dir/server.pid" ]; then
    local pid
    pid=$(cat "$dir/server.pid")
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      # setsid made it a process group leader: end the group it leads.
      kill -TERM -- "-$pid" 2>/dev/null || true
      sleep 1
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$dir/server.pid"
  fi
  # The beam may outlive the wrapper when the wrapper was killed.
  if [ -f "$dir/rabbit.pid" ]; then
    local bpid
    bpid=$(cat "$dir/rabbit.pid" 2>/dev/null || true)
    [ -n "$bpid" ] && kill -KILL "$bpid" 2>/dev/null || true
    rm -f "$dir/rabbit.pid"
  fi
}

stop_epmd() {
  epmd_up && as_rabbitmq epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
}

fail_start() {
  echo "rabbitmq.sh: the broker did not start; last lines of its output:" >&2
  tail -n 30 "$dir/log/server.out" >&2 2>/dev/null || true
  tail -n 10 "$dir/log/ctl.out" >&2 2>/dev/null || true
  stop_server
  stop_epmd
  exit 1
}

case "$cmd" in
start)
  [ -x "$RMQ_BIN/rabbitmq-server" ] || die "rabbitmq-server is not installed (make deps)"
  [ "$(id -u)" -eq 0 ] || die "must run as root (the broker switches to the rabbitmq user)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ ! -f "$dir/state" ] || die "$dir already holds a broker; stop it first"
  mkdir -p "$dir/mnesia" "$dir/log" "$dir/home"
  cat >"$dir/rabbitmq.conf" <<EOF
loopback_users = none
default_user = $USER_NAME
default_pass = $USER_PASS
log.console = false
log.file.level = info
EOF
  echo '[].' >"$dir/enabled_plugins"
  : >"$dir/rabbitmq-env.conf"
  chown -R rabbitmq:rabbitmq "$dir"
  chmod 755 "$dir"

  started=0
  for attempt in 1 2 3; do
    AMQP_PORT=$(pick_port)
    DIST_PORT=$(pick_port)
    EPMD_PORT=$(pick_port)
    [ "$AMQP_PORT" != "$DIST_PORT" ] && [ "$DIST_PORT" != "$EPMD_PORT" ] &&
      [ "$AMQP_PORT" != "$EPMD_PORT" ] || continue
    NODE="dmtest$$x$attempt@localhost"
    echo "listeners.tcp.1 = 127.0.0.1:$AMQP_PORT" >"$dir/listeners.conf"
    cat "$dir/listeners.conf" >>"$dir/rabbitmq.conf"
    cat >"$dir/state" <<EOF
AMQP_PORT=$AMQP_PORT
DIST_PORT=$DIST_PORT
EPMD_PORT=$EPMD_PORT
NODE=$NODE
EOF
    start_epmd
    if start_server; then
      started=1
      break
    fi
    echo "rabbitmq.sh: start attempt $attempt failed, retrying on other ports" >&2
    tail -n 5 "$dir/log/server.out" >&2 2>/dev/null || true
    stop_server
    stop_epmd
    # The next attempt writes its own listener line.
    sed -i '/^listeners\.tcp\./d' "$dir/rabbitmq.conf"
    rm -rf "$dir/mnesia" && mkdir -p "$dir/mnesia" && chown rabbitmq:rabbitmq "$dir/mnesia"
  done
  [ $started -eq 1 ] || {
    rm -f "$dir/state"
    fail_start
  }
  url
  ;;
stop)
  load_state
  stop_server
  stop_epmd
  rm -f "$dir/state"
  ;;
restart)
  load_state
  stop_server
  start_epmd
  if ! start_server; then
    # Same ports and data; a second try covers a slow release of the listener.
    stop_server
    start_server || fail_start
  fi
  url
  ;;
url)
  load_state
  url
  ;;
queues)
  load_state
  ctl list_queues -q --no-table-headers name messages
  ;;
*)
  usage
  ;;
esac
