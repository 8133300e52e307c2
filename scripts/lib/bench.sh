# Shared set-up for bench/*.sh. Source it first (it moves to the repository
# root), then call bench_setup: installs the benchmark's peers and the test
# dependencies, makes a temporary directory (SIDEWATCH_TEST_DIR and dir,
# removed on exit with everything started in it), builds the release binary,
# and loads the server helpers.

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
. scripts/lib/servers.sh

bench_setup() { # [debian package whose command has its name]...
  local p
  for p in "$@"; do bench_apt "$p" "$p"; done
  ./scripts/install-deps
  SIDEWATCH_TEST_DIR=$(mktemp -d -t sidewatch-bench.XXXXXX)
  export SIDEWATCH_TEST_DIR
  dir=$SIDEWATCH_TEST_DIR
  trap stop_servers EXIT
  cargo build --release --quiet
}

# Installs a Debian package for a benchmark peer if its command is missing.
bench_apt() { # command package
  command -v "$1" >/dev/null && return 0
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

# CPU time (user + system) a process has used, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Starts the release sidewatch on $SIDEWATCH_TEST_DIR/sidewatch.yaml and
# waits for it; sets sw (its pid) and sw_port.
start_sidewatch() {
  sw_port=$(free_port)
  ./target/release/sidewatch --log-level warn run --config "$SIDEWATCH_TEST_DIR/sidewatch.yaml" \
    --listen "127.0.0.1:$sw_port" &
  sw=$!; echo $sw >> "$SIDEWATCH_TEST_DIR/pids"
  wait_for_port "$sw_port" sidewatch
}

# Measures, over SECONDS, the CPU sidewatch ($sw) and a peer use; then waits
# for the driver. Sets cpu_wall (seconds), cpu_sw and cpu_peer (% of one core).
cpu_measure() { # seconds peer-pid driver-pid
  local tck s0 s1 p0 p1 t0 t1
  tck=$(getconf CLK_TCK)
  s0=$(cpu_ticks "$sw"); p0=$(cpu_ticks "$2"); t0=$(date +%s.%N)
  sleep "$1"
  s1=$(cpu_ticks "$sw"); p1=$(cpu_ticks "$2"); t1=$(date +%s.%N)
  wait "$3" || true
  read -r cpu_wall cpu_sw cpu_peer < <(python3 -c '
import sys
s0, s1, p0, p1, t0, t1, tck = map(float, sys.argv[1:])
wall = t1 - t0
print(wall, (s1 - s0) / tck / wall * 100, (p1 - p0) / tck / wall * 100)' \
    "$s0" "$s1" "$p0" "$p1" "$t0" "$t1" "$tck")
}

# Prints what cpu_measure found: each process's % of one core and the
# peer / sidewatch ratio. NOTE, if given, follows sidewatch's figure.
cpu_report() { # peer-name [note]
  python3 -c '
import sys
peer, note, sw, pe = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
w = len(peer) + 2
print("  " + "sidewatch".ljust(w) + f"{sw:6.3f}% of one core" + (f" ({note})" if note else ""))
print(f"  {peer:<{w}}{pe:6.3f}% of one core")
if sw > 0:
    print(f"  {peer} / sidewatch = {pe / sw:.1f}x")' "$1" "${2:-}" "$cpu_sw" "$cpu_peer"
}
