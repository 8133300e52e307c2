//! Every example config (one per seed team) validates, and every check in
//! it runs, shortened with `--time-scale` to about 10 s, against nginx
//! (which answers 200 on any /api/ path), watching nginx as the service.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sidewatch::check::result::CheckResult;
use sidewatch::config::Document;
use sidewatch::plan::Plan;

/// Seconds each shortened check should take.
const TARGET_SECONDS: f64 = 10.0;

fn env(data: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("TARGET", nginx()),
        ("SERVICE_COMM", "nginx".into()),
        ("SERVICE_CMDLINE", "nginx".into()),
        ("KAFKA_BROKERS", "127.0.0.1:9092".into()),
        ("SIDEWATCH_DATA", data.display().to_string()),
    ]
}

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("config/examples")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn each_seed_teams_plan_runs_shortened() {
    let data = tempfile::tempdir().unwrap();
    let vars = env(data.path());
    let files = examples();
    assert_eq!(files.len(), 5, "one example per seed team");
    for file in files {
        let lookup = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        let text = std::fs::read_to_string(&file).unwrap();
        let doc = Document::parse(&file.display().to_string(), &text, &lookup)
            .unwrap_or_else(|e| panic!("{e}"));
        let plan = Plan::from_document(doc).unwrap_or_else(|e| panic!("{e}"));
        assert!(!plan.checks.is_empty(), "{}", file.display());
        for check in &plan.checks {
            let scale = (TARGET_SECONDS / check.duration().as_secs_f64()).min(1.0);
            let json = data.path().join(format!("{}.json", check.name));
            let out = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
                .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
                .args(["check", "--config"])
                .arg(&file)
                .arg(&check.name)
                .args(["--time-scale", &format!("{scale:.6}"), "--json"])
                .arg(&json)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let what = format!("{} {}:\n{stdout}\n{stderr}", file.display(), check.name);
            assert!(matches!(out.status.code(), Some(0 | 1)), "{what}");
            let r: CheckResult = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
            assert_eq!(r.kind, check.kind(), "{what}");
            assert!(r.aborted_by.is_none(), "{what}");
            let main = r.main_phase().expect("load was driven");
            assert!(main.requests > 0, "{what}");
            if r.kind != "breakpoint" {
                assert!(
                    main.error_rate < 0.01,
                    "nginx answers every /api/ path: {what}"
                );
            }
            eprintln!(
                "{} {}: {} in {:.1}s",
                file.display(),
                check.name,
                r.verdict,
                r.duration_seconds
            );
        }
    }
}
