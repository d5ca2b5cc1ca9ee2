# bench/lib.sh: the set-up the benchmarks share, sourced by bench/scan, bench/distributed
# and bench/store: a generated zone of N names (A, AAAA, MX, TXT each) served by a
# loopback Knot, the matching dnsperf query file, a free port, an import of the names
# through the API of a running domain-service, and the median and ratio helpers.
#
# The sourcing script sets BENCH (its name, for messages), ROOT, BIN, N, PY and WORK, and
# calls bench_stop_pids from its exit trap.

BENCH_PIDS=()

# The benchmarks' PostgreSQL (scripts/pg.sh) gets buffers that hold the domains table and
# its indexes at 1,000,000 domains (about 700 MB), as docs/deploy.md advises for real
# servers: 128 MB, PostgreSQL's default, makes every claim at that size read and write
# pages through the kernel. The same setting at every size. PG_OPTIONS adds to it.
PG_BENCH_OPTIONS="-c shared_buffers=1GB ${PG_OPTIONS:-}"

die() {
        echo "$BENCH: $*" >&2
        exit 1
}

# bench_stop_pids: TERM, then KILL after 5 s, every process recorded in BENCH_PIDS.
bench_stop_pids() {
        local pid
        for pid in ${BENCH_PIDS[@]+"${BENCH_PIDS[@]}"}; do
                bench_stop_pid "$pid"
        done
        BENCH_PIDS=()
}

bench_stop_pid() {
        local pid=$1
        kill -0 "$pid" 2>/dev/null || return 0
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
}

bench_build() { # BUILD
        echo "== build ($1)"
        if ! make --no-print-directory build BUILD="$1" >"$WORK/build.log" 2>&1; then
                tail -n 30 "$WORK/build.log" >&2
                die "make build failed"
        fi
        [ -x "$BIN" ] || die "$BIN was not built"
}

# A TCP and UDP port free on 127.0.0.1.
free_port() {
        "$PY" - <<'PYEOF'
import socket
for _ in range(100):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        u.close()
        t.close()
    print(port)
    break
PYEOF
}

# bench_zone: $WORK/zones/bench.test.zone with N names n000001... and $WORK/queries.txt,
# the 4N name/type queries for dnsperf.
bench_zone() {
        echo "== generating $N names x 4 types"
        mkdir -p "$WORK/zones" "$WORK/knotdb" "$WORK/run"
        awk -v n="$N" 'BEGIN {
                print "$ORIGIN bench.test."
                print "$TTL 300"
                print "@ SOA ns1.bench.test. hostmaster.bench.test. 1 3600 900 604800 300"
                print "@ NS ns1.bench.test."
                print "ns1 A 127.0.0.1"
                print "mx A 127.0.0.2"
                for (i = 1; i <= n; i++) {
                        name = sprintf("n%06d", i)
                        printf "%s A 10.%d.%d.%d\n", name, int(i / 65536) % 256, int(i / 256) % 256, i % 256
                        printf "%s AAAA 2001:db8::%x:%x\n", name, int(i / 65536), i % 65536
                        printf "%s MX 10 mx.bench.test.\n", name
                        printf "%s TXT \"v=bench %d\"\n", name, i
                }
        }' >"$WORK/zones/bench.test.zone"
        awk -v n="$N" 'BEGIN {
                for (i = 1; i <= n; i++) {
                        name = sprintf("n%06d.bench.test", i)
                        printf "%s A\n%s AAAA\n%s MX\n%s TXT\n", name, name, name, name
                }
        }' >"$WORK/queries.txt"
}

# bench_knot: starts knotd on the zone; sets DNS_PORT and KNOT_PID (also in BENCH_PIDS).
DNS_PORT=
KNOT_PID=
bench_knot() {
        DNS_PORT=$(free_port)
        cat >"$WORK/knot.conf" <<KNOTEOF
server:
    listen: 127.0.0.1@$DNS_PORT
    rundir: "$WORK/run"
log:
  - target: stderr
    any: warning
database:
    storage: "$WORK/knotdb"
template:
  - id: default
    storage: "$WORK/zones"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
zone:
  - domain: bench.test.
KNOTEOF
        echo "== starting knotd on 127.0.0.1:$DNS_PORT"
        knotd -c "$WORK/knot.conf" >"$WORK/knotd.log" 2>&1 &
        KNOT_PID=$!
        BENCH_PIDS+=("$KNOT_PID")
        local i
        for i in $(seq 600); do
                if kdig @127.0.0.1 -p "$DNS_PORT" +short +retry=0 +timeout=1 \
                        "n$(printf %06d "$N").bench.test" A 2>/dev/null | grep -q .; then
                        return 0
                fi
                kill -0 "$KNOT_PID" 2>/dev/null || { tail -n 20 "$WORK/knotd.log" >&2; die "knotd exited"; }
                sleep 0.1
        done
        tail -n 5 "$WORK/knotd.log" >&2
        die "knotd did not answer within 60 s"
}

