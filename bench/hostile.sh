#!/usr/bin/env bash
# "The sidewatch process must never be the reason its pod suffers" (issue 12):
# one sidecar against, all at once,
#   - a hostile target (bench/hostile_server.py): a 1 GiB body, an endless
#     chunked body, a head trickled at 1 byte/s, an endless redirect chain;
#   - 200 probes of a refused port every 100 ms (2000 failures/s;
#     REFUSED_PROBES=N for another count);
#   - 8000 clients holding connections to /metrics (half idle, half after a
#     keep-alive scrape), reconnecting 1-5 s after the server closes them;
# while a scraper fetches /metrics every 50 ms on a new connection (also
# for 10 s before the flood: the quiet baseline of the same sidecar).
# Prints RSS (before, peak, after), /metrics latency (p50, p99, max, errors),
# failures per second, open connections and evictions. Targets: RSS under
# 64 MB, /metrics p99 under 10 ms. With cgroup v1 writable (root), the
# sidecar runs under the chart's limits (256 MiB, 500m); else it says so.
#
# Usage: bench/hostile.sh [SECONDS]   (default 30; about SECONDS + 30 s)
#        SIDEWATCH_BIN=target/debug/sidewatch bench/hostile.sh   (no release build)
#        REFUSED_PROBES=20 bench/hostile.sh                       (a small exposition)
#        MAX_CONNECTIONS=65536 bench/hostile.sh                   (about no cap)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench.sh
seconds=${1:-30}
# Each refused probe fails 10 times a second; the exposition grows with them
# (about 7.5 KB per probe), and so does the cost of a scrape.
refused_probes=${REFUSED_PROBES:-200}
# server.max_connections; MAX_CONNECTIONS=65536 is about the uncapped server.
max_connections=${MAX_CONNECTIONS:-128}
if [ -n "${SIDEWATCH_BIN:-}" ]; then
  SIDEWATCH_TEST_DIR=$(mktemp -d -t sidewatch-bench.XXXXXX)
  export SIDEWATCH_TEST_DIR
  trap stop_servers EXIT
  bin=$SIDEWATCH_BIN
else
  bench_setup
  bin=./target/release/sidewatch
fi
dir=$SIDEWATCH_TEST_DIR
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

target_port=$(free_port)
python3 bench/hostile_server.py "$target_port" > "$dir/target.log" 2>&1 &
echo $! >> "$dir/pids"
wait_for_port "$target_port" hostile-target
refused=$(free_port)
t="http://127.0.0.1:$target_port"
{
  echo "server: {max_connections: $max_connections}"
  echo "probes:"
  for p in huge endless trickle redirect/0; do
    echo "  - {name: '${p%%/*}', interval: 1s, timeout: 1s, http: {url: '$t/$p'}}"
  done
  for i in $(seq 1 "$refused_probes"); do
    echo "  - {name: refused-$i, interval: 100ms, timeout: 100ms, tcp: {address: '127.0.0.1:$refused'}}"
  done
} > "$dir/sidewatch.yaml"
listen=$(free_port)
"$bin" run --config "$dir/sidewatch.yaml" --listen "127.0.0.1:$listen" --log-level error > "$dir/sidewatch.log" 2>&1 &
pid=$!
echo "$pid" >> "$dir/pids"
wait_for_port "$listen" sidewatch

limits="not enforced (no writable cgroup v1)"
cg=sidewatch-bench-$$
if mkdir "/sys/fs/cgroup/memory/$cg" "/sys/fs/cgroup/cpu/$cg" 2>/dev/null \
  && echo $((256 << 20)) > "/sys/fs/cgroup/memory/$cg/memory.limit_in_bytes" \
  && echo 50000 > "/sys/fs/cgroup/cpu/$cg/cpu.cfs_quota_us" \
  && echo "$pid" > "/sys/fs/cgroup/memory/$cg/cgroup.procs" \
  && echo "$pid" > "/sys/fs/cgroup/cpu/$cg/cgroup.procs"; then
  limits="256 MiB, 500m (cgroup v1)"
fi
cleanup_cg() { rmdir "/sys/fs/cgroup/memory/$cg" "/sys/fs/cgroup/cpu/$cg" 2>/dev/null || true; }

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
failures() {
  curl -s "http://127.0.0.1:$listen/metrics" | awk '/^sidewatch_probe_failures_total/ {s += $NF} END {printf "%d", s}'
}
sleep 5
# The same sidecar, probes running, nobody else at /metrics: the baseline.
python3 bench/metrics_clients.py scrape "$listen" 10 > "$dir/quiet.json"
rss_before=$(rss_kb)
f0=$(failures); t0=$(date +%s.%N)
python3 bench/metrics_clients.py flood "$listen" 8000 "$((seconds + 10))" > "$dir/flood.log" 2>&1 &
flood=$!
echo "$flood" >> "$dir/pids"
sleep 5
python3 bench/metrics_clients.py scrape "$listen" "$seconds" > "$dir/scrape.json" &
scraper=$!
peak=0; fds_peak=0
while kill -0 "$scraper" 2>/dev/null; do
  r=$(rss_kb); [ "$r" -gt "$peak" ] && peak=$r
  f=$(ls "/proc/$pid/fd" | wc -l); [ "$f" -gt "$fds_peak" ] && fds_peak=$f
  sleep 1
done
f1=$(failures); t1=$(date +%s.%N)
page=$(curl -s "http://127.0.0.1:$listen/metrics")
kill "$flood" 2>/dev/null || true
wait "$flood" 2>/dev/null || true
sleep 3
rss_after=$(rss_kb)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
alive=yes; kill -0 "$pid" 2>/dev/null || alive=no
cleanup_cg
python3 - "$dir/scrape.json" "$dir/quiet.json" <<PY
import json, sys
s = json.load(open(sys.argv[1]))
q = json.load(open(sys.argv[2]))
ms = lambda v: f"{v * 1000:.1f} ms" if v is not None else "n/a"
ratio = lambda a, b: f"{a / b:.1f}x" if a and b else "n/a"
print("hostile target + $refused_probes refused probes every 100 ms + 8000 /metrics clients, ${seconds} s")
print(f"  binary          $bin; max_connections $max_connections; limits: $limits; alive at the end: $alive")
print(f"  RSS             before {${rss_before}/1024:.1f} MB, peak {${peak}/1024:.1f} MB (VmHWM {${hwm}/1024:.1f} MB), 3 s after {${rss_after}/1024:.1f} MB   (target < 64 MB)")
print(f"  /metrics quiet  {q['count']} scrapes, {q['errors']} errors, p50 {ms(q['p50'])}, p99 {ms(q['p99'])}, max {ms(q['max'])}")
print(f"  /metrics under  {s['count']} scrapes, {s['errors']} errors, p50 {ms(s['p50'])}, p99 {ms(s['p99'])}, max {ms(s['max'])}   (target p99 < 10 ms)")
print(f"  p99 ratio       {ratio(s['p99'], q['p99'])} of quiet")
print(f"  failures/s      {($f1 - $f0) / ($t1 - $t0):.0f}")
print(f"  fds (peak)      $fds_peak")
PY
echo "$page" | grep -E '^sidewatch_metrics_(connections|connections_evicted_total|scrapes_total) ' | sed 's/^/  /'
