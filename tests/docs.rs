//! The reference docs stay true: docs/config.md's field tables are generated
//! from the doc comments on the config structs, and docs/metrics.md names
//! exactly the metric families a real sidecar exports.
//!
//! `SIDEWATCH_BLESS=1 cargo test --test docs` rewrites docs/config.md.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use sidewatch::app::Sidecar;
use sidewatch::telemetry::PREFIX;

const BEGIN: &str =
    "<!-- BEGIN GENERATED: do not edit; SIDEWATCH_BLESS=1 cargo test --test docs -->";
const END: &str = "<!-- END GENERATED -->";

/// Renders every `pub(crate) struct` in the config module with its documented fields.
fn config_reference() -> String {
    let src = [
        "src/config/mod.rs",
        "src/config/probes.rs",
        "src/config/resources.rs",
        "src/config/otlp.rs",
        "src/config/push.rs",
        "src/config/load.rs",
        "src/config/checks.rs",
        "src/config/server.rs",
    ]
    .map(|f| std::fs::read_to_string(f).unwrap())
    .join("\n");
    let mut out = String::new();
    let mut doc: Vec<String> = Vec::new();
    let mut in_struct = false;
    let mut deserialize = false;
    for line in src.lines() {
        // The config structs are `pub(crate)`: read them as `pub`.
        let crate_pub = line
            .trim()
            .strip_prefix("pub(crate) ")
            .map(|r| format!("pub {r}"));
        let t = crate_pub.as_deref().unwrap_or(line.trim());
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_string());
        } else if t.starts_with("#[") {
            deserialize |= t.starts_with("#[derive") && t.contains("Deserialize");
            continue;
        } else if let Some(rest) = t.strip_prefix("pub struct ") {
            let name = rest.split([' ', '{', '(']).next().unwrap();
            if t.ends_with('{') && std::mem::take(&mut deserialize) {
                out += &format!(
                    "\n### `{name}`\n\n{}\n\n| field | type | meaning |\n|---|---|---|\n",
                    doc.join(" ")
                );
                in_struct = true;
            }
            doc.clear();
        } else if in_struct && t == "}" {
            in_struct = false;
        } else if in_struct && t.starts_with("pub ") {
            let (name, ty) = t["pub ".len()..]
                .trim_end_matches(',')
                .split_once(": ")
                .unwrap();
            out += &format!("| `{name}` | {} | {} |\n", friendly(ty), doc.join(" "));
            doc.clear();
        } else {
            doc.clear();
            deserialize = false;
        }
    }
    out
}

/// `Option<Vec<Dur>>` reads as "list of duration, optional".
fn friendly(ty: &str) -> String {
    if let Some(inner) = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
        return format!("{}, optional", friendly(inner));
    }
    if let Some(inner) = ty.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')) {
        return format!("list of {}", friendly(inner));
    }
    match ty {
        "Dur" => "duration".into(),
        "String" => "string".into(),
        "bool" => "bool".into(),
        "PathBuf" => "file path".into(),
        "SocketAddr" => "host:port".into(),
        "u16" | "u32" | "u64" | "usize" => "integer".into(),
        "BTreeMap<String, String>" => "map of string to string".into(),
        "OtlpProtocol" => "`http/protobuf` or `grpc`".into(),
        "PostgresMode" => "`fresh` or `pooled`".into(),
        "Overlap" => "`skip` or `queue`".into(),
        "f64" => "number".into(),
        "PostgresTlsMode" => "`disable`, `require` or `verify-full`".into(),
        "i32" => "integer".into(),
        other => format!("[`{other}`](#{})", other.to_ascii_lowercase()),
    }
}

#[test]
fn config_reference_is_generated_from_the_structs() {
    let path = "docs/config.md";
    let current = std::fs::read_to_string(path).unwrap();
    let (head, rest) = current
        .split_once(BEGIN)
        .expect("docs/config.md has the BEGIN marker");
    let (_, tail) = rest
        .split_once(END)
        .expect("docs/config.md has the END marker");
    let fresh = format!("{head}{BEGIN}\n{}\n{END}{tail}", config_reference());
    if std::env::var("SIDEWATCH_BLESS").is_ok() {
        std::fs::write(path, &fresh).unwrap();
    }
    assert!(
        current == fresh,
        "docs/config.md is stale: run SIDEWATCH_BLESS=1 cargo test --test docs"
    );
}

fn exported_families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

