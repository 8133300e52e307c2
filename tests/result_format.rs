//! The stored result format, byte for byte. `tests/golden/KIND.json` holds one
//! real result of each scenario kind as the store writes it; each must read
//! through the store and be written back unchanged. A renamed, removed or
//! retyped field fails here: change the format deliberately (see
//! `sidewatch::check::result`), bump `FORMAT`, keep reading the old one.
//!
//! `load-unversioned.json` was written by sidewatch before results had a
//! `format` field; it must keep reading (as format 0), keep its shape when
//! written back, and still serve as a baseline.
//!
//! The six current files come from real short runs against an in-process
//! server, watching this test's own process:
//! `SIDEWATCH_WRITE_GOLDEN=1 cargo test --test result_format -- --ignored`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sidewatch::check::baseline::regression::{compare, Tolerances, METRICS};
use sidewatch::check::baseline::store::Store;
use sidewatch::check::execute::execute;
use sidewatch::check::result::{CheckResult, ScenarioKind, FORMAT};
use sidewatch::check::runner::conclude;
use sidewatch::load::{Quiet, Verdict};
use tokio_util::sync::CancellationToken;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Saves `r` in a fresh store and returns the run file's bytes and the
/// result as the store reads it back.
fn through_the_store(r: &CheckResult) -> (Vec<u8>, CheckResult) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 5).unwrap();
    store.save(r, false).unwrap();
    let file = dir
        .path()
        .join("runs")
        .join(&r.check)
        .join(format!("{}.json", r.id));
    let back = store.get(&r.id).unwrap();
    let entry = store.list(Some(&r.check)).unwrap().pop().unwrap();
    assert_eq!((entry.kind, entry.verdict), (r.kind, r.verdict));
    (std::fs::read(file).unwrap(), back)
}

/// Reads a golden file, checks it is written back byte for byte, and
/// returns the result.
fn read_back(name: &str) -> CheckResult {
    let want = std::fs::read(golden(name)).unwrap();
    let r: CheckResult =
        serde_json::from_slice(&want).unwrap_or_else(|e| panic!("{name} no longer reads: {e}"));
    let (bytes, back) = through_the_store(&r);
    assert_eq!(back, r, "{name}: the store reads back another result");
    if bytes != want {
        let (a, b) = (
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&bytes),
        );
        let (n, (old, new)) = a
            .lines()
            .zip(b.lines())
            .enumerate()
            .find(|(_, (x, y))| x != y)
            .unwrap_or((a.lines().count().min(b.lines().count()), ("(end)", "(end)")));
        panic!(
            "{name} is written back differently from line {}:\n  golden:  {old}\n  written: {new}",
            n + 1
        );
    }
    r
}

#[test]
fn each_kind_reads_and_writes_back_byte_for_byte() {
    for kind in ScenarioKind::ALL {
        let r = read_back(&format!("{kind}.json"));
        assert_eq!(r.format, FORMAT, "{kind}");
        assert_eq!(r.kind, kind);
        assert_eq!(r.details.kind(), kind);
        assert!(!r.windows.is_empty() && !r.memory.is_empty(), "{kind}");
    }
}

#[test]
fn a_result_stored_before_the_format_field_still_reads() {
    let text = std::fs::read_to_string(golden("load-unversioned.json")).unwrap();
    assert!(!text.contains("\"format\""));
    let old = read_back("load-unversioned.json");
    assert_eq!(old.format, 0);
    // An old run still serves as the baseline of a new one.
    let new = read_back("load.json");
    let c = compare(&new, &old, &Tolerances::default());
    let metrics: Vec<&str> = c.iter().map(|c| c.metric.as_str()).collect();
    assert_eq!(metrics, METRICS);
}

#[test]
fn the_golden_files_cover_what_a_result_can_hold() {
    let all: Vec<CheckResult> = ScenarioKind::ALL
        .iter()
        .map(|k| read_back(&format!("{k}.json")))
        .collect();
    let any = |f: &dyn Fn(&CheckResult) -> bool| all.iter().any(f);
    assert!(any(&|r| !r.thresholds.is_empty()));
    assert!(any(&|r| !r.findings.is_empty()));
    assert!(any(&|r| !r.comparisons.is_empty() && r.baseline.is_some()));
    assert!(any(&|r| r.phases.len() > 1));
    assert!(any(&|r| r
        .details
        .leak()
        .is_some_and(|l| !l.minima.is_empty())));
    assert!(any(&|r| matches!(
        &r.details,
        sidewatch::check::result::Details::Soak(s) if s.memory.is_some()
    )));
}

