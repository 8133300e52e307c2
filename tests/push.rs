//! A one-shot `sidewatch check`, as a CronJob runs it, pushes its verdict to
//! a real Pushgateway (Debian's `prometheus-pushgateway`) scraped by a real
//! Prometheus with `honor_labels: true` and the shipped rule files:
//! `SidewatchCheckFailed` fires from the pushed series, and
//! `SidewatchCheckNotRun` fires once the job has stopped running (the rule
//! files are copied with a short age threshold and `for:`, as the Helm
//! values would set them). Also: a failed push is retried, counted and
//! changes the exit code only with `--push-required`; secrets never reach
//! the output; every exit code comes from a real run.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::procs::{self, now, wait_for, Killed};
use common::{closed_port, http_get, http_request, nginx, sample};

/// The age threshold of the copied rules: short, so the not-run alert fires
/// within the test, long enough that a run does not trip it at once.
const MAX_AGE_SECONDS: f64 = 15.0;

fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", closed_port()).parse().unwrap()
}

/// A Pushgateway on a loopback port, persisting into `dir`.
fn start_pushgateway(dir: &Path, addr: SocketAddr) -> Killed {
    let child = Command::new("prometheus-pushgateway")
        .arg(format!("--web.listen-address={addr}"))
        .arg(format!(
            "--persistence.file={}",
            dir.join("pushgateway.data").display()
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("pushgateway.log")).unwrap())
        .spawn()
        .expect("prometheus-pushgateway (./scripts/install-deps installs Debian's package)");
    wait_for("the pushgateway", Duration::from_secs(20), || ready(addr));
    Killed(child)
}

/// The shipped rule files, copied with the overrides a Helm values file
/// would make: the check age threshold and the not-run `for:`.
fn rule_copies(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("alerts").unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let mut text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "thresholds.yml" {
            let shipped = "check_max_age_seconds\n        expr: vector(93600)";
            assert!(text.contains(shipped), "thresholds.yml changed shape");
            text = text.replace(
                shipped,
                &format!("check_max_age_seconds\n        expr: vector({MAX_AGE_SECONDS})"),
            );
        }
        if name == "checks.yml" {
            assert!(text.contains("for: 10m"), "checks.yml changed shape");
            text = text.replace("for: 10m", "for: 1s");
        }
        let copy = dir.join(&name);
        std::fs::write(&copy, text).unwrap();
        out.push(copy);
    }
    out
}

fn start_prometheus(dir: &Path, pushgateway: SocketAddr) -> (Killed, SocketAddr) {
    let scrape = format!(
        "  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: ['{pushgateway}']
"
    );
    let (child, addr) = procs::start_prometheus(dir, &rule_copies(dir), &scrape);
    wait_for("prometheus", Duration::from_secs(30), || ready(addr));
    (child, addr)
}

fn ready(addr: SocketAddr) -> bool {
    http_get(addr, "/-/ready", None).is_ok_and(|r| r.0 == 200)
}

/// The alert `name` for check `api`: its state and activeAt (Unix seconds).
fn alert(prom: SocketAddr, name: &str) -> Option<(String, f64)> {
    let (status, body) = http_get(prom, "/api/v1/alerts", None).ok()?;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["alerts"].as_array()?.iter().find_map(|a| {
        (a["labels"]["alertname"] == name && a["labels"]["check"] == "api").then(|| {
            let at = a["activeAt"].as_str().unwrap_or_default();
            let at = chrono::DateTime::parse_from_rfc3339(at).map_or(0.0, |t| {
                t.timestamp() as f64 + f64::from(t.timestamp_subsec_millis()) / 1e3
            });
            (a["state"].as_str().unwrap_or_default().to_string(), at)
        })
    })
}

fn firing(prom: SocketAddr, name: &str) -> bool {
    alert(prom, name).is_some_and(|(state, _)| state == "firing")
}

