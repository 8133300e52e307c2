//! Scenarios end to end against real servers: spike recovery, breakpoint
//! search, the load curve with the service's CPU and RSS, and the result
//! store surviving a writer killed mid-write.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sidewatch::baseline::store::Store;
use sidewatch::checks::{execute, CheckResult};
use sidewatch::report::progress::Quiet;
use sidewatch::scenarios::Details;
use tokio_util::sync::CancellationToken;

async fn run(yaml: &str) -> CheckResult {
    let plan = plan(yaml);
    let check = plan.checks.into_iter().next().expect("one check");
    execute(&check, None, &mut Quiet, CancellationToken::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spike_recovery_is_timed_from_the_end_of_the_spike() {
    // The spike runs from 4 s to 6 s; the server stays slow until 9 s.
    let addr = shaped_server(Arc::new(|t, _| {
        let slow = t >= Duration::from_secs(4) && t < Duration::from_secs(9);
        (Duration::from_millis(if slow { 25 } else { 0 }), 200)
    }))
    .await;
    let r = run(&format!(
        "checks:
  - name: spike
    load: {{rate: 50/s, mix: [{{http: {{url: 'http://{addr}/'}}}}]}}
    spike: {{factor: 4, before: 4s, hold: 2s, after: 8s, window: 1s, max_recovery: 2s}}
"
    ))
    .await;
    let Details::Spike(s) = &r.details else {
        panic!("{r:?}")
    };
    let rec = s.recovery_seconds.expect("recovers before the end");
    assert!(
        (2.0..=4.5).contains(&rec),
        "recovery {rec} s, expected about 3 s"
    );
    assert!(s.spike_p95 >= 0.020, "{s:?}");
    assert_eq!(
        r.verdict, "fail",
        "3 s is over max_recovery 2s: {:?}",
        r.findings
    );
    let f = r
        .findings
        .iter()
        .find(|f| f.name == "recovery time")
        .unwrap();
    assert!(!f.passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakpoint_finds_the_rate_the_service_sustains() {
    // Answers 503 beyond 600 requests in any one second.
    let addr = shaped_server(Arc::new(|_, n| {
        (Duration::ZERO, if n > 600 { 503 } else { 200 })
    }))
    .await;
    let r = run(&format!(
        "checks:
  - name: bp
    load: {{rate: 200/s, mix: [{{http: {{url: 'http://{addr}/'}}}}]}}
    breakpoint: {{factor: 2, max: 3200/s, step: 2s, window: 1s, recovery: 10s}}
"
    ))
    .await;
    let Details::Breakpoint(b) = &r.details else {
        panic!("{r:?}")
    };
    assert_eq!(b.max_sustainable_rate, Some(400.0), "{b:?}");
    assert_eq!(b.breaking_rate, Some(800.0), "{b:?}");
    assert_eq!(b.broken_by.as_deref(), Some("error_rate > 5%"));
    assert_eq!(b.steps.len(), 3, "it stops at the break: {b:?}");
    assert!(b.recovery_seconds.is_some_and(|s| s <= 2.0), "{b:?}");
    assert_eq!(r.phases.len(), 2, "steps, then recovery");
    assert_eq!(r.verdict, "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curve_reports_each_level_with_the_services_cpu_and_rss() {
    let r = run(&format!(
        "service: {{processes: [{{label: web, comm: nginx}}]}}
checks:
  - name: curve
    load: {{rate: 100/s, mix: [{{http: {{url: '{}/data.json'}}}}]}}
    curve: {{levels: [200/s, 1000/s, 3000/s], step: 3s, settle: 1s}}
    thresholds: ['error_rate < 1%']
",
        nginx()
    ))
    .await;
    let Details::Curve(c) = &r.details else {
        panic!("{r:?}")
    };
    assert_eq!(c.levels.len(), 3);
    for l in &c.levels {
        assert!(
            (l.rate - l.target_rate).abs() / l.target_rate < 0.05,
            "{l:?}"
        );
        assert!(l.rss_bytes.is_some_and(|b| b > 1e6), "{l:?}");
        assert!(l.cpu_cores.is_some(), "{l:?}");
        assert!(l.p50 <= l.p95 && l.p95 <= l.p99);
    }
    // nginx works harder at 15x the rate.
    assert!(c.levels[2].cpu_cores > c.levels[0].cpu_cores, "{c:?}");
    assert_eq!(r.verdict, "pass", "{:?}", r.thresholds);
}

#[test]
fn the_store_survives_a_writer_killed_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..10 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .args(["store-writer", "--dir"])
            .arg(dir.path())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(40 + seed % 200));
        child.kill().unwrap();
        child.wait().unwrap();
        // Every file present parses; nothing is half-written.
        let store = Store::open(dir.path(), 5).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let runs = store.list(None);
        assert!(!runs.is_empty() || round == 0);
        for e in &runs {
            store
                .get(&e.id)
                .unwrap_or_else(|err| panic!("round {round}: {err}"));
        }
        for (check, id) in store.baselines() {
            assert!(runs.iter().any(|e| e.id == id && e.check == check));
        }
        let leftovers = walk(dir.path())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".tmp."))
            .count();
        assert_eq!(leftovers, 0, "open clears temp files");
    }
}

fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