/// The config of a short `kind` check against `addr`, watching the process
/// whose pid is in `pid_file`.
fn config(kind: ScenarioKind, addr: std::net::SocketAddr, pid_file: &Path) -> String {
    let mix = format!("mix: [{{http: {{url: 'http://{addr}/'}}}}]");
    let body = match kind {
        ScenarioKind::Load => format!(
            "    load: {{rate: 50/s, duration: 4s, {mix}}}
    thresholds: ['p95 < 500ms', 'error_rate < 1%', 'rss_max < 4000MB']
    baseline: {{latency: +10%}}\n"
        ),
        ScenarioKind::Soak => {
            format!("    load: {{rate: 50/s, {mix}}}\n    soak: {{duration: 6s, window: 1s}}\n")
        }
        ScenarioKind::Spike => format!(
            "    load: {{rate: 50/s, {mix}}}
    spike: {{factor: 3, before: 2s, hold: 1s, after: 3s, window: 1s, max_recovery: 2s}}\n"
        ),
        ScenarioKind::Breakpoint => format!(
            "    load: {{rate: 100/s, {mix}}}
    breakpoint: {{factor: 2, max: 800/s, step: 1s, window: 1s, recovery: 3s}}\n"
        ),
        ScenarioKind::Curve => format!(
            "    load: {{rate: 50/s, {mix}}}
    curve: {{levels: [50/s, 100/s, 200/s], step: 2s, settle: 500ms}}\n"
        ),
        ScenarioKind::Leak => format!(
            "    load: {{rate: 50/s, {mix}}}
    leak: {{duration: 4s, warmup: 0s, window: 500ms, sample_interval: 100ms}}\n"
        ),
    };
    format!(
        "store: {{dir: /unused}}
service: {{processes: [{{label: app, pid_file: '{}'}}]}}
checks:
  - name: {kind}
{body}",
        pid_file.display()
    )
}

/// Rewrites the six current golden files from real runs. Only for a
/// deliberate format change; never touches `load-unversioned.json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/golden; set SIDEWATCH_WRITE_GOLDEN=1"]
async fn write_golden_results() {
    if std::env::var_os("SIDEWATCH_WRITE_GOLDEN").is_none() {
        eprintln!("SIDEWATCH_WRITE_GOLDEN is not set: nothing written");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("pid");
    std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
    let store = Store::open(&tmp.path().join("store"), 5).unwrap();
    for kind in ScenarioKind::ALL {
        let shape: Shape = match kind {
            // Slow from 2 s to 4 s: the spike's burst and after.
            ScenarioKind::Spike => Arc::new(|t, _| {
                let slow = t >= Duration::from_secs(2) && t < Duration::from_secs(4);
                (Duration::from_millis(if slow { 20 } else { 2 }), 200)
            }),
            // Breaks beyond 250 requests in a second.
            ScenarioKind::Breakpoint => {
                Arc::new(|_, n| (Duration::ZERO, if n > 250 { 503 } else { 200 }))
            }
            _ => Arc::new(|_, _| (Duration::from_millis(2), 200)),
        };
        let addr = shaped_server(shape).await;
        let plan = plan(&config(kind, addr, &pid_file));
        let check = &plan.checks[0];
        let mut r = execute(check, None, &mut Quiet, CancellationToken::new()).await;
        if kind == ScenarioKind::Load {
            // Twice: the second run is compared with the first, its baseline.
            assert_eq!(conclude(&mut r, check, Some(&store)), None);
            r = execute(check, None, &mut Quiet, CancellationToken::new()).await;
            assert_eq!(conclude(&mut r, check, Some(&store)), None);
        }
        let (bytes, _) = through_the_store(&r);
        std::fs::write(golden(&format!("{kind}.json")), bytes).unwrap();
    }
}

/// A run whose load thread died (verdict `error`) is an engine failure, not
/// data about the service: it is never compared with the baseline, so it
/// cannot raise a regression alert.
#[test]
fn a_run_whose_load_thread_died_is_not_compared_with_the_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("store"), 5).unwrap();
    let addr = "127.0.0.1:9".parse().unwrap();
    let plan = plan(&config(ScenarioKind::Load, addr, &tmp.path().join("pid")));
    let check = &plan.checks[0];
    let stored: CheckResult =
        serde_json::from_slice(&std::fs::read(golden("load.json")).unwrap()).unwrap();
    let mut first = stored.clone();
    (first.baseline, first.comparisons) = (None, Vec::new());
    assert_eq!(conclude(&mut first, check, Some(&store)), None);
    let mut dead = stored;
    dead.id = format!("{}-dead", first.id);
    (dead.baseline, dead.comparisons) = (None, Vec::new());
    dead.verdict = Verdict::Error;
    assert_eq!(conclude(&mut dead, check, Some(&store)), None);
    assert!(dead.comparisons.is_empty(), "{:?}", dead.comparisons);
    assert_eq!(dead.verdict, Verdict::Error);
}