fn config(dir: &Path, threshold: &str, push: &str) -> PathBuf {
    let path = dir.join("sidewatch.yaml");
    std::fs::write(
        &path,
        format!(
            "store: {{dir: '{}'}}
{push}
checks:
  - name: api
    load: {{rate: 20/s, duration: 1s, mix: [{{http: {{url: '{}/health'}}}}]}}
    thresholds: ['{threshold}']
",
            dir.join("store").display(),
            nginx()
        ),
    )
    .unwrap();
    path
}

/// Runs `sidewatch ARGS`; (exit code, stdout + stderr).
fn sidewatch(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

fn check(config: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["check", "--config", config.to_str().unwrap(), "api"];
    args.extend_from_slice(extra);
    sidewatch(&args, &[])
}

#[test]
fn a_one_shot_check_fires_the_shipped_alerts_through_the_pushgateway() {
    let dir = tempfile::tempdir().unwrap();
    let gw_addr = free_addr();
    let _gw = start_pushgateway(dir.path(), gw_addr);
    let (_prom, prom) = start_prometheus(dir.path(), gw_addr);
    let gw = format!("http://{gw_addr}");

    // The nightly job: a threshold nobody can meet, so the verdict is fail.
    let cfg = config(dir.path(), "p95 < 1us", "");
    let (code, out) = check(&cfg, &["--pushgateway", &gw]);
    assert_eq!(code, Some(1), "a failed threshold is exit 1: {out}");
    assert!(out.contains("pushed to"), "{out}");
    let pushed_at = now();
    // The pod is gone; its verdict is at the gateway, grouped by job and check.
    let (_, scraped) = http_get(gw_addr, "/metrics", None).unwrap();
    let group = [("job", "sidewatch"), ("check", "api")];
    assert_eq!(
        sample(&scraped, "sidewatch_check_last_passed", &group),
        Some(0.0),
        "{scraped}"
    );
    assert!(sample(&scraped, "push_time_seconds", &group).is_some());

    wait_for(
        "SidewatchCheckFailed to fire",
        Duration::from_secs(60),
        || firing(prom, "SidewatchCheckFailed"),
    );
    // The job stops running: once the last run is older than the threshold
    // the not-run alert fires, and not before.
    wait_for(
        "SidewatchCheckNotRun to fire",
        Duration::from_secs(90),
        || firing(prom, "SidewatchCheckNotRun"),
    );
    let (_, active_at) = alert(prom, "SidewatchCheckNotRun").unwrap();
    assert!(
        active_at >= pushed_at - 5.0 + MAX_AGE_SECONDS - 2.0,
        "not-run pending at {active_at}, last run pushed at {pushed_at}"
    );

    // The next night passes: the push replaces the group, both alerts end.
    let cfg = config(dir.path(), "p95 < 10s", "");
    let (code, out) = check(&cfg, &["--pushgateway", &gw, "--push-required"]);
    assert_eq!(code, Some(0), "{out}");
    wait_for("both alerts to resolve", Duration::from_secs(60), || {
        alert(prom, "SidewatchCheckFailed").is_none()
            && alert(prom, "SidewatchCheckNotRun").is_none()
    });
}

#[test]
fn a_failed_push_is_retried_counted_and_fails_only_when_required() {
    let dir = tempfile::tempdir().unwrap();
    let gw_addr = free_addr();
    let push = format!("push: {{pushgateway: 'http://{gw_addr}', retry_for: 2s, timeout: 1s}}");
    let cfg = config(dir.path(), "p95 < 10s", &push);
    // Nothing listens: reported, and the verdict decides the exit code...
    let (code, out) = check(&cfg, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("warning: could not push") && out.contains("unreachable"),
        "{out}"
    );
    // ...unless the push is required.
    let (code, out) = check(&cfg, &["--push-required"]);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("error: could not push"), "{out}");

    // The gateway comes up while the run retries: the delivered body counts
    // the attempts that failed before it.
    let push = format!("push: {{pushgateway: 'http://{gw_addr}', retry_for: 60s, timeout: 1s}}");
    let cfg = config(dir.path(), "p95 < 10s", &push);
    let child = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args([
            "check",
            "--config",
            cfg.to_str().unwrap(),
            "api",
            "--push-required",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The run takes about a second; its first push fails.
    std::thread::sleep(Duration::from_secs(3));
    let _gw = start_pushgateway(dir.path(), gw_addr);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let (_, scraped) = http_get(gw_addr, "/metrics", None).unwrap();
    let failed = sample(
        &scraped,
        "sidewatch_push_failures_total",
        &[("check", "api"), ("reason", "unreachable")],
    );
    assert!(failed.is_some_and(|n| n >= 1.0), "{scraped}");
}

#[test]
fn push_secrets_never_reach_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let push = format!(
        "push:\n  pushgateway: 'http://pgw:${{PGW_PASSWORD}}@127.0.0.1:{}'\n  bearer_token: '${{PGW_TOKEN}}'\n  retry_for: 1s",
        closed_port()
    );
    let cfg = config(dir.path(), "p95 < 10s", &push);
    let env = [("PGW_PASSWORD", "pw-hunter2"), ("PGW_TOKEN", "tok-s3cret")];
    let cfg_str = cfg.to_str().unwrap();
    let (code, out) = sidewatch(
        &[
            "--log-level",
            "debug",
            "check",
            "--config",
            cfg_str,
            "api",
            "--push-required",
        ],
        &env,
    );
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("could not push"), "{out}");
    for secret in ["pw-hunter2", "tok-s3cret"] {
        assert!(!out.contains(secret), "{secret} leaked: {out}");
    }
}

