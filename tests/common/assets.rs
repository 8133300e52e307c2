//! The bundled dashboards and rule files, read the way Grafana and
//! Prometheus read them: panel queries, rule expressions, and the metric
//! names they use.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// One query of a dashboard panel.
pub struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    pub expr: String,
}

/// One rule of a rule file.
pub struct Rule {
    pub file: String,
    pub name: String,
    pub expr: String,
    pub alert: bool,
    pub severity: Option<String>,
    pub annotations: std::collections::BTreeMap<String, String>,
}

fn sorted(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

pub fn dashboards() -> Vec<(String, serde_json::Value)> {
    sorted("dashboards", "json")
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

pub fn rule_files() -> Vec<PathBuf> {
    sorted("alerts", "yml")
}

/// Panels that draw data (rows only group them).
pub fn data_panels(board: &serde_json::Value) -> Vec<&serde_json::Value> {
    board["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

pub fn panel_queries() -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for (name, board) in dashboards() {
        for p in data_panels(&board) {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(PanelQuery {
                    dashboard: name.clone(),
                    panel: p["title"].as_str().unwrap_or("").to_string(),
                    expr: t["expr"].as_str().unwrap_or("").to_string(),
                });
            }
        }
    }
    out
}

/// The `query` of each template variable that has one.
pub fn variable_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, board) in dashboards() {
        for v in board["templating"]["list"].as_array().unwrap() {
            if let Some(q) = v["query"]["query"].as_str() {
                out.push((v["name"].as_str().unwrap().to_string(), q.to_string()));
            }
        }
    }
    out
}

pub fn rules(path: &Path) -> Vec<Rule> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut out = Vec::new();
    for group in doc["groups"].as_vec().unwrap() {
        for r in group["rules"].as_vec().unwrap() {
            let (name, alert) = match (&r["alert"], &r["record"]) {
                (Yaml::String(a), _) => (a.clone(), true),
                (_, Yaml::String(rec)) => (rec.clone(), false),
                _ => panic!("{file}: a rule without alert or record"),
            };
            let annotations = r["annotations"]
                .as_hash()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect();
            out.push(Rule {
                file: file.clone(),
                name,
                expr: r["expr"].as_str().unwrap().to_string(),
                alert,
                severity: r["labels"]["severity"].as_str().map(str::to_string),
                annotations,
            });
        }
    }
    out
}

pub fn all_rules() -> Vec<Rule> {
    rule_files().iter().flat_map(|p| rules(p)).collect()
}

/// Metric names in a PromQL expression: identifiers outside quotes that
/// start with `sidewatch` (label names never do), plus `up`.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let unquoted: String = expr.split('"').step_by(2).collect::<Vec<_>>().join(" ");
    let re = regex::Regex::new(r"\b(sidewatch[a-zA-Z0-9_:]*|up)\b").unwrap();
    re.find_iter(&unquoted)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// A panel query as Grafana sends it with every variable at "All" and a
/// 1 s scrape interval.
pub fn substitute(expr: &str) -> String {
    let mut e = expr.replace("$__rate_interval", "5s");
    for v in ["namespace", "pod", "probe", "process", "check"] {
        e = e.replace(&format!("${v}"), ".*");
    }
    e
}
