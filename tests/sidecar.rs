//! The running sidecar in-process: /metrics under load from hanging probes,
//! the exposition formats checked by a real promtool, and reloads.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sidewatch::app::Sidecar;

fn listen() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    tokio::task::spawn_blocking(move || http_get(addr, "/metrics", None).unwrap().1)
        .await
        .unwrap()
}

/// Polls until `f` holds or the deadline passes.
async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_keep_answering_while_twenty_probes_hang() {
    let hang = hanging_server().await;
    let mut yaml = String::from("probes:\n");
    for i in 0..20 {
        yaml += &format!(
            "  - {{name: hang-{i}, interval: 1s, timeout: 900ms, http: {{url: 'http://{hang}/'}}}}\n"
        );
    }
    let sidecar = Sidecar::start(plan(&yaml), listen()).await.unwrap();
    let addr = sidecar.addr;
    // Each probe hangs for 900ms of every second, so at any moment nearly all
    // twenty are in flight.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let worst = tokio::task::spawn_blocking(move || {
        let mut worst = Duration::ZERO;
        for _ in 0..40 {
            let t = Instant::now();
            let (status, body) = http_get(addr, "/metrics", None).unwrap();
            worst = worst.max(t.elapsed());
            assert_eq!(status, 200);
            assert!(body.contains("sidewatch_build_info"));
            std::thread::sleep(Duration::from_millis(50));
        }
        worst
    })
    .await
    .unwrap();
    assert!(
        worst < Duration::from_millis(500),
        "slowest scrape took {worst:?}"
    );
    let board = sidecar.outcomes.board.snapshot();
    assert_eq!(board.len(), 20);
    for (name, status) in board {
        let reason = status.last.and_then(|l| l.reason);
        assert_eq!(reason, Some(sidewatch::net::Reason::Timeout), "{name}");
    }
    let (status, _) = http_get(addr, "/healthz", None).unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_a_real_scrape_and_openmetrics_is_negotiated() {
    let nginx = nginx();
    let yaml = format!(
        "probes:\n  - {{name: ok, interval: 200ms, timeout: 150ms, http: {{url: '{nginx}/health'}}}}\n  - {{name: refused, interval: 200ms, timeout: 150ms, tcp: {{address: '127.0.0.1:{}'}}}}\n",
        closed_port()
    );
    let sidecar = Sidecar::start(plan(&yaml), listen()).await.unwrap();
    let addr = sidecar.addr;
    let mut text = String::new();
    for _ in 0..40 {
        text = scrape(addr).await;
        if text.contains("sidewatch_probe_phase_duration_seconds_bucket")
            && text.contains("probe=\"refused\"")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, msg) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed:\n{msg}\n---\n{text}");
    assert!(!text.contains("# EOF"));
    let success = |probe| sample(&text, "sidewatch_probe_success", &[("probe", probe)]);
    assert_eq!(success("ok"), Some(1.0));
    assert_eq!(success("refused"), Some(0.0));
    let failures = |probe, reason| {
        let labels = [("probe", probe), ("reason", reason)];
        sample(&text, "sidewatch_probe_failures_total", &labels)
    };
    assert!(failures("refused", "refused").unwrap() >= 1.0);
    assert_eq!(failures("ok", "timeout"), Some(0.0));
    assert_at_least(
        &text,
        "sidewatch_probe_phase_duration_seconds_count",
        &[("probe", "ok"), ("phase", "first_byte")],
        1.0,
    );

    let om = tokio::task::spawn_blocking(move || {
        http_get(
            addr,
            "/metrics",
            Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
        )
        .unwrap()
        .1
    })
    .await
    .unwrap();
    assert!(om.trim_end().ends_with("# EOF"), "{om}");
    assert!(om.contains("# TYPE sidewatch_probe_runs counter"));
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_and_removes_probe_series() {
    let nginx = nginx();
    let one = format!("probes:\n  - {{name: a, interval: 200ms, timeout: 100ms, http: {{url: '{nginx}/health'}}}}\n");
    let two = format!("probes:\n  - {{name: b, interval: 200ms, timeout: 100ms, http: {{url: '{nginx}/health'}}}}\n");
    let mut sidecar = Sidecar::start(plan(&one), listen()).await.unwrap();
    let addr = sidecar.addr;
    let mut text = String::new();
    for _ in 0..30 {
        text = scrape(addr).await;
        if sample(&text, "sidewatch_probe_success", &[("probe", "a")]).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sample(&text, "sidewatch_probe_success", &[("probe", "a")]),
        Some(1.0)
    );

    sidecar.reload(plan(&two)).await;
    let board = sidecar.outcomes.clone();
    eventually("probe b to run", Duration::from_secs(3), || {
        board.board.snapshot().get("b").is_some_and(|s| s.runs > 0)
    })
    .await;
    // Series of `a` go once its last run has drained.
    for _ in 0..30 {
        text = scrape(addr).await;
        if !text.contains("probe=\"a\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !text.contains("probe=\"a\""),
        "series of the removed probe remain"
    );
    assert_eq!(
        sample(&text, "sidewatch_probe_success", &[("probe", "b")]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "sidewatch_probes_configured", &[]), Some(1.0));
    sidecar.shutdown().await;
}

#[tokio::test]
async fn readiness_follows_the_lifecycle() {
    let sidecar = Sidecar::start(plan("probes: []\n"), listen())
        .await
        .unwrap();
    let addr = sidecar.addr;
    let (status, _) = tokio::task::spawn_blocking(move || http_get(addr, "/readyz", None).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, body) = tokio::task::spawn_blocking(move || http_get(addr, "/", None).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("<a href=/metrics>"));
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_runs_in_flight() {
    let (hang, accepted) = counting_hanging_server().await;
    let mut yaml = String::from("probes:\n");
    for i in 0..5 {
        yaml += &format!("  - {{name: d{i}, interval: 1s, timeout: 700ms, tcp: {{address: '{hang}', expect: x}}}}\n");
    }
    let sidecar = Sidecar::start(plan(&yaml), listen()).await.unwrap();
    let recorder = sidecar.outcomes.clone();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = Instant::now();
    sidecar.shutdown().await;
    let took = t.elapsed();
    // Every run that connected was allowed to finish and was recorded; a
    // shutdown that cancelled runs would leave connections without results.
    let runs: u64 = recorder.board.snapshot().values().map(|s| s.runs).sum();
    let started = accepted.load(std::sync::atomic::Ordering::SeqCst) as u64;
    assert_eq!(runs, started, "runs recorded vs runs started");
    assert!(took <= Duration::from_millis(900), "drain took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_quick_reloads_keep_a_live_probes_series() {
    let (hang, accepted) = counting_hanging_server().await;
    let with = format!(
        "probes:\n  - {{name: a, interval: 1s, timeout: 900ms, tcp: {{address: '{hang}', expect: x}}}}\n"
    );
    let mut sidecar = Sidecar::start(plan(&with), listen()).await.unwrap();
    let board = sidecar.outcomes.clone();
    let runs = || board.board.snapshot().get("a").map_or(0, |s| s.runs);
    // Two runs recorded and a third in flight.
    eventually("a run in flight", Duration::from_secs(10), || {
        runs() >= 2 && accepted.load(std::sync::atomic::Ordering::SeqCst) as u64 > runs()
    })
    .await;
    let failures = |text: &str| {
        sample(
            text,
            "sidewatch_probe_runs_total",
            &[("probe", "a"), ("result", "failure")],
        )
    };
    let before = failures(&sidecar.metrics_text()).unwrap();
    assert!(before >= 2.0);
    // Removed, then back before the removed set has drained.
    sidecar.reload(plan("probes: []\n")).await;
    sidecar.reload(plan(&with)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let text = sidecar.metrics_text();
    let after = failures(&text);
    assert!(
        after >= Some(before),
        "the live probe's counter went from {before} to {after:?}:\n{text}"
    );
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_shows_the_new_target_on_the_status_page() {
    let port = closed_port();
    let probe = |path: &str| {
        format!("probes:\n  - {{name: a, interval: 1s, timeout: 500ms, http: {{url: 'http://127.0.0.1:{port}/{path}'}}}}\n")
    };
    let mut sidecar = Sidecar::start(plan(&probe("old-target")), listen())
        .await
        .unwrap();
    sidecar.reload(plan(&probe("new-target"))).await;
    let addr = sidecar.addr;
    let (status, page) = tokio::task::spawn_blocking(move || http_get(addr, "/", None).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("new-target"), "{page}");
    assert!(!page.contains("old-target"), "{page}");
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_a_receiver_that_never_answers() {
    let (hang, accepted) = counting_hanging_server().await;
    let yaml =
        format!("otlp: {{endpoint: 'http://{hang}/v1/metrics', interval: 100ms, timeout: 30s}}\n");
    let sidecar = Sidecar::start(plan(&yaml), listen()).await.unwrap();
    eventually("an export in flight", Duration::from_secs(5), || {
        accepted.load(std::sync::atomic::Ordering::SeqCst) > 0
    })
    .await;
    let t = Instant::now();
    // The last export is bounded at 2 s; the one in flight is given up.
    tokio::time::timeout(Duration::from_secs(20), sidecar.shutdown())
        .await
        .expect("shutdown returns");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_a_sample_that_hangs() {
    // Reading a FIFO nobody writes blocks: a cgroup file that hangs.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("memory.current");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let yaml = format!(
        "resources: {{interval: 100ms, host: false, cgroup: {{path: '{}'}}}}\n",
        dir.path().display()
    );
    let sidecar = Sidecar::start(plan(&yaml), listen()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = tokio::time::timeout(Duration::from_secs(10), sidecar.shutdown()).await;
    // Let the stuck read end, so the runtime can shut down.
    let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
    assert!(stopped.is_ok(), "shutdown waited for a hung sample");
}