#[test]
fn exit_codes_tell_a_gate_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let pass = config(dir.path(), "p95 < 10s", "");
    assert_eq!(check(&pass, &[]).0, Some(0), "pass");
    let cfg = config(dir.path(), "p95 < 1us", "");
    assert_eq!(check(&cfg, &[]).0, Some(1), "threshold failed");
    let (code, out) = sidewatch(&["check", "--config", pass.to_str().unwrap(), "nope"], &[]);
    assert_eq!(code, Some(2), "unknown check: {out}");
    let (code, out) = check(&pass, &["--push-required"]);
    assert_eq!(code, Some(2), "--push-required with nowhere to push: {out}");
    // An abort rule stops a load run that only gets 404s.
    let missing = format!("{}/missing", nginx());
    let (code, out) = sidewatch(
        &[
            "load",
            "--url",
            &missing,
            "--rate",
            "20/s",
            "--duration",
            "10s",
            "--abort",
            "error_rate > 50% for 1s",
        ],
        &[],
    );
    assert_eq!(code, Some(3), "aborted: {out}");
    // sidewatch could not do its job: the listen port is taken...
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().to_string();
    let (code, out) = check(&pass, &["--listen", &taken]);
    assert_eq!(code, Some(4), "listen port taken: {out}");
    // ...the store is not a directory...
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "a file where the store should be").unwrap();
    let text = std::fs::read_to_string(&pass).unwrap();
    let store_dir = dir.path().join("store").display().to_string();
    let bad_store = dir.path().join("bad-store.yaml");
    std::fs::write(
        &bad_store,
        text.replace(&store_dir, &blocked.display().to_string()),
    )
    .unwrap();
    let (code, out) = check(&bad_store, &[]);
    assert_eq!(code, Some(4), "store cannot be opened: {out}");
    // ...a report cannot be written, even though the run passed...
    let (code, out) = check(&pass, &["--html", "/proc/no-such-dir/r.html"]);
    assert_eq!(code, Some(4), "report not written: {out}");
    // ...the sidecar cannot bind.
    let (code, out) = sidewatch(
        &[
            "run",
            "--config",
            pass.to_str().unwrap(),
            "--listen",
            &taken,
        ],
        &[],
    );
    assert_eq!(code, Some(4), "sidecar listen port taken: {out}");
    // --help documents the table.
    let (_, help) = sidewatch(&["--help"], &[]);
    assert!(help.contains("4 sidewatch could not do its job"), "{help}");
}

