//! Scenarios end to end against real servers: spike recovery, breakpoint
//! search, the load curve with the service's CPU and RSS, scheduled checks
//! and the check CLI. The store under faults is tests/store.rs.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sidewatch::check::baseline::store::Store;
use sidewatch::check::execute::execute;
use sidewatch::check::result::{CheckResult, Details};
use sidewatch::load::Quiet;
use tokio_util::sync::CancellationToken;

async fn run(yaml: &str) -> CheckResult {
    let plan = plan(yaml);
    let check = plan.checks.into_iter().next().expect("one check");
    execute(&check, None, &mut Quiet, CancellationToken::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spike_recovery_is_timed_from_the_end_of_the_spike() {
    // The spike runs from 4 s to 6 s; the server stays slow until 9 s. A
    // 5 ms base latency and a 100% tolerance keep CPU contention from other
    // tests (sub-millisecond noise) out of the verdict.
    let addr = shaped_server(Arc::new(|t, _| {
        let slow = t >= Duration::from_secs(4) && t < Duration::from_secs(9);
        (Duration::from_millis(if slow { 40 } else { 5 }), 200)
    }))
    .await;
    let r = run(&format!(
        "checks:
  - name: spike
    load: {{rate: 50/s, mix: [{{http: {{url: 'http://{addr}/'}}}}]}}
    spike: {{factor: 4, before: 4s, hold: 2s, after: 8s, window: 1s, tolerance: 100%, max_recovery: 2s}}
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
    assert!(s.spike_p95 >= 0.040, "{s:?}");
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
    curve: {{levels: [200/s, 800/s, 2400/s], step: 3s, settle: 1s}}
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
    // nginx works harder at 12x the rate.
    assert!(c.levels[2].cpu_cores > c.levels[0].cpu_cores, "{c:?}");
    assert_eq!(r.verdict, "pass", "{:?}", r.thresholds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_schedules_checks_and_the_api_controls_them() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("{}/data.json", nginx());
    let yaml = format!(
        "store: {{dir: {dir}, keep: 5}}
api: {{token: s3cret-token-0123456789}}
checks:
  - name: every2s
    schedule: '*/2 * * * * *'
    load: {{rate: 50/s, duration: 3s, mix: [{{http: {{url: '{url}'}}}}]}}
    thresholds: ['error_rate < 1%']
  - name: also-every2s
    schedule: '*/2 * * * * *'
    load: {{rate: 50/s, duration: 3s, mix: [{{http: {{url: '{url}'}}}}]}}
  - name: on-demand
    load: {{rate: 50/s, duration: 30s, mix: [{{http: {{url: '{url}'}}}}]}}
",
        dir = data.path().display()
    );
    let sidecar = sidewatch::app::Sidecar::start(plan(&yaml), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = sidecar.addr;
    let auth = Some("Authorization: Bearer s3cret-token-0123456789");
    let api = move |m: &'static str, p: &'static str, h: Option<&'static str>| {
        tokio::task::spawn_blocking(move || http_request(addr, m, p, h).unwrap())
    };
    assert_eq!(api("GET", "/api/v1/checks", None).await.unwrap().0, 401);
    let wrong = Some("Authorization: Bearer nope");
    assert_eq!(api("GET", "/api/v1/checks", wrong).await.unwrap().0, 401);
    assert_eq!(
        api("POST", "/api/v1/checks/nope/run", auth)
            .await
            .unwrap()
            .0,
        404
    );
    assert_eq!(
        api("POST", "/api/v1/checks/on-demand/cancel", auth)
            .await
            .unwrap()
            .0,
        409
    );
    // Both schedules fire every 2 s; one check runs at a time, so the
    // other's firing is skipped.
    let (mut passed, mut skipped, mut text) = (false, 0.0, String::new());
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = sidecar.metrics_text();
        passed = ["every2s", "also-every2s"]
            .iter()
            .any(|c| sample(&text, "sidewatch_check_last_passed", &[("check", c)]) == Some(1.0));
        skipped = ["every2s", "also-every2s"]
            .iter()
            .filter_map(|c| sample(&text, "sidewatch_check_skipped_total", &[("check", c)]))
            .sum();
        if passed && skipped >= 1.0 {
            break;
        }
    }
    assert!(passed && skipped >= 1.0, "{text}");
    // Trigger the long check between scheduled runs; cancel it.
    let mut started = false;
    for _ in 0..100 {
        let (status, _) = api("POST", "/api/v1/checks/on-demand/run", auth)
            .await
            .unwrap();
        if status == 202 {
            started = true;
            break;
        }
        assert_eq!(status, 409, "busy while a scheduled check runs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started);
    let (status, body) = api("GET", "/api/v1/checks", auth).await.unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""name":"on-demand""#) && body.contains(r#""state":"running""#),
        "{body}"
    );
    assert_eq!(
        api("POST", "/api/v1/checks/every2s/cancel", auth)
            .await
            .unwrap()
            .0,
        409
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        api("POST", "/api/v1/checks/on-demand/cancel", auth)
            .await
            .unwrap()
            .0,
        202
    );
    let aborted = || {
        let text = sidecar.metrics_text();
        let n = sample(
            &text,
            "sidewatch_check_runs_total",
            &[("check", "on-demand"), ("verdict", "aborted")],
        );
        (n, text)
    };
    for _ in 0..100 {
        // runs_total starts at 0 when the check is configured.
        if aborted().0 >= Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (n, text) = aborted();
    assert_eq!(n, Some(1.0), "{text}");
    assert!(!text.contains("s3cret-token"));
    sidecar.shutdown().await;
    let store = Store::open(data.path(), 5).unwrap();
    assert!(!store.list(None).unwrap().is_empty());
    assert_eq!(store.list(Some("on-demand")).unwrap()[0].verdict, "aborted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_cli_compares_with_the_baseline_and_reports() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let delay_ms = Arc::new(AtomicU64::new(2));
    let d = delay_ms.clone();
    let addr = shaped_server(Arc::new(move |_, _| {
        (Duration::from_millis(d.load(Ordering::Relaxed)), 200)
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "store: {{dir: {}/store}}
checks:
  - name: api
    load: {{rate: 100/s, duration: 6s, mix: [{{http: {{url: 'http://{addr}/'}}}}]}}
    thresholds: ['p95 < 500ms']
    baseline: {{latency: +10%}}
",
            dir.path().display()
        ),
    )
    .unwrap();
    let check = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .args(["check", "--config"])
            .arg(&config)
            .arg("api")
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let json = dir.path().join("r.json");
    let html = dir.path().join("r.html");
    let md = dir.path().join("r.md");
    let (code, out) = tokio::task::block_in_place(|| check(&[]));
    assert_eq!(code, Some(0), "{out}");
    // The first passing run became the baseline; now the service slows.
    delay_ms.store(20, Ordering::Relaxed);
    let (code, out) = tokio::task::block_in_place(|| {
        check(&[
            "--json",
            json.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
            "--markdown",
            md.to_str().unwrap(),
        ])
    });
    assert_eq!(code, Some(1), "a regression fails the run: {out}");
    assert!(out.contains("against baseline"), "{out}");
    let r: CheckResult = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let lat = r
        .comparisons
        .iter()
        .find(|c| c.metric == "latency_p95")
        .unwrap();
    assert!(lat.regressed && lat.worse_by > 1.0, "{lat:?}");
    assert!(
        r.thresholds.iter().all(|t| t.passed),
        "thresholds still hold"
    );
    assert!(std::fs::read_to_string(&md)
        .unwrap()
        .contains("| ✗ | latency_p95 |"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg") && !page.contains("<script"),
        "self-contained"
    );
    // baseline list / accept / reset.
    let baseline = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .args(["baseline", "--config"])
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (_, list) = baseline(&["list"]);
    assert_eq!(list.lines().count(), 3, "{list}");
    assert_eq!(
        list.lines().filter(|l| l.ends_with("baseline")).count(),
        1,
        "{list}"
    );
    assert_eq!(baseline(&["accept", &r.id]).0, Some(0));
    assert!(baseline(&["list"])
        .1
        .lines()
        .any(|l| l.starts_with(&r.id) && l.ends_with("baseline")));
    assert_eq!(baseline(&["reset", "api"]).0, Some(0));
    assert!(!baseline(&["list"]).1.contains("baseline\n"));
    assert_eq!(baseline(&["accept", "no-such-run"]).0, Some(1));
    render_in_chromium(&html);
}

/// Renders the report in headless Chromium and keeps the screenshot in
/// `target/report-screenshot.png` to look at.
fn render_in_chromium(html: &std::path::Path) {
    let chromium = std::env::var("SIDEWATCH_CHROMIUM")
        .expect("SIDEWATCH_CHROMIUM is not set: run the tests with ./scripts/test");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--window-size=1000,1600", "--virtual-time-budget=2000"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let png = std::fs::read(&shot)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 30_000,
        "a blank page is smaller: {} bytes",
        png.len()
    );
}
