#!/usr/bin/env bash
# Memory of the long analyses (issue 12 items 4 and 5):
#  - `over D` windows: peak RSS of `sidewatch load` at 200/s for SECONDS with
#    `p99 < 1s over 1h` against the same run without `over`; the window's
#    cost is the difference. With SIDEWATCH_BEFORE=path/to/an/older/sidewatch
#    the older binary is measured in the same run, for a before/after.
#  - the leak analysis of 7 days of 1 Hz samples: peak bytes allocated
#    (tests/leak_memory.rs, under a counting allocator), and what the old
#    list of every pairwise slope would have held.
#
# Usage: bench/analysis-memory.sh [SECONDS]   (default 150)
#   SIDEWATCH_BIN (default target/release/sidewatch, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-150}
. scripts/lib/servers.sh
SIDEWATCH_TEST_DIR=$(mktemp -d -t sidewatch-bench.XXXXXX)
export SIDEWATCH_TEST_DIR
trap stop_servers EXIT
bin=${SIDEWATCH_BIN:-target/release/sidewatch}
[ -n "${SIDEWATCH_BIN:-}" ] || cargo build --release --quiet
start_nginx
url="$SIDEWATCH_TEST_NGINX/health"

# Peak RSS (VmHWM, kB) of one `sidewatch load` run.
peak_rss() { # binary, extra args...
  local b=$1; shift
  "$b" load --url "$url" --rate 200/s --duration "${secs}s" "$@" >/dev/null 2>&1 &
  local pid=$! hwm=0 v
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$v" ] && hwm=$v
    sleep 0.5
  done
  wait "$pid" || true
  echo "$hwm"
}

measure() { # label, binary
  local plain windowed
  plain=$(peak_rss "$2" --threshold 'p99 < 1s')
  windowed=$(peak_rss "$2" --threshold 'p99 < 1s over 1h')
  printf '  %-7s peak RSS %7d kB plain, %7d kB with `over 1h`: the window costs %6d kB\n' \
    "$1" "$plain" "$windowed" $((windowed - plain))
}

echo "sidewatch load, 200/s for ${secs} s, one mix entry:"
[ -n "${SIDEWATCH_BEFORE:-}" ] && measure before "$SIDEWATCH_BEFORE"
measure after "$bin"

echo "leak analysis, 7 days of 1 Hz samples in 30 s windows:"
cargo test --quiet --test leak_memory -- --nocapture 2>&1 | grep -E '^7 days|^the O' | sed 's/^/  /'
