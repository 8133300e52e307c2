//! Replays the kept fuzz corpus (`fuzz/regressions/TARGET/*`: seeds, minimized
//! inputs, and every crash once fixed) through the same entry points the fuzz
//! targets call (`sidewatch::fuzzing`), on stable, in the normal test run.
//! `bench/fuzz.sh` does the fuzzing itself, on nightly.

use std::path::Path;

/// Runs every kept input of `target` through `run`; fails naming each input
/// that panicked.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no inputs", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|f| {
            let data = std::fs::read(f).unwrap();
            std::panic::catch_unwind(|| run(&data)).is_err()
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} inputs failed (panic messages above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn config_corpus() {
    replay("config", sidewatch::fuzzing::config);
}

#[test]
fn threshold_corpus() {
    replay("threshold", sidewatch::fuzzing::threshold);
}

#[test]
fn load_response_corpus() {
    replay("load_response", sidewatch::fuzzing::load_response);
}

#[test]
fn exposition_corpus() {
    replay("exposition", sidewatch::fuzzing::exposition);
}
