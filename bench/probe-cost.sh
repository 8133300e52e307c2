#!/usr/bin/env bash
# CPU cost of continuous probing: sidewatch running 20 HTTP probes at 1/s
# against nginx, next to blackbox_exporter asked for the same 20 probes per
# second (as Prometheus would, one /probe request each). Both run for the same
# time against the same nginx; the CPU each process used is read from
# /proc/PID/stat. Prints % of one core and the ratio.
#
# Usage: bench/probe-cost.sh [SECONDS]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
. scripts/lib/bench.sh
bench_apt prometheus-blackbox-exporter prometheus-blackbox-exporter
bench_setup
start_nginx
tck=$(getconf CLK_TCK)

dir=$SIDEWATCH_TEST_DIR
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

sw_port=$(free_port); bb_port=$(free_port)
./target/release/sidewatch --log-level warn run --config "$dir/sidewatch.yaml" --listen "127.0.0.1:$sw_port" &
sw=$!; echo $sw >> "$dir/pids"
prometheus-blackbox-exporter --config.file "$dir/blackbox.yml" --web.listen-address "127.0.0.1:$bb_port" --log.level=warn &
bb=$!; echo $bb >> "$dir/pids"
wait_for_port "$sw_port" sidewatch; wait_for_port "$bb_port" blackbox_exporter
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

s0=$(cpu_ticks $sw); b0=$(cpu_ticks $bb); t0=$(date +%s.%N)
sleep "$secs"
s1=$(cpu_ticks $sw); b1=$(cpu_ticks $bb); t1=$(date +%s.%N)
wait $driver || true

runs=$(curl -s "127.0.0.1:$sw_port/metrics" | awk '/^sidewatch_probe_runs_total.*result="success"/ {s+=$2} END {print s}')
python3 - "$s0" "$s1" "$b0" "$b1" "$t0" "$t1" "$tck" "$runs" <<'PY'
import sys
s0, s1, b0, b1, t0, t1, tck, runs = map(float, sys.argv[1:])
wall = t1 - t0
sw = (s1 - s0) / tck / wall * 100
bb = (b1 - b0) / tck / wall * 100
print(f"20 HTTP probes at 1/s for {wall:.0f}s (successful sidewatch runs so far: {runs:.0f})")
print(f"  sidewatch          {sw:6.3f}% of one core")
print(f"  blackbox_exporter  {bb:6.3f}% of one core")
if sw > 0:
    print(f"  blackbox_exporter / sidewatch = {bb / sw:.1f}x")
PY
