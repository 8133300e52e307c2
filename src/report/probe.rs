//! One-off probe results as a table or JSON, for `sidewatch probe`.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::net::{Phase, Reason};
use crate::probes::{Kind, Outcome, Probe};
use crate::redact::Redactor;
use crate::units::human_duration;

/// One result, as printed with `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct ProbeResult {
    pub(crate) probe: String,
    pub(crate) kind: Kind,
    pub(crate) target: String,
    pub(crate) success: bool,
    pub(crate) reason: Option<Reason>,
    /// Error text, secrets masked.
    pub(crate) detail: Option<String>,
    pub(crate) total_seconds: f64,
    pub(crate) phases_seconds: std::collections::BTreeMap<&'static str, f64>,
    pub(crate) http_status: Option<u16>,
    pub(crate) tls_not_after_seconds: Option<u64>,
}

impl ProbeResult {
    pub(crate) fn new(p: &Probe, o: &Outcome, redactor: &Redactor) -> ProbeResult {
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
            phases_seconds: Phase::ALL
                .iter()
                .filter_map(|&ph| o.recorder.phase(ph).map(|d| (ph.as_str(), d.as_secs_f64())))
                .collect(),
            http_status: o.recorder.http_status,
            tls_not_after_seconds: o
                .recorder
                .timings
                .tls_not_after
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
        }
    }
}

/// One column per phase that any probe in the table has.
pub(crate) fn table(results: &[ProbeResult]) -> String {
    let ms = |s: Option<&f64>| {
        s.map_or("-".to_string(), |s| {
            human_duration(Duration::from_secs_f64(*s))
        })
    };
    let phases: Vec<Phase> = Phase::ALL
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
