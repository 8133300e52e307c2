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

/// A server that answers 200 at once and counts the requests it got.
async fn counted_server() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicU64>) {
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = count.clone();
    let addr = shaped_server(Arc::new(move |_, _| {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (Duration::ZERO, 200)
    }))
    .await;
    (addr, count)
}

/// A scheduled check of 40 requests/s for 20 s, firing every second.
fn scheduled_soak(dir: &std::path::Path, addr: std::net::SocketAddr, schedule: bool) -> String {
    let schedule = if schedule {
        "schedule: '* * * * * *'"
    } else {
        ""
    };
    format!(
        "store: {{dir: {}, keep: 5}}
api: {{token: s3cret-token-0123456789}}
checks:
  - name: soak
    {schedule}
    load: {{rate: 40/s, duration: 20s, mix: [{{http: {{url: 'http://{addr}/'}}}}]}}
",
        dir.display()
    )
}

/// Waits (at most 10 s) until the check `soak` is running and has sent.
async fn soak_running(sidecar: &sidewatch::app::Sidecar, count: &std::sync::atomic::AtomicU64) {
    for _ in 0..100 {
        let text = sidecar.metrics_text();
        let running = sample(&text, "sidewatch_check_running", &[("check", "soak")]);
        if running == Some(1.0) && count.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the scheduled check never started");
}

/// Requests the target got in `secs` seconds, after `settle`.
async fn requests_in(count: &std::sync::atomic::AtomicU64, settle: Duration, secs: u64) -> u64 {
    tokio::time::sleep(settle).await;
    let before = count.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    count.load(std::sync::atomic::Ordering::Relaxed) - before
}

/// No more requests reach the target, and the one run is stored aborted.
async fn quiet_and_stored_aborted(count: &std::sync::atomic::AtomicU64, store: &std::path::Path) {
    let sent = requests_in(count, Duration::from_millis(300), 1).await;
    assert_eq!(sent, 0, "the load goes on after the run ended");
    let runs = Store::open(store, 5).unwrap().list(Some("soak")).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].verdict, "aborted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_lets_a_scheduled_run_finish_alone_and_cancel_stops_it() {
    let data = tempfile::tempdir().unwrap();
    let (addr, count) = counted_server().await;
    let yaml = scheduled_soak(data.path(), addr, true);
    let mut sidecar = sidewatch::app::Sidecar::start(plan(&yaml), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    soak_running(&sidecar, &count).await;
    // The same config again: the run goes on under its old plan, and the
    // schedule firing every second finds the gate taken.
    sidecar.reload(plan(&yaml)).await;
    let sent = requests_in(&count, Duration::from_millis(1500), 2).await;
    assert!(
        sent <= 120,
        "{sent} requests in 2 s: a second load runs beside the first"
    );
    assert!(
        sent >= 20,
        "{sent} requests in 2 s: the run stopped at the reload"
    );
    let text = sidecar.metrics_text();
    let skipped = sample(&text, "sidewatch_check_skipped_total", &[("check", "soak")]);
    assert!(skipped >= Some(1.0), "{text}");
    // Without a schedule now; the run still shows, and cancel reaches it.
    sidecar
        .reload(plan(&scheduled_soak(data.path(), addr, false)))
        .await;
    let api = sidecar.addr;
    let auth = Some("Authorization: Bearer s3cret-token-0123456789");
    let (status, body) = tokio::task::spawn_blocking(move || {
        http_request(api, "GET", "/api/v1/checks", auth).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(r#""state":"running""#), "{body}");
    let (status, _) = tokio::task::spawn_blocking(move || {
        http_request(api, "POST", "/api/v1/checks/soak/cancel", auth).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(status, 202);
    let mut aborted = None;
    for _ in 0..100 {
        let text = sidecar.metrics_text();
        let labels = [("check", "soak"), ("verdict", "aborted")];
        aborted = sample(&text, "sidewatch_check_runs_total", &labels);
        if aborted >= Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(aborted, Some(1.0));
    sidecar.shutdown().await;
    quiet_and_stored_aborted(&count, data.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_scheduled_check_stores_it_aborted_and_stops_the_load() {
    let data = tempfile::tempdir().unwrap();
    let (addr, count) = counted_server().await;
    let yaml = scheduled_soak(data.path(), addr, true);
    let sidecar = sidewatch::app::Sidecar::start(plan(&yaml), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    soak_running(&sidecar, &count).await;
    tokio::time::timeout(Duration::from_secs(10), sidecar.shutdown())
        .await
        .expect("shutdown returns");
    quiet_and_stored_aborted(&count, data.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_check_stops_its_load_threads() {
    let (addr, count) = counted_server().await;
    let plan = plan(&format!(
        "checks:
  - name: dropped
    load: {{rate: 40/s, duration: 20s, mix: [{{http: {{url: 'http://{addr}/'}}}}]}}
"
    ));
    let check = plan.checks.into_iter().next().unwrap();
    let mut quiet = Quiet;
    let run = execute(&check, None, &mut quiet, CancellationToken::new());
    assert!(tokio::time::timeout(Duration::from_millis(1500), run)
        .await
        .is_err());
    assert!(count.load(std::sync::atomic::Ordering::Relaxed) > 0);
    let sent = requests_in(&count, Duration::from_millis(300), 1).await;
    assert_eq!(sent, 0, "the load goes on after its run was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_removed_by_a_reload_loses_its_series() {
    let check = |name: &str| {
        format!("  - {{name: {name}, load: {{rate: 1/s, duration: 1s, mix: [{{http: {{url: 'http://127.0.0.1:{}/'}}}}]}}}}\n", closed_port())
    };
    let both = format!("checks:\n{}{}", check("stays"), check("goes"));
    let mut sidecar = sidewatch::app::Sidecar::start(plan(&both), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = sidecar.metrics_text();
    assert!(text.contains(r#"check="goes""#), "{text}");
    sidecar
        .reload(plan(&format!("checks:\n{}", check("stays"))))
        .await;
    let text = sidecar.metrics_text();
    assert!(text.contains(r#"check="stays""#), "{text}");
    assert!(!text.contains(r#"check="goes""#), "{text}");
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_that_cannot_be_stored_is_counted() {
    let data = tempfile::tempdir().unwrap();
    let yaml = format!(
        "store: {{dir: {}}}
api: {{token: s3cret-token-0123456789}}
checks:
  - {{name: c, load: {{rate: 2/s, duration: 1s, mix: [{{http: {{url: 'http://127.0.0.1:{}/'}}}}]}}}}
",
        data.path().display(),
        closed_port()
    );
    let sidecar = sidewatch::app::Sidecar::start(plan(&yaml), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let failures = |text: &str| {
        sample(
            text,
            "sidewatch_check_store_failures_total",
            &[("check", "c")],
        )
    };
    assert_eq!(failures(&sidecar.metrics_text()), Some(0.0));
    // A file where the check's run directory goes.
    std::fs::create_dir_all(data.path().join("runs")).unwrap();
    std::fs::write(data.path().join("runs/c"), b"not a directory").unwrap();
    let api = sidecar.addr;
    let (status, _) = tokio::task::spawn_blocking(move || {
        let auth = Some("Authorization: Bearer s3cret-token-0123456789");
        http_request(api, "POST", "/api/v1/checks/c/run", auth).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(status, 202);
    let mut text = String::new();
    for _ in 0..100 {
        text = sidecar.metrics_text();
        if failures(&text) >= Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failures(&text), Some(1.0), "{text}");
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stuck_reading_the_service_does_not_hold_up_the_check() {
    use std::os::unix::fs::OpenOptionsExt;
    // Reading a FIFO nobody writes blocks: a pid file that hangs.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("app.pid");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let plan = plan(&format!(
        "service: {{processes: [{{label: app, pid_file: '{}'}}]}}
checks:
  - name: watched
    load: {{rate: 2/s, duration: 1s, mix: [{{http: {{url: 'http://127.0.0.1:{}/'}}}}]}}
",
        fifo.display(),
        closed_port()
    ));
    let check = plan.checks.into_iter().next().unwrap();
    let run =
        tokio::spawn(
            async move { execute(&check, None, &mut Quiet, CancellationToken::new()).await },
        );
    let done = tokio::time::timeout(Duration::from_secs(15), run).await;
    // Let the stuck read end.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
    let r = done.expect("the check ended").unwrap();
    assert_eq!(r.check, "watched");
}

/// A reload that removes a check's schedule drops its next-run series and
/// time, and a queued firing the reload abandoned does not stay "queued".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_clears_a_removed_schedule_and_a_queued_state() {
    let port = closed_port();
    let yaml = |schedule: &str| {
        format!(
            "api: {{token: s3cret-token-0123456789}}
checks:
  - {{name: long, load: {{rate: 1/s, duration: 30s, mix: [{{http: {{url: 'http://127.0.0.1:{port}/'}}}}]}}}}
  - name: q
    {schedule}
    load: {{rate: 1/s, duration: 1s, mix: [{{http: {{url: 'http://127.0.0.1:{port}/'}}}}]}}
"
        )
    };
    let scheduled = yaml("schedule: '* * * * * *'\n    overlap: queue");
    let mut sidecar =
        sidewatch::app::Sidecar::start(plan(&scheduled), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let addr = sidecar.addr;
    let auth = Some("Authorization: Bearer s3cret-token-0123456789");
    let api = move |m: &'static str, p: &'static str| {
        tokio::task::spawn_blocking(move || http_request(addr, m, p, auth).unwrap())
    };
    let next_run = |text: &str| {
        sample(
            text,
            "sidewatch_check_next_run_timestamp_seconds",
            &[("check", "q")],
        )
    };
    // Hold the gate with the long check (retrying while q itself runs), so
    // q's next firing queues behind it.
    let mut started = false;
    for _ in 0..100 {
        let (status, _) = api("POST", "/api/v1/checks/long/run").await.unwrap();
        if status == 202 {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started, "the long check never started");
    let q_state = |body: &str| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let checks = v
            .as_array()
            .cloned()
            .or_else(|| v["checks"].as_array().cloned());
        checks
            .unwrap_or_default()
            .into_iter()
            .find(|c| c["name"] == "q")
            .unwrap_or_else(|| panic!("no q: {body}"))
    };
    let mut body = String::new();
    for _ in 0..50 {
        body = api("GET", "/api/v1/checks").await.unwrap().1;
        if q_state(&body)["state"] == "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(q_state(&body)["state"], "queued", "{body}");
    assert!(next_run(&sidecar.metrics_text()).is_some());

    sidecar.reload(plan(&yaml(""))).await;
    let text = sidecar.metrics_text();
    assert_eq!(next_run(&text), None, "{text}");
    let body = api("GET", "/api/v1/checks").await.unwrap().1;
    let q = q_state(&body);
    assert_eq!(q["state"], "idle", "{body}");
    assert!(q["next_run_unix"].is_null(), "{body}");
    assert!(q["schedule"].is_null(), "{body}");
    let _ = api("POST", "/api/v1/checks/long/cancel").await;
    sidecar.shutdown().await;
}