/// A read-only stand-in for a pushgateway path check: the group is exactly
/// job + check, so a new pod each night replaces last night's verdict
/// instead of adding a group.
#[test]
fn each_night_replaces_the_same_group() {
    let dir = tempfile::tempdir().unwrap();
    let gw_addr = free_addr();
    let _gw = start_pushgateway(dir.path(), gw_addr);
    let gw = format!("http://{gw_addr}");
    let cfg = config(dir.path(), "p95 < 10s", "");
    for _ in 0..2 {
        let (code, out) = check(&cfg, &["--pushgateway", &gw, "--push-required"]);
        assert_eq!(code, Some(0), "{out}");
    }
    let (status, body) = http_request(gw_addr, "GET", "/api/v1/metrics", None).unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let groups = v["data"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{body}");
    let labels = &groups[0]["labels"];
    assert_eq!(labels["job"], "sidewatch");
    assert_eq!(labels["check"], "api");
}

/// With an `otlp:` section the one-shot run sends a last snapshot before it
/// exits, so the verdict reaches the collector even from a short run.
#[test]
fn a_one_shot_check_flushes_its_verdict_over_otlp_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (http, grpc) = (closed_port(), closed_port());
    let out = dir.path().join("otlp.jsonl");
    let _rx = procs::receiver(http, grpc, &out);
    // An hour between exports: only the first tick and the last flush send.
    let otlp = format!("otlp: {{endpoint: 'http://127.0.0.1:{http}', interval: 1h}}");
    let cfg = config(dir.path(), "p95 < 1us", &otlp);
    let (code, text) = check(&cfg, &["--push-required"]);
    assert_eq!(code, Some(1), "{text}");
    let lines = std::fs::read_to_string(&out).unwrap_or_default();
    let last: serde_json::Value =
        serde_json::from_str(lines.lines().last().expect("an export")).unwrap();
    let metrics = last["request"]["resource_metrics"][0]["scope_metrics"][0]["metrics"]
        .as_array()
        .unwrap();
    let passed = metrics
        .iter()
        .find(|m| m["name"] == "sidewatch_check_last_passed")
        .unwrap_or_else(|| panic!("the verdict is in the last export: {last}"));
    let point = &passed["gauge"]["data_points"][0];
    assert_eq!(
        point["attributes"][0]["value"]["string_value"], "api",
        "{point}"
    );
    let value = point["as_int"]
        .as_str()
        .map_or(point["as_int"].as_i64(), |s| s.parse().ok());
    assert_eq!(value.unwrap_or(0), 0, "the failed verdict: {point}");
    assert!(!point["as_int"].is_null(), "{point}");
}

/// An OTLP endpoint that rejects every export with `400 Bad Request`; the
/// port and a count of requests answered.
fn rejecting_receiver() -> (u16, Arc<AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    std::thread::spawn(move || {
        // Bounded: the test's sidewatch sends a handful of exports.
        for conn in listener.incoming().take(200) {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = vec![0; 1 << 20];
            let mut got = Vec::new();
            // Read the head, then as much body as Content-Length says.
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, answered)
}

/// A receiver that rejects the last snapshot has not received the verdict:
/// `--push-required` must fail the run (exit 4), not report it delivered.
#[test]
fn a_rejected_final_otlp_export_fails_push_required() {
    let dir = tempfile::tempdir().unwrap();
    let (port, answered) = rejecting_receiver();
    let otlp = format!("otlp: {{endpoint: 'http://127.0.0.1:{port}', interval: 1h}}");
    let cfg = config(dir.path(), "p95 < 10s", &otlp);
    let (code, text) = check(&cfg, &["--push-required"]);
    assert!(
        answered.load(Ordering::SeqCst) > 0,
        "no export was sent: {text}"
    );
    assert_eq!(code, Some(4), "{text}");
    let (code, text) = check(&cfg, &[]);
    assert_eq!(
        code,
        Some(0),
        "without --push-required the verdict stands: {text}"
    );
}
