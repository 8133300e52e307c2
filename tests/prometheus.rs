//! End to end through a real Prometheus (Debian's `prometheus`, loopback,
//! temporary directory, 1 s scrapes): a real `sidewatch run` probes local
//! HTTP, HTTPS, TCP, PostgreSQL and Kafka servers, samples resources, and
//! runs soak (twice, for a baseline comparison), spike, breakpoint, leak and
//! plain load (with errors) checks triggered through its API. Then every dashboard query must return
//! data, every metric name in dashboards/ and alerts/ must be one sidewatch
//! exports (or a recording rule makes), and every rule must evaluate
//! without errors.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::assets::{self, all_rules, metric_names, panel_queries, substitute};
use common::procs::{self, now, wait_for, Killed};
use common::{closed_port, http_get, http_request, nginx, sample, AllTargets};

const TOKEN: &str = "e2e-token-0123456789";

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// GET on Prometheus's HTTP API, parsed; panics on a non-200.
fn api(prom: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = http_request(prom, "GET", path, None).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Where the real servers are: the HTTPS server and its CA, PostgreSQL's
/// DSN and the Kafka brokers.
struct Servers<'a> {
    tls: SocketAddr,
    ca: &'a std::path::Path,
    pg: String,
    kafka: String,
}

fn sidewatch_config(dir: &std::path::Path, s: &Servers) -> String {
    let (pg, kafka) = (&s.pg, &s.kafka);
    let web = nginx();
    format!(
        "store: {{dir: '{store}', keep: 5}}
api: {{token: {TOKEN}}}
service: {{processes: [{{label: web, comm: nginx}}]}}
resources: {{interval: 1s, filesystems: ['/']}}
otlp: {{endpoint: 'http://127.0.0.1:{closed}', interval: 1s, timeout: 200ms}}
probes:
  - {{name: web, interval: 500ms, timeout: 400ms, http: {{url: '{web}/health'}}}}
  - {{name: tls, interval: 500ms, timeout: 400ms, http: {{url: 'https://localhost:{tls}/', tls: {{ca_file: '{ca}'}}}}}}
  - {{name: refused, interval: 500ms, timeout: 400ms, tcp: {{address: '127.0.0.1:{closed}'}}}}
  - name: db-pool
    interval: 1s
    timeout: 900ms
    postgres:
      dsn: '{pg}'
      query: SELECT count(*)::float8 / current_setting('max_connections')::int AS connections_used_ratio FROM pg_stat_activity
      values: {{columns: [connections_used_ratio]}}
  - {{name: ingest, interval: 1s, timeout: 900ms, kafka: {{brokers: '{kafka}'}}}}
checks:
  - name: api-soak
    load: {{rate: 50/s, mix: [{{http: {{url: '{web}/data.json'}}}}]}}
    soak: {{duration: 6s, window: 1s}}
    thresholds: ['p95 < 50ms', 'error_rate < 1%']
    baseline: {{latency: +10%}}
  - name: api-spike
    load: {{rate: 50/s, mix: [{{http: {{url: '{web}/data.json'}}}}]}}
    spike: {{factor: 2, before: 2s, hold: 1s, after: 4s, window: 1s, tolerance: 100%}}
  - name: api-breakpoint
    load: {{rate: 50/s, mix: [{{http: {{url: '{web}/data.json'}}}}]}}
    breakpoint: {{steps: [50/s, 100/s], step: 1s}}
  - name: api-errors
    schedule: '0 2 * * *'
    load: {{rate: 50/s, duration: 2s, mix: [{{weight: 9, http: {{url: '{web}/data.json'}}}}, {{weight: 1, http: {{url: '{web}/missing'}}}}]}}
  - name: web-leak
    leak: {{duration: 7s, warmup: 0s, window: 1s, sample_interval: 200ms}}
",
        store = dir.join("store").display(),
        closed = closed_port(),
        tls = s.tls.port(),
        ca = s.ca.display(),
    )
}

