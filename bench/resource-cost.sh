#!/usr/bin/env bash
# CPU cost of resource sampling: sidewatch sampling a group of 50 processes
# (plus host, cgroup and itself) every second, next to process-exporter
# (Debian's prometheus-process-exporter) grouping the same 50 processes and
# scraped once a second, as Prometheus would. Same processes, same time; CPU
# read from /proc/PID/stat. Prints % of one core and the ratio.
#
# Usage: bench/resource-cost.sh [SECONDS]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
. scripts/lib/bench.sh
bench_apt prometheus-process-exporter prometheus-process-exporter
bench_setup
dir=$SIDEWATCH_TEST_DIR
tck=$(getconf CLK_TCK)

# 50 processes named swbench (a copy of sleep, so comm is distinctive).
cp "$(command -v sleep)" "$dir/swbench"
for _ in $(seq 1 50); do "$dir/swbench" 3600 & echo $! >> "$dir/pids"; done

cat > "$dir/sidewatch.yaml" <<YML
service:
  processes:
    - { label: bench, comm: swbench }
resources: { interval: 1s }
YML
cat > "$dir/process-exporter.yml" <<YML
process_names:
  - name: bench
    comm: [swbench]
YML
sw_port=$(free_port); pe_port=$(free_port)
./target/release/sidewatch --log-level warn run --config "$dir/sidewatch.yaml" --listen "127.0.0.1:$sw_port" &
sw=$!; echo $sw >> "$dir/pids"
prometheus-process-exporter -config.path "$dir/process-exporter.yml" -web.listen-address "127.0.0.1:$pe_port" >/dev/null 2>&1 &
pe=$!; echo $pe >> "$dir/pids"
wait_for_port "$sw_port" sidewatch; wait_for_port "$pe_port" process-exporter
sleep 3
count=$(curl -s "127.0.0.1:$sw_port/metrics" | awk '/^sidewatch_process_num_procs\{process="bench"\}/ {print $2}')

# Scrape process-exporter once a second, the way Prometheus drives it.
( end=$((SECONDS + secs + 1)); while [ $SECONDS -lt $end ]; do curl -s "127.0.0.1:$pe_port/metrics" >/dev/null; sleep 1; done ) &
driver=$!

s0=$(cpu_ticks $sw); p0=$(cpu_ticks $pe); t0=$(date +%s.%N)
sleep "$secs"
s1=$(cpu_ticks $sw); p1=$(cpu_ticks $pe); t1=$(date +%s.%N)
wait $driver || true
sample=$(curl -s "127.0.0.1:$sw_port/metrics" | awk '/^sidewatch_resources_sample_duration_seconds / {print $2}')
python3 - "$s0" "$s1" "$p0" "$p1" "$t0" "$t1" "$tck" "$count" "$sample" <<'PY'
import sys
s0, s1, p0, p1, t0, t1, tck, count, sample = map(float, sys.argv[1:])
wall = t1 - t0
sw = (s1 - s0) / tck / wall * 100
pe = (p1 - p0) / tck / wall * 100
print(f"sampling {count:.0f} processes + host + cgroup every 1s, for {wall:.0f}s")
print(f"  sidewatch         {sw:6.3f}% of one core (last sample took {sample * 1000:.1f} ms)")
print(f"  process-exporter  {pe:6.3f}% of one core")
if sw > 0:
    print(f"  process-exporter / sidewatch = {pe / sw:.1f}x")
PY
