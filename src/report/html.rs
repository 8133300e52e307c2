//! A self-contained HTML report: inline SVG charts and the result's tables,
//! no scripts and no network.

use std::fmt::Write as _;

use super::check::{headline, sections};
use crate::check::result::{CheckResult, Details, Level, Window};
use crate::units::secs;

/// One line on a chart.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

const W: f64 = 880.0;
const H: f64 = 240.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 30.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart; `fmt` labels the y axis, `xfmt` the x axis.
fn chart(
    title: &str,
    series: &[Series],
    fmt: &dyn Fn(f64) -> String,
    xfmt: &dyn Fn(f64) -> String,
) -> String {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p.0), b.max(p.0))
    });
    let ymax = all()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        * 1.1;
    let mut s = format!("<figure><figcaption>{}</figcaption>", escape(title));
    if !x0.is_finite() || x1 <= x0 {
        s += "<p class=empty>no data</p></figure>";
        return s;
    }
    let ymax = if ymax > 0.0 { ymax } else { 1.0 };
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - 10.0);
    let py = |y: f64| (H - BOTTOM) - y / ymax * (H - BOTTOM - 10.0);
    let _ = write!(
        s,
        "<svg viewBox='0 0 {W} {H}' width='{W}' height='{H}' role=img>"
    );
    for i in 0..=4 {
        let v = ymax * f64::from(i) / 4.0;
        let y = py(v);
        let _ = write!(
            s,
            "<line x1='{LEFT}' x2='{}' y1='{y:.1}' y2='{y:.1}' class=grid /><text x='{}' y='{:.1}' class=yl>{}</text>",
            W - 10.0,
            LEFT - 6.0,
            y + 4.0,
            escape(&fmt(v))
        );
        let xv = x0 + (x1 - x0) * f64::from(i) / 4.0;
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            s,
            "<text x='{:.1}' y='{}' class=xl text-anchor={anchor}>{}</text>",
            px(xv),
            H - 8.0,
            escape(&xfmt(xv))
        );
    }
    for (i, ser) in series.iter().enumerate() {
        let pts: Vec<String> = ser
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1)))
            .collect();
        let dash = if ser.dashed {
            " stroke-dasharray='6 4'"
        } else {
            ""
        };
        let _ = write!(
            s,
            "<polyline points='{}' fill='none' stroke='{}' stroke-width='2'{dash} />\
             <rect x='{}' y='6' width='12' height='4' fill='{}' /><text x='{}' y='12' class=lg>{}</text>",
            pts.join(" "),
            ser.color,
            LEFT + 10.0 + 150.0 * i as f64,
            ser.color,
            LEFT + 26.0 + 150.0 * i as f64,
            escape(ser.name)
        );
    }
    s += "</svg></figure>";
    s
}

/// Whole seconds, minutes or hours for the time axis.
fn minutes(t: f64) -> String {
    match t {
        t if t < 120.0 => format!("{t:.0}s"),
        t if t < 7200.0 => format!("{:.1}m", t / 60.0),
        t => format!("{:.1}h", t / 3600.0),
    }
}

impl<'a> Series<'a> {
    fn line(name: &'a str, color: &'a str, points: Vec<(f64, f64)>) -> Series<'a> {
        Series {
            name,
            color,
            points,
            dashed: false,
        }
    }

    fn dashed(self) -> Series<'a> {
        Series {
            dashed: true,
            ..self
        }
    }
}

/// p50, p95 and p99 lines in the same colours on every chart.
fn percentiles<'a>(
    p50: Vec<(f64, f64)>,
    p95: Vec<(f64, f64)>,
    p99: Vec<(f64, f64)>,
) -> [Series<'a>; 3] {
    [
        Series::line("p50", "#4e79a7", p50),
        Series::line("p95", "#f28e2b", p95),
        Series::line("p99", "#e15759", p99),
    ]
}

