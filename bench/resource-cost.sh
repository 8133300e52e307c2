#!/usr/bin/env bash
# CPU cost of resource sampling: sidewatch sampling a group of 50 processes
# (plus host, cgroup and itself) every second, next to process-exporter
# (Debian's prometheus-process-exporter) grouping the same 50 processes and
# scraped once a second, as Prometheus would. Same processes, same time; CPU
# read from /proc/PID/stat. Prints % of one core and the ratio.
#
# Usage: bench/resource-cost.sh [SECONDS]   (default 60)
set -euo pipefail
. "$(dirname "$0")/../scripts/lib/bench.sh"
secs=${1:-60}
bench_setup prometheus-process-exporter

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
start_sidewatch
pe_port=$(free_port)
prometheus-process-exporter -config.path "$dir/process-exporter.yml" -web.listen-address "127.0.0.1:$pe_port" >/dev/null 2>&1 &
pe=$!; echo $pe >> "$dir/pids"
wait_for_port "$pe_port" process-exporter
sleep 3
count=$(curl -s "127.0.0.1:$sw_port/metrics" | awk '/^sidewatch_process_num_procs\{process="bench"\}/ {print $2}')

# Scrape process-exporter once a second, the way Prometheus drives it.
( end=$((SECONDS + secs + 1)); while [ $SECONDS -lt $end ]; do curl -s "127.0.0.1:$pe_port/metrics" >/dev/null; sleep 1; done ) &
driver=$!

cpu_measure "$secs" "$pe" "$driver"
sample=$(curl -s "127.0.0.1:$sw_port/metrics" | awk '/^sidewatch_resources_sample_duration_seconds / {print $2}')
printf 'sampling %.0f processes + host + cgroup every 1s, for %.0fs\n' "$count" "$cpu_wall"
cpu_report process-exporter "last sample took $(awk -v s="$sample" 'BEGIN { printf "%.1f", s * 1000 }') ms"
