//! The end-of-run summary printed by `sidewatch load` (and later `check`).

use std::fmt::Write as _;
use std::time::Duration;

use crate::load::histogram::Summary;
use crate::load::LoadResult;
use crate::report::table;
use crate::units::human_duration;

fn ms(s: f64) -> String {
    human_duration(Duration::from_secs_f64(s.max(0.0)))
}

fn pct(n: u64, d: u64) -> String {
    if d == 0 {
        "0.000%".into()
    } else {
        format!("{:.3}%", n as f64 * 100.0 / d as f64)
    }
}

fn row(name: &str, s: &Summary) -> Vec<String> {
    let mut r = vec![name.to_string()];
    r.extend([s.p50, s.p90, s.p95, s.p99, s.p999, s.max, s.mean].map(ms));
    r
}

pub(crate) fn render(r: &LoadResult) -> String {
    let mut out = String::new();
    let verdict = r.verdict.as_str().to_uppercase();
    let _ = writeln!(out, "\nload  {}  {}  {verdict}", r.check, r.executor);
    if let Some(by) = &r.aborted_by {
        let _ = writeln!(out, "aborted by: {by}");
    }
    if let Some(e) = &r.error {
        let _ = writeln!(out, "error: {e}");
    }
    let target = r
        .target_rate
        .map(|t| format!(" (target {t:.1}/s)"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "requests      {} in {:.1}s, {:.1}/s{target}",
        r.requests, r.duration_seconds, r.achieved_rate
    );
    let reasons: Vec<String> = r
        .errors_by_reason
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let reasons = if reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", reasons.join(", "))
    };
    let _ = writeln!(
        out,
        "errors        {} ({}){reasons}",
        r.errors,
        pct(r.errors, r.requests)
    );
    let _ = writeln!(
        out,
        "dropped       {} ({})\n",
        r.dropped,
        pct(r.dropped, r.requests + r.dropped)
    );
    out += &table::render(
        &[
            "latency", "p50", "p90", "p95", "p99", "p99.9", "max", "mean",
        ],
        &[
            row("corrected", &r.latency_seconds),
            row("service", &r.service_time_seconds),
        ],
    );
    if r.entries.len() > 1 {
        let rows: Vec<Vec<String>> = r
            .entries
            .iter()
            .map(|e| {
                vec![
                    e.name.clone(),
                    e.requests.to_string(),
                    pct(e.errors, e.requests),
                    e.dropped.to_string(),
                    ms(e.latency_seconds.p95),
                    ms(e.latency_seconds.p99),
                ]
            })
            .collect();
        out.push('\n');
        out += &table::render(
            &["entry", "requests", "errors", "dropped", "p95", "p99"],
            &rows,
        );
    }
    if !r.thresholds.is_empty() {
        out.push_str("\nthresholds\n");
        for t in &r.thresholds {
            let mark = if t.passed { "✓" } else { "✗" };
            let _ = writeln!(out, "  {mark} {:<32} {}", t.expr, t.observed_text);
        }
    }
    out
}
