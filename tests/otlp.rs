//! OTLP export to a real receiver (scripts/otlp_receiver.py: the official
//! protobuf definitions with grpcio), over HTTP/protobuf and gRPC, and a
//! receiver that dies mid-run.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::procs::{receiver, wait_port, Killed as Proc};
use common::{assert_at_least, closed_port, http_get, sample};
use serde_json::Value;
use sidewatch::telemetry::LATENCY_BUCKETS;

fn sidewatch(config: &Path, listen: SocketAddr) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["--log-level", "warn", "run", "--config"])
        .arg(config)
        .args(["--listen", &listen.to_string()])
        .env("POD_NAME", "shop-api-0")
        .env("POD_NAMESPACE", "shop")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(listen.port());
    Proc(child)
}

fn config(dir: &Path, endpoint: &str, protocol: &str, interval: &str, queue: usize) -> PathBuf {
    let yaml = format!(
        "probes:\n  - {{name: down, interval: 100ms, timeout: 90ms, tcp: {{address: '127.0.0.1:{}'}}}}\n\
         otlp: {{endpoint: '{endpoint}', protocol: '{protocol}', interval: {interval}, timeout: 1s, max_queue: {queue}, service_name: shop-sidewatch}}\n",
        closed_port()
    );
    let p = dir.join("otlp.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

fn requests(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_requests(out: &Path, n: usize) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let r = requests(out);
        if r.len() >= n {
            return r;
        }
        assert!(Instant::now() < end, "only {} requests arrived", r.len());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metric<'a>(req: &'a Value, name: &str) -> &'a Value {
    req["request"]["resource_metrics"][0]["scope_metrics"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} not exported"))
}

fn int(v: &Value) -> u64 {
    v.as_str()
        .map(|s| s.parse().unwrap())
        .or(v.as_u64())
        .unwrap_or(0)
}

fn check_request(req: &Value, transport: &str) {
    assert_eq!(req["transport"], transport);
    let attrs: Vec<(String, String)> = req["request"]["resource_metrics"][0]["resource"]
        ["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap().to_string(),
                a["value"]["string_value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (k, v) in [
        ("service.name", "shop-sidewatch"),
        ("service.instance.id", "shop-api-0"),
        ("k8s.pod.name", "shop-api-0"),
        ("k8s.namespace.name", "shop"),
    ] {
        assert!(
            attrs.contains(&(k.to_string(), v.to_string())),
            "{k}={v} missing from {attrs:?}"
        );
    }
    // The histogram keeps its buckets, and in one snapshot its count equals
    // the runs counter.
    let hist = &metric(req, "sidewatch_probe_duration_seconds")["histogram"];
    assert_eq!(
        hist["aggregation_temporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    let point = &hist["data_points"][0];
    let bounds: Vec<f64> = point["explicit_bounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_f64().unwrap())
        .collect();
    assert_eq!(bounds, LATENCY_BUCKETS.to_vec());
    let buckets: Vec<u64> = point["bucket_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(int)
        .collect();
    assert_eq!(buckets.len(), LATENCY_BUCKETS.len() + 1);
    let count = int(&point["count"]);
    assert!(count > 0);
    assert_eq!(buckets.iter().sum::<u64>(), count);
    let runs = &metric(req, "sidewatch_probe_runs")["sum"];
    assert_eq!(runs["is_monotonic"], true);
    let failures: u64 = runs["data_points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["value"]["string_value"] == "failure")
        })
        .map(|p| int(&p["as_int"]))
        .sum();
    assert_eq!(
        failures, count,
        "runs counter and histogram count differ in one snapshot"
    );
    let gauge = &metric(req, "sidewatch_probes_configured")["gauge"]["data_points"][0];
    assert_eq!(int(&gauge["as_int"]), 1);
}

fn export_round_trip(protocol: &str, transport: &str, use_grpc_port: bool) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.jsonl");
    let (http, grpc) = (closed_port(), closed_port());
    let _rx = receiver(http, grpc, &out);
    let port = if use_grpc_port { grpc } else { http };
    let cfg = config(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        protocol,
        "300ms",
        5,
    );
    let listen: SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let _sw = sidewatch(&cfg, listen);
    let reqs = wait_requests(&out, 3);
    check_request(reqs.last().unwrap(), transport);
    let (_, m) = http_get(listen, "/metrics", None).unwrap();
    assert_at_least(
        &m,
        "sidewatch_otlp_exports_total",
        &[("result", "success")],
        3.0,
    );
}

#[test]
fn exports_over_http_protobuf() {
    export_round_trip("http/protobuf", "http", false);
}

#[test]
fn exports_over_grpc() {
    export_round_trip("grpc", "grpc", true);
}

#[test]
fn a_dead_receiver_leaves_sidewatch_healthy_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.jsonl");
    let (http, grpc) = (closed_port(), closed_port());
    let rx = receiver(http, grpc, &out);
    let cfg = config(
        dir.path(),
        &format!("http://127.0.0.1:{http}"),
        "http/protobuf",
        "100ms",
        5,
    );
    let listen: SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let sw = sidewatch(&cfg, listen);
    wait_requests(&out, 2);
    drop(rx);

    std::thread::sleep(Duration::from_secs(2));
    let before = common::vm_rss_kb(sw.0.id());
    std::thread::sleep(Duration::from_secs(5));
    let after = common::vm_rss_kb(sw.0.id());
    let (status, m) = http_get(listen, "/metrics", None).unwrap();
    assert_eq!(status, 200);
    assert_eq!(http_get(listen, "/healthz", None).unwrap().0, 200);
    assert_at_least(
        &m,
        "sidewatch_otlp_export_failures_total",
        &[("reason", "unreachable")],
        1.0,
    );
    assert_at_least(&m, "sidewatch_otlp_dropped_batches_total", &[], 1.0);
    assert!(sample(&m, "sidewatch_otlp_queue_batches", &[]).unwrap() <= 5.0);
    // Some 50 snapshots were taken while the receiver was away; the queue
    // holds 5, so memory must not grow with them.
    assert!(
        after <= before + 1024,
        "RSS grew from {before} kB to {after} kB"
    );

    // The receiver comes back: the queue drains.
    let _rx = receiver(http, grpc, &out);
    let seen = requests(&out).len();
    wait_requests(&out, seen + 3);
}
