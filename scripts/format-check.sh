#!/usr/bin/env bash
# Fails when any tracked or new C file is not formatted per .clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$( (git ls-files '*.c' '*.h'; git ls-files --others --exclude-standard '*.c' '*.h') | sort -u)
[ -z "$files" ] && exit 0
bad=$(echo "$files" | xargs clang-format --dry-run 2>&1 | grep -c 'warning:' || true)
if [ "$bad" != "0" ]; then
  echo "$files" | xargs clang-format --dry-run 2>&1 | grep 'warning:' | cut -d: -f1 | sort -u | sed 's/^/needs clang-format: /'
  exit 1
fi