# bench_service LABEL ENV... -- SERVICE: starts `domainmon SERVICE` in the background with
# ENV (NAME=VALUE words) on a free DM_LISTEN; sets SVC_PID and SVC_PORT (the process is
# also in BENCH_PIDS), output in $WORK/LABEL.out and .err. Waits for /healthz.
SVC_PID=
SVC_PORT=
bench_service() {
        local label=$1
        shift
        local envs=()
        while [ $# -gt 0 ] && [ "$1" != "--" ]; do
                envs+=("$1")
                shift
        done
        shift
        SVC_PORT=$(free_port)
        # The API's rate limits are for clients; a benchmark's imports of 1,000,000 names
        # (100 requests of the costly kind) would wait minutes on the default 30/m.
        env DM_LISTEN="127.0.0.1:$SVC_PORT" DM_LOG_LEVEL="${BENCH_LOG_LEVEL:-warn}" \
                DM_RATE_LIMIT=1000000/m DM_RATE_LIMIT_EXPENSIVE=100000/m ${envs[@]+"${envs[@]}"} \
                "$BIN" "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" &
        SVC_PID=$!
        BENCH_PIDS+=("$SVC_PID")
        local i
        for i in $(seq 600); do
                if curl -fs -o /dev/null "http://127.0.0.1:$SVC_PORT/healthz"; then
                        return 0
                fi
                kill -0 "$SVC_PID" 2>/dev/null || { cat "$WORK/$label.err" >&2; die "domainmon $* ($label) exited"; }
                sleep 0.1
        done
        die "domainmon $* ($label) did not answer /healthz within 60 s"
}

# bench_admin_key LABEL: the first admin key a service printed in $WORK/LABEL.out.
bench_admin_key() {
        local key i
        for i in $(seq 200); do
                key=$(sed -n 's/^admin API key (shown once): *//p' "$WORK/$1.out" | head -n1)
                if [ -n "$key" ]; then
                        echo "$key"
                        return 0
                fi
                sleep 0.05
        done
        die "no admin key from $1"
}

# bench_import PORT KEY: imports the N names with their 4 types through the API of the
# domain-service on PORT, in batches of 10,000.
bench_import() {
        echo "== importing $N domains through the API (batches of 10000)"
        N="$N" BATCH=10000 PORT="$1" KEY="$2" "$PY" - <<'PYEOF' || die "import failed"
import http.client, json, os, sys, time

n, batch = int(os.environ["N"]), int(os.environ["BATCH"])
types = ["A", "AAAA", "MX", "TXT"]
names = [f"n{i:06d}.bench.test" for i in range(1, n + 1)]
hdr = {"Authorization": "Bearer " + os.environ["KEY"], "Content-Type": "application/json"}
conn = http.client.HTTPConnection("127.0.0.1", int(os.environ["PORT"]), timeout=600)
t0 = time.monotonic()
for i in range(0, n, batch):
    chunk = names[i:i + batch]
    conn.request("POST", "/api/v1/domains/import",
                 body=json.dumps({"names": chunk, "record_types": types}), headers=hdr)
    r = conn.getresponse()
    body = r.read()
    if r.status // 100 != 2:
        sys.exit(f"import answered {r.status}: {body[:300]!r}")
    doc = json.loads(body)
    if doc.get("added", 0) + doc.get("exists", 0) != len(chunk):
        sys.exit(f"import did not take every name: {body[:300]!r}")
t1 = time.monotonic()
print(f"  imported {n} domains in {t1 - t0:.2f} s ({n / (t1 - t0):.0f}/s)")
PYEOF
}

# median over the values on stdin (one a line); 0 when there are none.
median_of() {
        sort -g | awk '{ v[NR] = $1 } END {
                if (NR == 0) { print 0; exit }
                if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B: A / B with two decimals, n/a when B is not positive.
ratio() {
        awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

# field NAME LINE: the value of NAME=... in a logfmt-like summary line.
field() {
        echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1
}

# tree_ticks PID...: the CPU time (clock ticks, CLK_TCK a second; user + system) the
# processes and every process under them have used, counting children that already exited
# (cutime/cstime).
CLK_TCK=$(getconf CLK_TCK)
tree_ticks() {
        local pid kids sum=0 t
        for pid in "$@"; do
                [ -r "/proc/$pid/stat" ] || continue
                t=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }') || t=0
                sum=$((sum + ${t:-0}))
                kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
                # shellcheck disable=SC2086 # one pid a word
                [ -z "${kids// /}" ] || sum=$((sum + $(tree_ticks $kids)))
        done
        echo "$sum"
}
