//! A check result as sections of tables, rendered for the terminal
//! ([`text`]) and as Markdown ([`markdown`]); [`super::html`] adds charts.

use std::fmt::Write as _;

use crate::check::result::{CheckResult, Details, LeakReport};
use crate::units::{pct, secs, show_bytes, show_slope};

/// A titled table with optional lines of prose under it.
pub(crate) struct Section {
    pub(crate) title: String,
    pub(crate) header: Vec<&'static str>,
    pub(crate) rows: Vec<Vec<String>>,
    pub(crate) notes: Vec<String>,
}

impl Section {
    fn new(title: impl Into<String>, header: Vec<&'static str>) -> Section {
        Section {
            title: title.into(),
            header,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A section of one row, each cell given with its column's name.
    fn one_row(title: impl Into<String>, cells: Vec<(&'static str, String)>) -> Section {
        let (header, row) = cells.into_iter().unzip();
        let mut s = Section::new(title, header);
        s.rows.push(row);
        s
    }
}

fn mark(ok: bool) -> String {
    if ok { "✓" } else { "✗" }.into()
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("-".into(), f)
}

/// The one-line headline: `check nightly-soak (soak) PASS in 1h 0m`.
pub(crate) fn headline(r: &CheckResult) -> String {
    let mut s = format!(
        "check {} ({}) {} in {}",
        r.check,
        r.kind,
        r.verdict.as_str().to_uppercase(),
        secs(r.duration_seconds)
    );
    if let Some(by) = &r.aborted_by {
        let _ = write!(s, ", aborted: {by}");
    }
    s
}

pub(crate) fn sections(r: &CheckResult) -> Vec<Section> {
    let mut out = vec![phases(r)];
    out.extend(verdicts(r));
    out.extend(details(&r.details));
    out.extend(comparison(r));
    out
}

fn phases(r: &CheckResult) -> Section {
    let mut s = Section::new(
        "load",
        vec![
            "phase", "requests", "rate/s", "target/s", "errors", "dropped", "p50", "p95", "p99",
            "max",
        ],
    );
    for p in &r.phases {
        let l = &p.latency_seconds;
        s.rows.push(vec![
            p.name.clone(),
            p.requests.to_string(),
            format!("{:.1}", p.achieved_rate),
            opt(p.target_rate, |t| format!("{t:.1}")),
            pct(p.error_rate),
            p.dropped.to_string(),
            secs(l.p50),
            secs(l.p95),
            secs(l.p99),
            secs(l.max),
        ]);
        if let Some(by) = &p.aborted_by {
            s.notes.push(format!("{}: stopped by {by}", p.name));
        }
    }
    if r.phases.is_empty() {
        s.notes.push("no load was driven (observation only)".into());
    }
    s
}

fn verdicts(r: &CheckResult) -> Option<Section> {
    let mut s = Section::new(
        "thresholds and findings",
        vec!["", "condition", "observed", "limit"],
    );
    for t in &r.thresholds {
        s.rows.push(vec![
            mark(t.passed),
            t.expr.clone(),
            t.observed_text.clone(),
            String::new(),
        ]);
    }
    for f in &r.findings {
        s.rows.push(vec![
            mark(f.passed),
            f.name.clone(),
            f.observed.clone(),
            f.limit.clone(),
        ]);
    }
    (!s.rows.is_empty()).then_some(s)
}

fn details(d: &Details) -> Vec<Section> {
    match d {
        Details::Load => Vec::new(),
        Details::Soak(s) => {
            let sec = Section::one_row(
                "soak",
                vec![
                    ("windows", s.windows.to_string()),
                    ("compared", s.compared.to_string()),
                    ("first p95", secs(s.first_p95)),
                    ("last p95", secs(s.last_p95)),
                    ("drift", format!("{:+.1}%", s.drift_ratio * 100.0)),
                    ("p", format!("{:.3}", s.drift_p_value)),
                    ("worst window errors", pct(s.worst_window_error_rate)),
                ],
            );
            let mut out = vec![sec];
            out.extend(s.memory.as_ref().map(leak));
            out
        }
        Details::Spike(s) => {
            let mut sec = Section::new("spike", vec!["", "rate/s", "p95", "errors"]);
            sec.rows.push(vec![
                "before".into(),
                format!("{:.1}", s.base_rate),
                secs(s.pre_p95),
                pct(s.pre_error_rate),
            ]);
            sec.rows.push(vec![
                "spike".into(),
                format!("{:.1}", s.spike_achieved_rate),
                secs(s.spike_p95),
                pct(s.spike_error_rate),
            ]);
            sec.notes.push(match s.recovery_seconds {
                Some(t) => format!(
                    "recovered {} after the spike (to within {} s)",
                    secs(t),
                    s.resolution_seconds
                ),
                None => "did not recover before the end of the run".into(),
            });
            vec![sec]
        }
        Details::Breakpoint(b) => {
            let mut sec = Section::new(
                "breakpoint",
                vec!["target/s", "rate/s", "p95", "errors", "dropped", "broke"],
            );
            for st in &b.steps {
                let rest = [
                    secs(st.p95),
                    pct(st.error_rate),
                    pct(st.dropped_ratio),
                    st.broke.clone().unwrap_or_default(),
                ];
                sec.rows.push(rate_row(st.target_rate, st.rate, rest));
            }
            sec.notes.push(format!(
                "max sustainable rate {}; breaking rate {}{}",
                opt(b.max_sustainable_rate, |r| format!("{r:.0}/s")),
                opt(b.breaking_rate, |r| format!("{r:.0}/s")),
                b.recovery_seconds
                    .map_or(String::new(), |t| format!("; recovered in {}", secs(t))),
            ));
            vec![sec]
        }
        Details::Curve(c) => {
            let mut sec = Section::new(
                "curve",
                vec![
                    "target/s", "rate/s", "p50", "p95", "p99", "errors", "cpu", "rss",
                ],
            );
            for l in &c.levels {
                let rest = [
                    secs(l.p50),
                    secs(l.p95),
                    secs(l.p99),
                    pct(l.error_rate),
                    opt(l.cpu_cores, |c| format!("{c:.2} cores")),
                    opt(l.rss_bytes, show_bytes),
                ];
                sec.rows.push(rate_row(l.target_rate, l.rate, rest));
            }
            vec![sec]
        }
        Details::Leak(l) => vec![leak(l)],
    }
}

/// A breakpoint step's or a curve level's row: the target and achieved
/// rates, then the rest.
fn rate_row(target: f64, rate: f64, rest: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut row = vec![format!("{target:.0}"), format!("{rate:.1}")];
    row.extend(rest);
    row
}

fn leak(l: &LeakReport) -> Section {
    let ci = format!(
        "{} .. {}",
        show_slope(l.slope_low),
        show_slope(l.slope_high)
    );
    let mut s = Section::one_row(
        format!("memory ({})", l.process),
        vec![
            ("windows", l.windows.to_string()),
            ("slope", show_slope(l.slope_bytes_per_second)),
            ("95% CI", ci),
            ("p", format!("{:.4}", l.p_value)),
            ("later half", show_slope(l.recent_slope_bytes_per_second)),
            ("shifts", l.level_shifts.to_string()),
            ("restarts", l.restarts.to_string()),
            ("growth", show_bytes(l.growth_bytes)),
            ("peak", show_bytes(l.max_rss_bytes)),
        ],
    );
    s.notes.push(l.reason.clone());
    s
}

fn comparison(r: &CheckResult) -> Option<Section> {
    let id = r.baseline.as_ref()?;
    let mut s = Section::new(
        format!("against baseline {id}"),
        vec![
            "",
            "metric",
            "baseline",
            "current",
            "worse by",
            "tolerance",
            "p",
        ],
    );
    for c in &r.comparisons {
        let show = |v: f64| match c.metric.as_str() {
            "latency_p95" => secs(v),
            "memory_peak" => show_bytes(v),
            "error_rate" => pct(v),
            _ => format!("{v:.1}/s"),
        };
        let worse = if c.metric == "error_rate" {
            format!("{:+.2} pt", c.worse_by * 100.0)
        } else {
            format!("{:+.1}%", c.worse_by * 100.0)
        };
        s.rows.push(vec![
            mark(!c.regressed),
            c.metric.clone(),
            show(c.baseline),
            show(c.current),
            worse,
            format!("{:.0}%", c.tolerance * 100.0),
            format!("{:.3}", c.p_value),
        ]);
    }
    s.notes.push("a metric regresses only when it is worse by more than its tolerance and the per-window test is significant".into());
    Some(s)
}

/// For the terminal.
pub(crate) fn text(r: &CheckResult) -> String {
    let mut out = format!("\n{}\nrun {}\n", headline(r), r.id);
    for s in sections(r) {
        let _ = write!(out, "\n{}\n", s.title);
        out += &super::table::render(&s.header, &s.rows);
        for n in &s.notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    out
}

/// For a PR or an incident.
pub(crate) fn markdown(r: &CheckResult) -> String {
    let mut out = format!("### {}\n\nRun `{}`.\n", headline(r), r.id);
    for s in sections(r) {
        let _ = write!(out, "\n**{}**\n\n", s.title);
        let header: Vec<String> = s.header.iter().map(|h| h.to_string()).collect();
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for row in &s.rows {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        for n in &s.notes {
            let _ = write!(out, "\n_{n}_\n");
        }
    }
    out
}
