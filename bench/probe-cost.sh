#!/usr/bin/env bash
# CPU cost of continuous probing: sidewatch running 20 HTTP probes at 1/s
# against nginx, next to blackbox_exporter asked for the same 20 probes per
# second (as Prometheus would, one /probe request each). Both run for the same
# time against the same nginx; the CPU each process used is read from
# /proc/PID/stat. Prints % of one core and the ratio.
#
# Usage: bench/probe-cost.sh [SECONDS]   (default 60)
set -euo pipefail
. "$(dirname "$0")/../scripts/lib/bench.sh"
secs=${1:-60}
bench_setup prometheus-blackbox-exporter
start_nginx

{
  echo "probes:"
  for i in $(seq 1 20); do
    echo "  - {name: p$i, interval: 1s, timeout: 900ms, http: {url: '$SIDEWATCH_TEST_NGINX/health', expect: {body_regex: '^ok'}}}"
  done
} > "$dir/sidewatch.yaml"
cat > "$dir/blackbox.yml" <<YML
modules:
  http_ok:
    prober: http
    timeout: 900ms
    http: { fail_if_body_not_matches_regexp: ["^ok"] }
YML

start_sidewatch
bb_port=$(free_port)
prometheus-blackbox-exporter --config.file "$dir/blackbox.yml" --web.listen-address "127.0.0.1:$bb_port" --log.level=warn &
bb=$!; echo $bb >> "$dir/pids"
wait_for_port "$bb_port" blackbox_exporter
sleep 2

# Drive blackbox_exporter: 20 probes per second, each its own request.
python3 - "$bb_port" "$SIDEWATCH_TEST_NGINX/health" "$secs" > "$dir/driver.log" 2>&1 <<'PY' &
import sys, time, threading, urllib.request
port, target, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
url = f"http://127.0.0.1:{port}/probe?module=http_ok&target={target}"
end = time.monotonic() + secs + 1
def probe(i):
    nxt = time.monotonic() + i / 20
    while nxt < end:
        time.sleep(max(0, nxt - time.monotonic()))
        urllib.request.urlopen(url, timeout=2).read()
        nxt += 1
threads = [threading.Thread(target=probe, args=(i,)) for i in range(20)]
[t.start() for t in threads]; [t.join() for t in threads]
PY
driver=$!

cpu_measure "$secs" "$bb" "$driver"
runs=$(curl -s "127.0.0.1:$sw_port/metrics" | awk '/^sidewatch_probe_runs_total.*result="success"/ {s+=$2} END {print s}')
printf '20 HTTP probes at 1/s for %.0fs (successful sidewatch runs so far: %.0f)\n' "$cpu_wall" "$runs"
cpu_report blackbox_exporter