fn documented_families() -> BTreeSet<String> {
    let doc = std::fs::read_to_string("docs/metrics.md").unwrap();
    // Fenced blocks hold example queries, not the reference; names with a
    // colon are Prometheus recording rules.
    let prose: String = doc.split("```").step_by(2).collect::<Vec<_>>().join("\n");
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("sidewatch_") && !s.contains([' ', '{', ':']))
        .map(|s| s.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_doc_names_exactly_the_exported_families() {
    let t = AllTargets::start().await;
    let yaml = format!(
        "{}  - {{name: pg, interval: 300ms, timeout: 250ms, postgres: {{dsn: '{}', query: 'SELECT 1 AS one', values: {{columns: [one]}}}}}}\n  - {{name: k, interval: 1s, timeout: 900ms, kafka: {{brokers: '{}'}}}}\n",
        base_config(t.tls, &t.ca),
        t.dsn(),
        t.broker.brokers()
    );
    let sidecar = Sidecar::start(plan(&yaml), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = sidecar.addr;
    let load_text = load_exposition().await;
    let mut text = String::new();
    for _ in 0..100 {
        text = tokio::task::spawn_blocking(move || http_get(addr, "/metrics", None).unwrap().1)
            .await
            .unwrap();
        let ready = [
            "sidewatch_probe_tls_cert_expiry_timestamp_seconds{",
            "sidewatch_query_value{",
            "sidewatch_kafka_consumer_lag{",
        ]
        .iter()
        .all(|s| text.contains(s));
        if ready
            && sample(
                &text,
                "sidewatch_otlp_export_failures_total",
                &[("reason", "unreachable")],
            ) >= Some(1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut exported = exported_families(&text);
    exported.extend(exported_families(&load_text));
    let mut one_shot = prometheus_client::registry::Registry::with_prefix(PREFIX);
    sidewatch::push::PushMetrics::register(one_shot.sub_registry_with_prefix("push")).init();
    exported.extend(exported_families(&sidewatch::telemetry::encode_prometheus(
        &one_shot,
    )));
    let checks = check_exposition().await;
    let (ok, msg) = promtool_check(&checks);
    assert!(ok, "promtool check metrics on the check families: {msg}");
    exported.extend(exported_families(&checks));
    let documented = documented_families();
    let undocumented: Vec<_> = exported.difference(&documented).collect();
    let not_exported: Vec<_> = documented.difference(&exported).collect();
    assert!(
        undocumented.is_empty(),
        "exported but not in docs/metrics.md: {undocumented:?}"
    );
    assert!(
        not_exported.is_empty(),
        "in docs/metrics.md but not exported: {not_exported:?}"
    );
    sidecar.shutdown().await;
}

/// The check families, after short spike, breakpoint and leak runs.
async fn check_exposition() -> String {
    use sidewatch::check::baseline::regression::{compare, Tolerances};
    use sidewatch::check::metrics::{CheckFamilies, CheckMetrics, LeakFamilies};
    let url = format!("{}/data.json", nginx());
    let yaml = format!(
        "service: {{processes: [{{label: web, comm: nginx}}]}}
checks:
  - name: s
    load: {{rate: 50/s, mix: [{{http: {{url: '{url}'}}}}]}}
    spike: {{factor: 2, before: 2s, hold: 1s, after: 2s, window: 1s}}
  - name: b
    load: {{rate: 50/s, mix: [{{http: {{url: '{url}'}}}}]}}
    breakpoint: {{steps: [50/s, 100/s], step: 1s}}
  - name: l
    leak: {{duration: 7s, warmup: 0s, window: 1s, sample_interval: 200ms}}
"
    );
    let p = plan(&yaml);
    let mut registry = prometheus_client::registry::Registry::with_prefix(PREFIX);
    let metrics = CheckMetrics::new(
        CheckFamilies::register(registry.sub_registry_with_prefix("check")),
        LeakFamilies::register(registry.sub_registry_with_prefix("leak")),
    );
    for check in &p.checks {
        let mut quiet = sidewatch::load::Quiet;
        let mut r =
            sidewatch::check::execute::execute(check, None, &mut quiet, Default::default()).await;
        r.comparisons = compare(&r, &r, &Tolerances::default());
        metrics.finished(&r);
        metrics.running(&check.name, false);
        metrics.skipped(&check.name);
        metrics.store_failed(&check.name);
        metrics.next_run(&check.name, Some(0.0));
    }
    sidewatch::telemetry::encode_prometheus(&registry)
}

/// The load families, after a short run that has errors and drops.
async fn load_exposition() -> String {
    let yaml = format!(
        "checks:\n  - name: l\n    load: {{rate: 200/s, duration: 1s, max_connections: 1, timeout: 20ms, mix: [{{http: {{url: '{}/teapot'}}}}]}}\n",
        nginx()
    );
    let p = plan(&yaml);
    let mut registry = prometheus_client::registry::Registry::with_prefix(PREFIX);
    let metrics =
        sidewatch::load::metrics::LoadMetrics::register(registry.sub_registry_with_prefix("load"));
    let mut quiet = sidewatch::load::Quiet;
    let lp = p.checks[0].load.as_ref().unwrap();
    sidewatch::load::run(
        &lp.workload,
        lp.profile.as_ref().unwrap(),
        Some(&metrics),
        &mut quiet,
        Default::default(),
    )
    .await;
    sidewatch::telemetry::encode_prometheus(&registry)
}

/// Resources, OTLP (to a closed port, so failures are counted) and HTTP,
/// HTTPS and TCP probes.
fn base_config(tls: std::net::SocketAddr, ca: &std::path::Path) -> String {
    format!(
        "resources: {{interval: 100ms}}\notlp: {{endpoint: 'http://127.0.0.1:{}', interval: 100ms, timeout: 200ms}}\nprobes:\n  - {{name: h, interval: 200ms, timeout: 150ms, http: {{url: '{}/health'}}}}\n  - {{name: s, interval: 200ms, timeout: 150ms, http: {{url: 'https://localhost:{}/', tls: {{ca_file: '{}'}}}}}}\n  - {{name: t, interval: 200ms, timeout: 150ms, tcp: {{address: '127.0.0.1:{}'}}}}\n",
        closed_port(),
        nginx(),
        tls.port(),
        ca.display(),
        closed_port()
    )
}
