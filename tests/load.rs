//! The load engine against real servers: rate accuracy, stage ramps, drops
//! under a tight connection cap, thresholds both ways, abort timing, the
//! closed model, live /metrics, and SIGINT.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sidewatch::load::Quiet;
use sidewatch::load::{self, LoadResult};
use tokio_util::sync::CancellationToken;

fn check(url: &str, load: &str, thresholds: &[&str], aborts: &[&str]) -> String {
    let list = |v: &[&str]| {
        format!(
            "[{}]",
            v.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "checks:\n  - name: t\n    load: {{{load}, mix: [{{http: {{url: '{url}'}}}}]}}\n    thresholds: {}\n    abort: {}\n",
        list(thresholds),
        list(aborts)
    )
}

async fn run(yaml: &str) -> LoadResult {
    let plan = plan(yaml);
    let lp = plan.checks[0].load.as_ref().unwrap();
    let profile = lp.profile.as_ref().unwrap();
    load::run(
        &lp.workload,
        profile,
        None,
        &mut Quiet,
        CancellationToken::new(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_rate_is_within_two_percent_of_target() {
    let url = format!("{}/health", nginx());
    let r = run(&check(&url, "rate: 500/s, duration: 10s", &[], &[])).await;
    assert_eq!(r.errors, 0, "{:?}", r.errors_by_reason);
    assert_eq!(r.dropped, 0);
    assert!(
        (r.achieved_rate - 500.0).abs() / 500.0 < 0.02,
        "achieved {}",
        r.achieved_rate
    );
    assert!(
        (r.requests as f64 - 5000.0).abs() / 5000.0 < 0.02,
        "requests {}",
        r.requests
    );
    for p in &r.timeseries[1..9] {
        assert!(
            (p.rate - 500.0).abs() <= 10.0,
            "second {} ran at {}/s",
            p.second,
            p.rate
        );
    }
    assert_eq!(r.verdict, "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_ramp_as_specified() {
    let url = format!("{}/health", nginx());
    let r = run(&check(
        &url,
        "rate: 0/s, stages: '4s:400/s,2s:400/s'",
        &[],
        &[],
    ))
    .await;
    let per_second: Vec<u64> = r.timeseries.iter().map(|p| p.requests).collect();
    // The integral of a 0 → 400/s ramp over each second, then 400/s.
    let expected = [50.0, 150.0, 250.0, 350.0, 400.0, 400.0];
    assert_eq!(per_second.len(), expected.len(), "{per_second:?}");
    for (got, want) in per_second.iter().zip(expected) {
        assert!(
            (*got as f64 - want).abs() <= want * 0.05 + 2.0,
            "{per_second:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_under_a_tight_cap_counts_drops() {
    let hang = hanging_server().await;
    let r = run(&check(
        &format!("http://{hang}/"),
        "rate: 100/s, duration: 2s, max_connections: 5, timeout: 500ms",
        &["dropped < 1%"],
        &[],
    ))
    .await;
    // 5 connections, each stuck for 500 ms: at most ~20 starts in 2 s; the rest of the 200 are dropped.
    assert!(r.dropped >= 150, "dropped {}", r.dropped);
    assert_eq!(r.requests + r.dropped, 200);
    assert_eq!(r.errors_by_reason.get("timeout").copied(), Some(r.requests));
    assert_eq!(r.verdict, "fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_in_which_nothing_completed_fails_as_no_data() {
    // Every request hangs until its 3 s timeout, after the 2 s schedule:
    // no second of the run sees a request complete.
    let hang = hanging_server().await;
    let r = run(&check(
        &format!("http://{hang}/"),
        "rate: 5/s, duration: 2s, timeout: 3s",
        &[
            "p95 < 20s over 1s",
            "error_rate < 100% over 1s",
            "p95 < 20s",
        ],
        &[],
    ))
    .await;
    assert_eq!(r.requests, 10, "every request timed out in the drain");
    let shown: Vec<(bool, &str)> = r
        .thresholds
        .iter()
        .map(|t| (t.passed, t.observed_text.as_str()))
        .collect();
    assert_eq!(shown[0], (false, "no data"), "{shown:?}");
    assert_eq!(shown[1], (false, "no data"), "{shown:?}");
    // The whole run has its ten timeouts, under 20 s.
    assert!(shown[2].0, "{shown:?}");
    assert_eq!(r.verdict, "fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_pass_and_fail_when_they_should() {
    let ok = format!("{}/health", nginx());
    let teapot = format!("{}/teapot", nginx());
    let r = run(&check(
        &ok,
        "rate: 200/s, duration: 2s",
        &[
            "p95 < 1s",
            "error_rate < 1%",
            "rate >= 190/s",
            "dropped < 0.1%",
        ],
        &[],
    ))
    .await;
    assert!(r.thresholds.iter().all(|t| t.passed), "{:?}", r.thresholds);
    assert_eq!(r.verdict, "pass");
    let r = run(&check(
        &ok,
        "rate: 200/s, duration: 2s",
        &["p95 < 1us", "rate >= 300/s"],
        &[],
    ))
    .await;
    assert!(r.thresholds.iter().all(|t| !t.passed), "{:?}", r.thresholds);
    assert_eq!(r.verdict, "fail");
    let r = run(&check(
        &teapot,
        "rate: 200/s, duration: 2s",
        &["error_rate < 1%"],
        &[],
    ))
    .await;
    assert!(!r.thresholds[0].passed);
    assert_eq!(r.errors_by_reason.get("status").copied(), Some(r.requests));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_fires_within_two_seconds_of_its_condition() {
    let (addr, first) = turning_server(Duration::from_secs(3)).await;
    let t0 = Instant::now();
    let r = run(&check(
        &format!("http://{addr}/"),
        "rate: 100/s, duration: 20s",
        &[],
        &["error_rate > 50% for 2s"],
    ))
    .await;
    let took = t0.elapsed();
    assert_eq!(r.verdict, "aborted");
    assert_eq!(r.aborted_by.as_deref(), Some("error_rate > 50% for 2s"));
    // Failing from ~3 s, the condition holds from ~5 s; the run stops by 7 s.
    let failing_since = first.get().unwrap().duration_since(t0) + Duration::from_secs(3);
    let condition = failing_since + Duration::from_secs(2);
    assert!(
        took <= condition + Duration::from_secs(2),
        "aborted at {took:?}, condition at {condition:?}"
    );
    assert!(
        took >= condition - Duration::from_millis(1100),
        "aborted early at {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_model_keeps_users_busy_without_drops() {
    let url = format!("{}/health", nginx());
    let r = run(&check(&url, "concurrency: 4, duration: 2s", &[], &[])).await;
    assert!(
        r.requests > 1000,
        "only {} requests from 4 users in 2 s",
        r.requests
    );
    assert_eq!(r.dropped, 0);
    assert!(r.target_rate.is_none());
    assert!(r.executor.starts_with("constant-concurrency 4 users"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_model_keeps_to_the_rate_limit() {
    let url = format!("{}/health", nginx());
    let yaml = format!(
        "limits: {{max_rate: 50/s}}\n{}",
        check(&url, "concurrency: 4, duration: 2s", &[], &[])
    );
    let r = run(&yaml).await;
    // Four users against nginx send thousands a second without the limit.
    assert!(
        r.requests <= 2 * 50 + 10,
        "{} requests in 2 s under a 50/s limit",
        r.requests
    );
    assert!(r.requests >= 50, "only {} requests", r.requests);
}

#[test]
fn infinite_users_are_refused_before_any_load() {
    let out = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["load", "--url", "http://127.0.0.1:9/", "--concurrency", "1"])
        .args(["--stages", "3s:inf", "--threshold", "p95 < 1s"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("users"), "{err}");
}

#[test]
fn sigint_gives_a_partial_summary_and_exit_3_and_metrics_are_live() {
    interrupted_by("INT", "sigint");
}

/// SIGTERM is how Kubernetes stops a Job's pod (and, as PID 1 in the image,
/// a signal without a handler is ignored): the run ends as aborted, like
/// Ctrl-C, instead of dying without a summary, a stored result or a push.
#[test]
fn sigterm_gives_a_partial_summary_and_exit_3() {
    interrupted_by("TERM", "sigterm");
}

/// Runs a load, checks /metrics is live, sends `signal`, and expects a
/// partial summary and exit 3 within 3 s.
fn interrupted_by(signal: &str, name: &str) {
    let url = format!("{}/health", nginx());
    let port = closed_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args([
            "load",
            "--url",
            &url,
            "--rate",
            "200/s",
            "--duration",
            "60s",
            "--name",
            name,
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let (_, m) = http_get(addr, "/metrics", None).unwrap();
    assert_eq!(
        sample(&m, "sidewatch_load_active", &[("check", name)]),
        Some(1.0)
    );
    assert_at_least(
        &m,
        "sidewatch_load_requests_total",
        &[("check", name), ("result", "success")],
        200.0,
    );
    let observed = sample(
        &m,
        "sidewatch_load_latency_seconds_count",
        &[("check", name), ("entry", "request")],
    );
    assert!(observed >= Some(200.0), "{observed:?}");
    let t = Instant::now();
    assert!(Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ABORTED") && stdout.contains("interrupted"),
        "{stdout}"
    );
    assert!(stdout.contains("corrected"), "{stdout}");
}

#[test]
fn bad_flags_exit_2_before_any_load() {
    let out = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args([
            "load",
            "--url",
            "http://192.0.2.10/",
            "--rate",
            "10/s",
            "--duration",
            "1s",
            "--threshold",
            "p95 <",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--url: host `192.0.2.10` is not an allowed load target"),
        "{err}"
    );
    assert!(err.contains("--threshold:"), "{err}");
}
