//! The sidecar serves its stored runs read-only: `/runs` lists them newest
//! first with verdict, duration and the baseline marker; `/runs/ID` is the
//! HTML report and `/runs/ID.json` the stored result; nothing outside the
//! store's index is reachable and no config secret appears.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{http_request, nginx, plan};
use sidewatch::app::Sidecar;

const TOKEN: &str = "runs-api-token-0123456789";
const SECRET: &str = "hdr-s3cret-value";

fn config(dir: &Path, threshold: &str) -> String {
    format!(
        "store: {{dir: '{}'}}
api: {{token: {TOKEN}}}
checks:
  - name: api
    load:
      rate: 20/s
      duration: 1s
      mix: [{{http: {{url: '{}/health', headers: {{Authorization: 'Bearer ${{RUNS_SECRET}}'}}}}}}]
    thresholds: ['{threshold}']
    baseline: {{latency: +10%}}
",
        dir.join("store").display(),
        nginx()
    )
}

/// Runs the check once with `threshold`; the run's id.
fn check(dir: &Path, threshold: &str) -> String {
    let file = dir.join("c.yaml");
    std::fs::write(&file, config(dir, threshold)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["check", "--config", file.to_str().unwrap(), "api"])
        .env("RUNS_SECRET", SECRET)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("run "))
        .unwrap_or_else(|| panic!("no run id: {text}"))
        .trim()
        .to_string()
}

async fn get(addr: SocketAddr, method: &'static str, path: &str) -> (u16, String) {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || http_request(addr, method, &path, None).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_serves_stored_runs_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let (base, failed) =
        tokio::task::spawn_blocking(move || (check(&d, "p95 < 10s"), check(&d, "p95 < 1us")))
            .await
            .unwrap();
    std::env::set_var("RUNS_SECRET", SECRET);
    let sidecar = Sidecar::start(
        plan(&config(dir.path(), "p95 < 10s")),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let addr = sidecar.addr;

    let (status, list) = get(addr, "GET", "/runs").await;
    assert_eq!(status, 200, "{list}");
    let (at_failed, at_base) = (list.find(&failed).unwrap(), list.find(&base).unwrap());
    assert!(at_failed < at_base, "newest first: {list}");
    let base_row = &list[at_base..];
    let base_row = &base_row[..base_row.find("</tr>").unwrap()];
    assert!(
        base_row.contains("pass") && base_row.contains("baseline"),
        "{base_row}"
    );
    let failed_row = &list[at_failed..];
    let failed_row = &failed_row[..failed_row.find("</tr>").unwrap()];
    assert!(
        failed_row.contains("fail") && !failed_row.contains("baseline"),
        "{failed_row}"
    );
    assert!(
        failed_row.contains("1.0") || failed_row.contains("1s"),
        "a duration: {failed_row}"
    );

    let (status, html) = get(addr, "GET", &format!("/runs/{failed}")).await;
    assert_eq!(status, 200);
    assert!(
        html.starts_with("<!doctype html") && html.contains(&failed),
        "{}",
        &html[..200.min(html.len())]
    );
    let (status, json) = get(addr, "GET", &format!("/runs/{failed}.json")).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["id"], failed.as_str());
    assert_eq!(v["verdict"], "fail");

    for body in [&list, &html, &json] {
        assert!(
            !body.contains(SECRET) && !body.contains(TOKEN),
            "a secret is served"
        );
    }
    for path in [
        "/runs/..",
        "/runs/../index.json",
        "/runs/%2e%2e/index.json",
        "/runs/api/baseline",
        "/runs/index",
        "/runs/no-such-run.json",
    ] {
        let (status, body) = get(addr, "GET", path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = get(addr, "POST", &format!("/runs/{failed}")).await;
    assert_eq!(status, 405, "read-only");
    sidecar.shutdown().await;
}

/// GET `path` with a read timeout long enough for the store's lock wait.
fn get_slow(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        return (0, format!("no answer: {e}"));
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_store_lock_makes_runs_answer_busy_not_pile_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = format!(
        "store: {{dir: '{}'}}
checks:
  - name: c
    load: {{rate: 1/s, duration: 1s, mix: [{{http: {{url: 'http://127.0.0.1:{}/'}}}}]}}
",
        store.display(),
        common::closed_port()
    );
    let sidecar = Sidecar::start(plan(&yaml), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = sidecar.addr;
    let (status, body) = get(addr, "GET", "/runs").await;
    assert_eq!(status, 200, "{body}");

    // Another process holds the store's lock (as a writer would).
    let lock = store.join(".lock");
    let mut holder = Command::new("flock")
        // -o: the lock stays with flock itself, so killing it frees the lock.
        .args(["-x", "-o"])
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while Command::new("flock")
        .args(["-n", "-x"])
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < end, "the lock was never taken");
        std::thread::sleep(Duration::from_millis(50));
    }

    let clients: Vec<_> = (0..8)
        .map(|i| {
            let path = if i % 2 == 0 { "/runs" } else { "/runs/x-y" };
            std::thread::spawn(move || get_slow(addr, path))
        })
        .collect();
    let (status, metrics) = get(addr, "GET", "/metrics").await;
    assert_eq!(status, 200, "/metrics answers while /runs waits");
    assert!(metrics.contains("sidewatch_"), "{metrics}");
    for c in clients {
        let (status, text) = tokio::task::spawn_blocking(move || c.join().unwrap())
            .await
            .unwrap();
        assert_eq!(status, 503, "{text}");
        assert!(text.contains("busy"), "a busy answer, not a hang: {text}");
        assert!(text.to_ascii_lowercase().contains("retry-after:"), "{text}");
    }
    let (status, _) = get(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);

    let _ = holder.kill();
    let _ = holder.wait();
    let (status, body) = get(addr, "GET", "/runs").await;
    assert_eq!(status, 200, "served again once the lock is free: {body}");
    sidecar.shutdown().await;
}
