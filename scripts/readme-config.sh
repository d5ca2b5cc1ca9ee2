#!/usr/bin/env bash
# Rewrites the configuration table of README.md from the binary's configuration table
# (`domainmon config --markdown`, built from lib/conf/conf.c), between the markers
# <!-- config-table begin --> and <!-- config-table end -->. tests/integration/test_cli.py
# checks that the two agree, so a setting changed in conf.c and not here fails the tests.
#   scripts/readme-config.sh [path/to/domainmon]   (default build/domainmon)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-build/domainmon}")
table=$(mktemp)
trap 'rm -f "$table" README.md.new' EXIT
# From / with a clean environment: no .env or variable of the caller's gets in the way.
(cd / && env -i PATH="$PATH" "$bin" config --markdown) >"$table"
awk -v table="$table" '
  /<!-- config-table begin -->/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
  /<!-- config-table end -->/ { skip = 0 }
  !skip { print }
' README.md >README.md.new
grep -q '<!-- config-table end -->' README.md.new
mv README.md.new README.md