fn start_sidewatch(config: &std::path::Path, listen: SocketAddr) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["run", "--config"])
        .arg(config)
        .args(["--listen", &listen.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Killed(child)
}

fn start_prometheus(dir: &std::path::Path, target: SocketAddr) -> (Killed, SocketAddr) {
    let scrape = format!(
        "  - job_name: sidewatch
    static_configs:
      - targets: ['{target}']
        # What Prometheus Operator's PodMonitor adds as target labels.
        labels: {{namespace: e2e, pod: sidewatch-0}}
"
    );
    procs::start_prometheus(dir, &assets::rule_files(), &scrape)
}

fn scrape(addr: SocketAddr) -> String {
    http_get(addr, "/metrics", None)
        .map(|r| r.1)
        .unwrap_or_default()
}

/// Triggers a check through the API and waits for its run to be counted.
fn run_check(addr: SocketAddr, check: &str) {
    let done = |text: &str| -> f64 {
        ["pass", "fail", "aborted"]
            .iter()
            .filter_map(|v| {
                sample(
                    text,
                    "sidewatch_check_runs_total",
                    &[("check", check), ("verdict", v)],
                )
            })
            .sum()
    };
    let before = done(&scrape(addr));
    let auth = format!("Authorization: Bearer {TOKEN}");
    let path = format!("/api/v1/checks/{check}/run");
    wait_for(
        &format!("{check} to start"),
        Duration::from_secs(30),
        || http_request(addr, "POST", &path, Some(&auth)).unwrap().0 == 202,
    );
    wait_for(
        &format!("{check} to finish"),
        Duration::from_secs(60),
        || done(&scrape(addr)) > before,
    );
}

/// Range query over the test; (series, series with a finite value).
fn range(prom: SocketAddr, expr: &str, start: f64) -> (usize, usize) {
    let path = format!(
        "/api/v1/query_range?query={}&start={start:.3}&end={:.3}&step=1",
        encode(expr),
        now()
    );
    let v = api(prom, &path);
    assert_eq!(v["status"], "success", "{expr}: {v}");
    let series = v["data"]["result"].as_array().unwrap();
    let finite = series
        .iter()
        .filter(|s| {
            s["values"].as_array().unwrap().iter().any(|p| {
                p[1].as_str()
                    .and_then(|x| x.parse::<f64>().ok())
                    .is_some_and(f64::is_finite)
            })
        })
        .count();
    (series.len(), finite)
}

fn dashboard_queries_return_data(prom: SocketAddr, start: f64) {
    let mut empty = Vec::new();
    let mut panels: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for q in panel_queries() {
        let (series, finite) = range(prom, &substitute(&q.expr), start);
        if series == 0 {
            empty.push(format!("{} / {}: {}", q.dashboard, q.panel, q.expr));
        }
        *panels.entry((q.dashboard, q.panel)).or_default() += finite;
    }
    assert!(
        empty.is_empty(),
        "queries with no series:\n{}",
        empty.join("\n")
    );
    let blank: Vec<_> = panels.iter().filter(|(_, n)| **n == 0).collect();
    assert!(blank.is_empty(), "panels with no finite value: {blank:?}");
    for (name, query) in assets::variable_queries() {
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{name}: {query}"));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        let path = format!(
            "/api/v1/label/{}/values?match[]={}",
            label.trim(),
            encode(&substitute(selector))
        );
        let values = api(prom, &path);
        assert!(
            !values["data"].as_array().unwrap().is_empty(),
            "variable {name} has no values: {query}"
        );
    }
}

fn names_are_exported(prom: SocketAddr) {
    let known: BTreeSet<String> = api(prom, "/api/v1/label/__name__/values")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut used = BTreeSet::new();
    for q in panel_queries() {
        used.extend(metric_names(&q.expr));
    }
    for r in all_rules() {
        used.extend(metric_names(&r.expr));
    }
    let unknown: Vec<_> = used.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "used but never exported or recorded: {unknown:?}"
    );
    let families: BTreeSet<_> = used.iter().filter(|n| !n.contains(':')).collect();
    assert!(
        families.len() > 60,
        "the assets cover the families: {families:?}"
    );
}

fn rules_evaluate_cleanly(prom: SocketAddr) {
    let v = api(prom, "/api/v1/rules");
    let mut seen = 0;
    for g in v["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "{}: {}", r["name"], r["lastError"]);
            seen += 1;
        }
    }
    assert_eq!(seen, all_rules().len(), "every rule loaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_what_the_dashboards_and_alerts_need() {
    let t = AllTargets::start().await;
    let dir = &t.dir;
    let servers = Servers {
        tls: t.tls,
        ca: &t.ca,
        pg: t.dsn(),
        kafka: t.broker.brokers(),
    };
    let config = dir.path().join("sidewatch.yaml");
    std::fs::write(&config, sidewatch_config(dir.path(), &servers)).unwrap();
    let listen: SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let start = now();
    let _sidewatch = start_sidewatch(&config, listen);
    let (_prom, prom) = start_prometheus(dir.path(), listen);
    tokio::task::spawn_blocking(move || {
        wait_for("sidewatch", Duration::from_secs(20), || {
            !scrape(listen).is_empty()
        });
        wait_for("probe series", Duration::from_secs(30), || {
            let t = scrape(listen);
            ["sidewatch_query_value{", "sidewatch_kafka_consumer_lag{"]
                .iter()
                .all(|s| t.contains(s))
        });
        for check in [
            "api-soak",
            "api-spike",
            "api-breakpoint",
            "api-errors",
            "web-leak",
            "api-soak",
        ] {
            run_check(listen, check);
        }
        assert!(scrape(listen).contains("sidewatch_check_regressions{"));
        // Let Prometheus scrape the last run and evaluate the rules on it.
        std::thread::sleep(Duration::from_secs(4));
        wait_for("prometheus", Duration::from_secs(20), || {
            http_request(prom, "GET", "/-/ready", None).is_ok_and(|r| r.0 == 200)
        });
        dashboard_queries_return_data(prom, start);
        names_are_exported(prom);
        rules_evaluate_cleanly(prom);
    })
    .await
    .unwrap();
}
