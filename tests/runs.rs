//! The sidecar serves its stored runs read-only: `/runs` lists them newest
//! first with verdict, duration and the baseline marker; `/runs/ID` is the
//! HTML report and `/runs/ID.json` the stored result; nothing outside the
//! store's index is reachable and no config secret appears.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{http_exchange, http_request, nginx, plan};
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
    let holder = common::procs::hold_lock(&store.join(".lock"));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let path = if i % 2 == 0 { "/runs" } else { "/runs/x-y" };
            // Long enough a wait for the store's 2 s lock timeout.
            let wait = Duration::from_secs(20);
            std::thread::spawn(move || http_exchange(addr, "GET", path, None, wait))
        })
        .collect();
    let (status, metrics) = get(addr, "GET", "/metrics").await;
    assert_eq!(status, 200, "/metrics answers while /runs waits");
    assert!(metrics.contains("sidewatch_"), "{metrics}");
    for c in clients {
        let answer = tokio::task::spawn_blocking(move || c.join().unwrap())
            .await
            .unwrap();
        let (status, head, body) = answer.expect("an answer, not a hang");
        assert_eq!(status, 503, "{head}\n{body}");
        assert!(body.contains("busy"), "{body}");
        assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    }
    let (status, _) = get(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);

    drop(holder);
    let (status, body) = get(addr, "GET", "/runs").await;
    assert_eq!(status, 200, "served again once the lock is free: {body}");
    sidecar.shutdown().await;
}
