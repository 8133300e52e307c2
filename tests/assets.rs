//! The bundled assets without servers: rule files through promtool (syntax
//! and the unit tests in tests/alerts/), the alerts' shape and runbooks,
//! and the dashboards' structure. The Helm chart is tests/chart.rs.
//! tests/prometheus.rs runs the same assets against a real Prometheus.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::assets::{all_rules, dashboards, data_panels, rule_files};

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_accepts_the_rule_files() {
    let (ok, out) = run(Command::new("promtool")
        .args(["check", "rules"])
        .args(rule_files()));
    assert!(ok, "{out}");
}

#[test]
fn every_alert_passes_its_promtool_unit_tests() {
    let mut tests: Vec<_> = std::fs::read_dir("tests/alerts")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    tests.sort();
    let (ok, out) = run(Command::new("promtool")
        .args(["test", "rules"])
        .args(&tests));
    assert!(ok, "{out}");
    let text: String = tests
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let untested: BTreeSet<_> = all_rules()
        .into_iter()
        .filter(|r| r.alert && !text.contains(&format!("alertname: {}\n", r.name)))
        .map(|r| r.name)
        .collect();
    assert!(
        untested.is_empty(),
        "alerts without a unit test: {untested:?}"
    );
}

#[test]
fn alerts_have_severity_summary_and_a_runbook_that_exists() {
    let ops = std::fs::read_to_string("docs/operations.md").unwrap();
    let anchors: BTreeSet<String> = ops
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    for r in all_rules().into_iter().filter(|r| r.alert) {
        let name = format!("{}: {}", r.file, r.name);
        assert!(
            matches!(r.severity.as_deref(), Some("warning" | "critical")),
            "{name}: severity"
        );
        for a in ["summary", "description", "runbook"] {
            assert!(r.annotations.contains_key(a), "{name}: {a}");
        }
        let runbook = &r.annotations["runbook"];
        let anchor = runbook.split_once('#').map(|x| x.1).unwrap_or("");
        assert!(
            anchors.contains(anchor),
            "{name}: docs/operations.md has no heading for {runbook}"
        );
    }
}

#[test]
fn dashboards_are_generated_and_well_formed() {
    let (ok, out) = run(Command::new("python3").args(["scripts/dashboards.py", "--check"]));
    assert!(ok, "{out}");
    let boards = dashboards();
    assert_eq!(boards.len(), 3, "probes, resources, checks");
    let mut uids = BTreeSet::new();
    for (name, b) in &boards {
        assert!(
            uids.insert(b["uid"].as_str().unwrap().to_string()),
            "{name}: uid"
        );
        assert!(
            b["schemaVersion"].as_u64().unwrap() >= 39,
            "{name}: schemaVersion"
        );
        let vars: BTreeSet<&str> = b["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        for v in ["datasource", "namespace", "pod"] {
            assert!(vars.contains(v), "{name}: variable {v}");
        }
        for p in data_panels(b) {
            let at = format!("{name} / {}", p["title"].as_str().unwrap());
            check_panel(p, &vars, &at);
        }
    }
}

/// A data source, a unit, a description, queries whose variables exist,
/// and a place on the 24-column grid.
fn check_panel(p: &serde_json::Value, vars: &BTreeSet<&str>, at: &str) {
    let used = regex::Regex::new(r"\$\{?([a-z_]+)").unwrap();
    assert_eq!(p["datasource"]["uid"], "${datasource}", "{at}: datasource");
    assert!(
        p["fieldConfig"]["defaults"]["unit"].as_str().is_some(),
        "{at}: unit"
    );
    assert!(
        p["description"].as_str().is_some_and(|d| d.len() > 20),
        "{at}: description"
    );
    let targets = p["targets"].as_array().expect("targets");
    assert!(!targets.is_empty(), "{at}: a query");
    for t in targets {
        let expr = t["expr"].as_str().unwrap();
        assert!(!expr.is_empty(), "{at}: empty query");
        assert_eq!(t["datasource"]["uid"], "${datasource}", "{at}");
        for c in used.captures_iter(expr) {
            let v = &c[1];
            assert!(
                v.starts_with("__") || vars.contains(v),
                "{at}: ${v} is not a template variable"
            );
        }
    }
    let g = &p["gridPos"];
    assert!(
        g["w"].as_u64().unwrap() + g["x"].as_u64().unwrap() <= 24,
        "{at}"
    );
}

#[test]
fn dashboards_draw_the_seed_thresholds() {
    // Panels where a seed sets a limit carry it as a threshold step.
    let want = [
        ("Latency percentiles", 0.05),
        ("Latency percentiles", 0.1),
        ("Error ratio", 0.01),
        ("Error ratio", 0.05),
        ("Container memory use", 0.8),
        ("Container memory use", 0.9),
        ("Host CPU", 0.8),
        ("Filesystem use", 0.85),
        ("File descriptor use", 0.8),
        ("RSS growth (lower envelope, 1h)", 10e6 / 60.0),
        ("Since the last run", 93600.0),
        ("TLS certificate expiry", 14.0 * 86400.0),
    ];
    let boards = dashboards();
    for (title, value) in want {
        let found = boards.iter().flat_map(|(_, b)| data_panels(b)).any(|p| {
            p["title"].as_str().unwrap().starts_with(title)
                && p["fieldConfig"]["defaults"]["thresholds"]["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| {
                        s["value"]
                            .as_f64()
                            .is_some_and(|v| (v - value).abs() < 1e-6)
                    })
        });
        assert!(found, "{title}: threshold {value}");
    }
}
