#!/usr/bin/env bash
# Runs every test suite and ends with one summary line: "N passed, N failed".
#   1. formatting (.clang-format)
#   2. unit tests and fuzz-corpus replays (ctest) in the normal build
#   3. the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   4. integration tests (pytest) against the real binary and real servers on loopback
#   5. the web UI in a headless chromium (tests/browser, through tests/integration/test_ui.py)
# Before the unit tests it starts a throwaway RabbitMQ (scripts/rabbitmq.sh) and exports
# DM_TEST_AMQP_URL, so the bus contract also runs on the amqp backend, and
# DM_TEST_AMQP_RESTART, the command the broker-restart test runs; the broker is stopped on
# the way out, failures and interrupts included. A DM_TEST_AMQP_URL already set names an
# external broker instead (then the restart test is skipped unless DM_TEST_AMQP_RESTART is
# set too).
# Steps 2 and 3 run the store's contract against SQLite and against a throwaway PostgreSQL
# server started here (scripts/pg.sh) and stopped on the way out, also on failure. A server
# that cannot start is a failure, not a skip. The same goes for Redis (scripts/redis.sh,
# DM_TEST_REDIS_URL): the cache and rate limiter contracts run on it too.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BUILD_ASAN=${BUILD_ASAN:-build-asan}
passed=0
failed=0
log=$(mktemp -d)
rmq_dir=""
pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/dm-test-pg.XXXXXX")
redis_dir=$(mktemp -d "${TMPDIR:-/tmp}/dm-test-redis.XXXXXX")
cleanup() {
  ./scripts/pg.sh stop "$pg_dir"
  ./scripts/redis.sh stop "$redis_dir"
  if [ -n "$rmq_dir" ]; then
    ./scripts/rabbitmq.sh stop "$rmq_dir" >/dev/null 2>&1 || true
    rm -rf "$rmq_dir"
  fi
  rm -rf "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== postgres (throwaway server for the store tests)"
if DM_TEST_PG_URL=$(./scripts/pg.sh start "$pg_dir"); then
  export DM_TEST_PG_URL DM_TEST_PG_DIR="$pg_dir" DM_PG_SCRIPT="$PWD/scripts/pg.sh"
  echo "$DM_TEST_PG_URL"
else
  echo "FAILED: PostgreSQL did not start; the PostgreSQL store tests cannot run" >&2
  failed=$((failed + 1))
fi

echo "== redis (throwaway server for the cache and rate limiter tests)"
if DM_TEST_REDIS_URL=$(./scripts/redis.sh start "$redis_dir"); then
  export DM_TEST_REDIS_URL
  echo "$DM_TEST_REDIS_URL"
else
  echo "FAILED: Redis did not start; the Redis cache and rate limiter tests cannot run" >&2
  failed=$((failed + 1))
fi

count_ctest() { # $1 = output file
  local line total failed_n
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$1" | tail -n1)
  if [ -z "$line" ]; then failed=$((failed + 1)); return; fi
  failed_n=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/')
  total=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/')
  passed=$((passed + total - failed_n))
  failed=$((failed + failed_n))
}

# The output of every failed test, which the summary lines above leave out.
show_failures() { # $1 = ctest output file
  grep -q 'tests failed out of' "$1" && ! grep -q ' 0 tests failed out of' "$1" || return 0
  echo "-- output of the failed tests:"
  awk '/\*\*\*Failed|\*\*\*Exception|\*\*\*Timeout/ {show = 1} /^ *[0-9]+\/[0-9]+ Test/ && !/\*\*\*/ {show = 0} show' "$1" | tail -n 200
}

echo "== format"
if ./scripts/format-check.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

echo "== RabbitMQ for the amqp bus tests"
if [ -n "${DM_TEST_AMQP_URL:-}" ]; then
  echo "using the broker in DM_TEST_AMQP_URL"
else
  rmq_dir=$(mktemp -d /tmp/dm-rabbitmq.XXXXXX)
  t0=$SECONDS
  if url=$(./scripts/rabbitmq.sh start "$rmq_dir"); then
    export DM_TEST_AMQP_URL="$url"
    export DM_TEST_AMQP_RESTART="$PWD/scripts/rabbitmq.sh restart $rmq_dir >/dev/null"
    echo "broker ready in $((SECONDS - t0)) s on ${url##*@}"
  else
    echo "could not start a throwaway RabbitMQ (see above)"
    failed=$((failed + 1))
  fi
fi

echo "== unit ($BUILD)"
(cd "$BUILD" && ctest --output-on-failure -j "$(nproc)") 2>&1 | tee "$log/unit.txt" | grep -E '^ *[0-9]+/[0-9]+ Test|tests passed|Failed|\*\*\*' || true
count_ctest "$log/unit.txt"
show_failures "$log/unit.txt"

echo "== unit under ASan+UBSan ($BUILD_ASAN)"
(cd "$BUILD_ASAN" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j "$(nproc)") 2>&1 | tee "$log/asan.txt" | grep -E 'tests passed|Failed|\*\*\*|ERROR' || true
count_ctest "$log/asan.txt"
show_failures "$log/asan.txt"

echo "== integration"
DM_BIN="$PWD/$BUILD/domainmon" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration \
  --deselect tests/integration/test_ui.py::test_browser 2>&1 | tee "$log/it.txt"
line=$(grep -E '[0-9]+ (passed|failed|errors?).* in [0-9.]+s' "$log/it.txt" | tail -n1)
p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
f=$(echo "$line" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s+=$1} END {print s+0}')
[ -z "$line" ] && f=1
passed=$((passed + ${p:-0}))
failed=$((failed + ${f:-0}))

# 5. the web UI in Debian's chromium, driven by playwright-core (tests/browser, installed
# here with `npm ci` from its lock file; no browser is ever downloaded). Each step of
# tests/browser/ui.test.mjs counts once.
echo "== browser (chromium + playwright-core)"
if (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent); then
  DM_BIN="$PWD/$BUILD/domainmon" /usr/bin/python3 -m pytest -q -s -p no:cacheprovider \
    tests/integration/test_ui.py::test_browser 2>&1 | tee "$log/browser.txt"
  line=$(grep -E '^# [0-9]+ passed, [0-9]+ failed' "$log/browser.txt" | tail -n1)
  if [ -z "$line" ]; then
    failed=$((failed + 1)) # it did not get as far as its summary
  else
    bp=$(echo "$line" | awk '{print $2}')
    bf=$(echo "$line" | awk '{print $4}')
    passed=$((passed + bp))
    failed=$((failed + bf))
    # All steps passed but the test around them did not (a server did not stop cleanly).
    if [ "$bf" -eq 0 ] && ! grep -qE '[0-9]+ passed in' "$log/browser.txt"; then
      failed=$((failed + 1))
    fi
  fi
else
  echo "FAILED: npm ci in tests/browser"
  failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
