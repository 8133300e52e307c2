# Shared set-up for bench/*.sh. Source it from the repository root, then call
# bench_setup: installs the test dependencies, makes a temporary directory
# (SIDEWATCH_TEST_DIR, removed on exit with everything started in it),
# builds the release binary, and loads the server helpers.

. scripts/lib/servers.sh

bench_setup() {
  ./scripts/install-deps
  SIDEWATCH_TEST_DIR=$(mktemp -d -t sidewatch-bench.XXXXXX)
  export SIDEWATCH_TEST_DIR
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
