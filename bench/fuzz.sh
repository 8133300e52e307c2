#!/usr/bin/env bash
# Fuzzes each target in fuzz/ (cargo-fuzz, libFuzzer) for SECONDS, one after
# the other, one job each, at low priority. Seeds come from the kept corpus
# fuzz/regressions/TARGET (replayed on stable by tests/fuzz_corpus.rs); new
# inputs go to fuzz/corpus/TARGET and crashes to fuzz/artifacts/TARGET (both
# ignored by git). Prints one line per target: execs, corpus size, crashes.
#
# Usage: bench/fuzz.sh [SECONDS] [TARGET...]   (default 600 s, every target)
#   fuzz/dict/TARGET.dict, where present, is the target's token dictionary.
#   needs: rustup's nightly toolchain and `cargo install cargo-fuzz`.
#   Logs: fuzz/artifacts/TARGET.log. Add a crash to the kept corpus with
#   `cargo +nightly fuzz tmin TARGET CRASH` and copy the result into
#   fuzz/regressions/TARGET once it is fixed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config threshold load_response exposition)
# No sanitizer: safe Rust gains little from ASan, and it halves the execs.
# Debug assertions (overflow checks) stay on, as cargo-fuzz sets them.
nice -n 15 cargo +nightly fuzz build -s none
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="artifacts/$t.log"
  before=$(ls "artifacts/$t" | wc -l)
  # One process (-fork=1) that keeps going after a crash, so a known crash
  # does not end the run; each crash is saved to artifacts/$t.
  # The binary built above, run directly: an edit under src/ during a long
  # run does not rebuild (cargo fuzz run would).
  nice -n 15 "target/$(rustc -vV | sed -n 's/^host: //p')/release/$t" "corpus/$t" "regressions/$t" \
    -artifact_prefix="artifacts/$t/" $([ -f "dict/$t.dict" ] && echo "-dict=dict/$t.dict") \
    -max_total_time="$secs" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_len=65536 -timeout=10 -rss_limit_mb=1024 > "$log" 2>&1 || true
  last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
  execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
  cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<<"$last")
  crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
  printf '%-14s %5ss  execs %-10s cov %-6s corpus %5s files %6s KB  new crashes %s\n' "$t" "$secs" \
    "${execs:-?}" "${cov:-?}" "$(ls "corpus/$t" | wc -l)" "$(du -sk "corpus/$t" | cut -f1)" "$crashes"
done
