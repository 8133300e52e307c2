//! `sidewatch probe`: run probes once and print a table or JSON.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::cli::exit;
use crate::config::human_duration;
use crate::plan::Plan;
use crate::probes::{Kind, Outcome, Phase, Probe, Reason};
use crate::redact::Redactor;

const PHASES: [Phase; 8] = [
    Phase::Dns,
    Phase::Connect,
    Phase::Tls,
    Phase::FirstByte,
    Phase::Transfer,
    Phase::Query,
    Phase::Produce,
    Phase::EndToEnd,
];

/// One result, as printed with `--json`.
#[derive(Debug, Serialize)]
pub struct ProbeResult {
    pub probe: String,
    pub kind: Kind,
    pub target: String,
    pub success: bool,
    pub reason: Option<Reason>,
    /// Error text, secrets masked.
    pub detail: Option<String>,
    pub total_seconds: f64,
    pub phases_seconds: std::collections::BTreeMap<&'static str, f64>,
    pub http_status: Option<u16>,
    pub tls_not_after_seconds: Option<u64>,
}

impl ProbeResult {
    fn new(p: &Probe, o: &Outcome, redactor: &Redactor) -> ProbeResult {
        ProbeResult {
            probe: p.name.clone(),
            kind: p.kind,
            target: p.target.clone(),
            success: o.success(),
            reason: o.reason(),
            detail: o
                .result
                .as_ref()
                .err()
                .map(|f| redactor.redact(&f.detail).into_owned()),
            total_seconds: o.total.as_secs_f64(),
            phases_seconds: PHASES
                .iter()
                .filter_map(|&ph| o.recorder.phase(ph).map(|d| (ph.as_str(), d.as_secs_f64())))
                .collect(),
            http_status: o.recorder.http_status,
            tls_not_after_seconds: o
                .recorder
                .tls_not_after
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
        }
    }
}

/// Runs the plan's probes (or the one named) concurrently, once each.
pub async fn run_once(plan: Plan, name: Option<&str>, json: bool) -> u8 {
    let probes: Vec<_> = plan
        .probes
        .iter()
        .filter(|p| name.is_none_or(|n| p.name == n))
        .cloned()
        .collect();
    if probes.is_empty() {
        match name {
            Some(n) => eprintln!("no probe named `{n}` in the config"),
            None => eprintln!("the config has no probes"),
        }
        return exit::CONFIG;
    }
    let handles: Vec<_> = probes
        .iter()
        .map(|p| {
            let p = p.clone();
            tokio::spawn(async move { p.run().await })
        })
        .collect();
    let mut results = Vec::new();
    for (p, h) in probes.iter().zip(handles) {
        let outcome = h.await.expect("probe task does not panic");
        results.push(ProbeResult::new(p, &outcome, &plan.redactor));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).expect("serializable")
        );
    } else {
        print!("{}", table(&results));
    }
    if results.iter().all(|r| r.success) {
        exit::OK
    } else {
        exit::FAILED
    }
}

/// One column per phase that any probe in the table has.
fn table(results: &[ProbeResult]) -> String {
    let ms = |s: Option<&f64>| {
        s.map_or("-".to_string(), |s| {
            human_duration(Duration::from_secs_f64(*s))
        })
    };
    let phases: Vec<Phase> = PHASES
        .into_iter()
        .filter(|ph| results.iter().any(|r| r.kind.phases().contains(ph)))
        .collect();
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let mut row = vec![
                r.probe.clone(),
                r.kind.to_string(),
                if r.success { "ok" } else { "FAIL" }.to_string(),
                r.reason.map(|x| x.to_string()).unwrap_or_default(),
                r.http_status.map(|s| s.to_string()).unwrap_or_default(),
                ms(Some(&r.total_seconds)),
            ];
            row.extend(
                phases
                    .iter()
                    .map(|ph| ms(r.phases_seconds.get(ph.as_str()))),
            );
            row
        })
        .collect();
    let names: Vec<String> = phases
        .iter()
        .map(|p| p.as_str().to_ascii_uppercase())
        .collect();
    let mut header = vec!["PROBE", "KIND", "RESULT", "REASON", "STATUS", "TOTAL"];
    header.extend(names.iter().map(String::as_str));
    let mut out = crate::report::table::render(&header, &rows);
    for r in results {
        if let Some(detail) = &r.detail {
            out.push_str(&format!("{}: {} ({})\n", r.probe, detail, r.target));
        }
    }
    out
}