fn charts(r: &CheckResult) -> String {
    let w = &r.windows;
    let at = |f: fn(&Window) -> f64| -> Vec<(f64, f64)> {
        w.iter()
            .map(|x| (x.start + x.seconds / 2.0, f(x)))
            .collect()
    };
    let mut out = String::new();
    if !w.is_empty() {
        out += &chart(
            "latency percentiles per window (corrected for coordinated omission)",
            &percentiles(at(|x| x.p50), at(|x| x.p95), at(|x| x.p99)),
            &secs,
            &minutes,
        );
        out += &chart(
            "request rate per window",
            &[
                Series::line("achieved/s", "#59a14f", at(|x| x.rate)),
                Series::line("target/s", "#9c9c9c", at(|x| x.target_rate)).dashed(),
            ],
            &|v| format!("{v:.0}/s"),
            &minutes,
        );
        let dropped =
            |x: &Window| 100.0 * x.dropped as f64 / (x.requests + x.dropped).max(1) as f64;
        out += &chart(
            "errors and dropped per window",
            &[
                Series::line("error rate", "#e15759", at(|x| x.error_rate * 100.0)),
                Series::line("dropped", "#b07aa1", at(dropped)),
            ],
            &|v| format!("{v:.2}%"),
            &minutes,
        );
    }
    out += &memory_chart(r);
    if let Details::Curve(c) = &r.details {
        let p = |f: fn(&Level) -> f64| -> Vec<(f64, f64)> {
            c.levels.iter().map(|l| (l.rate, f(l))).collect()
        };
        out += &chart(
            "load curve: latency against achieved rate",
            &percentiles(p(|l| l.p50), p(|l| l.p95), p(|l| l.p99)),
            &secs,
            &|v| format!("{v:.0}/s"),
        );
    }
    out
}

/// RSS over time, and where a trend was fitted, the window minima and the
/// Theil–Sen line through them.
fn memory_chart(r: &CheckResult) -> String {
    let pts: Vec<(f64, f64)> = r
        .memory
        .iter()
        .filter(|p| p.processes > 0)
        .map(|p| (p.t, p.rss / 1e6))
        .collect();
    if pts.is_empty() {
        return String::new();
    }
    let mut series = vec![Series::line("RSS", "#4e79a7", pts)];
    if let Some(l) = r.details.leak().filter(|l| !l.minima.is_empty()) {
        let minima = l.minima.iter().map(|m| (m.0, m.1 / 1e6)).collect();
        series.push(Series::line("window minima", "#59a14f", minima));
        // The fit is on shift-adjusted minima; anchor it at the first raw one.
        let (t0, raw0, adj0) = l.minima[0];
        let line = |t: f64| (l.intercept + l.slope_bytes_per_second * t - adj0 + raw0) / 1e6;
        let t1 = l.minima[l.minima.len() - 1].0;
        let fit = vec![(t0, line(t0)), (t1, line(t1))];
        series.push(Series::line("Theil-Sen fit", "#e15759", fit).dashed());
    }
    let title = format!(
        "resident memory of `{}` (MB)",
        r.memory_process.as_deref().unwrap_or("service")
    );
    chart(&title, &series, &|v| format!("{v:.0} MB"), &minutes)
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:960px}\
h1{font-size:20px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;margin:6px 0}\
td,th{border-bottom:1px solid #ddd;padding:3px 10px;text-align:left}th{background:#f4f4f4}\
.pass{color:#2e7d32}.fail,.aborted{color:#c62828}figure{margin:18px 0}figcaption{font-weight:600}\
svg{background:#fcfcfc;border:1px solid #eee}.grid{stroke:#e6e6e6}.yl{font-size:11px;text-anchor:end}\
.xl{font-size:11px}.lg{font-size:12px}.note{color:#555;font-style:italic}.empty{color:#888}";

pub(crate) fn render(r: &CheckResult) -> String {
    let mut out = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{}</title><style>{STYLE}</style></head><body>",
        escape(&format!("sidewatch {} {}", r.check, r.id))
    );
    let _ = write!(
        out,
        "<h1 class={}>{}</h1><p>Run <code>{}</code>{}</p>",
        escape(r.verdict.as_str()),
        escape(&headline(r)),
        escape(&r.id),
        r.baseline.as_ref().map_or(String::new(), |b| format!(
            ", compared with baseline <code>{}</code>",
            escape(b)
        ))
    );
    out += &charts(r);
    for s in sections(r) {
        let _ = write!(out, "<h2>{}</h2><table><tr>", escape(&s.title));
        for h in &s.header {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out += "</tr>";
        for row in &s.rows {
            out += "<tr>";
            for c in row {
                let class = match c.as_str() {
                    "✓" => " class=pass",
                    "✗" => " class=fail",
                    _ => "",
                };
                let _ = write!(out, "<td{class}>{}</td>", escape(c));
            }
            out += "</tr>";
        }
        out += "</table>";
        for n in &s.notes {
            let _ = write!(out, "<p class=note>{}</p>", escape(n));
        }
    }
    out += "</body></html>\n";
    out
}
