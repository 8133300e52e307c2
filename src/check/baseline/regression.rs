//! Regression against a baseline. Each metric has a practical tolerance
//! (latency +10%, throughput −5%, memory +20%, error rate +1 point by
//! default) and a one-sided Mann–Whitney test over per-window values. A
//! difference is a regression only when both agree: a noisy run whose
//! whole-run p95 happens to be 11% worse does not fail a release unless its
//! windows are, as a set, significantly slower.

use crate::check::result::{CheckResult, Comparison, Window};
use crate::config::{BaselineConfig, BuildCx};
use crate::stats::mann_whitney_greater;
use crate::units::percent;

#[derive(Clone, Debug, PartialEq)]
pub struct Tolerances {
    pub(crate) latency: f64,
    /// Seconds: a p95 rise smaller than this is never a regression.
    pub(crate) latency_min: f64,
    pub(crate) throughput: f64,
    pub(crate) memory: f64,
    pub(crate) error_rate: f64,
    pub(crate) alpha: f64,
    pub(crate) auto_accept: bool,
}

impl Tolerances {
    /// Compiles a check's `baseline`; `cx` is at that key.
    pub(crate) fn build(c: &BaselineConfig, cx: &mut BuildCx) -> Option<Tolerances> {
        let mut p = |s: &str, key: &str| percent(s).map_err(|e| cx.problem_at(key, e)).ok();
        let t = Tolerances {
            latency: p(&c.latency, "latency")?,
            latency_min: c.latency_min.0.as_secs_f64(),
            throughput: p(&c.throughput, "throughput")?,
            memory: p(&c.memory, "memory")?,
            error_rate: p(&c.error_rate, "error_rate")?,
            alpha: c.alpha,
            auto_accept: c.auto_accept,
        };
        if !(c.alpha > 0.0 && c.alpha < 0.5) {
            cx.problem_at("alpha", "must be between 0 and 0.5");
            return None;
        }
        Some(t)
    }
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            latency: 0.10,
            latency_min: 0.001,
            throughput: 0.05,
            memory: 0.20,
            error_rate: 0.01,
            alpha: 0.05,
            auto_accept: false,
        }
    }
}

/// The metrics [`compare`] reports, in order.
pub const METRICS: [&str; 4] = ["latency_p95", "throughput", "memory_peak", "error_rate"];

struct Side {
    whole: f64,
    windows: Vec<f64>,
}

fn latency(r: &CheckResult) -> Option<Side> {
    let whole = r.main_phase()?.latency_seconds.p95;
    Some(busy_windows(r, whole, |w| w.p95))
}

/// `whole`, and the figure `of` each window that had requests.
fn busy_windows(r: &CheckResult, whole: f64, of: fn(&Window) -> f64) -> Side {
    let windows = r
        .windows
        .iter()
        .filter(|w| w.requests > 0)
        .map(of)
        .collect();
    Side { whole, windows }
}

fn throughput(r: &CheckResult) -> Option<Side> {
    let whole = r.main_phase()?.achieved_rate;
    let windows = r.windows.iter().map(|w| w.rate).collect();
    Some(Side { whole, windows })
}

fn errors(r: &CheckResult) -> Option<Side> {
    let whole = r.main_phase()?.error_rate;
    Some(busy_windows(r, whole, |w| w.error_rate))
}

fn memory(r: &CheckResult) -> Option<Side> {
    let whole = r.peak_rss()?;
    // The first fifth is warm-up, not the service's steady footprint.
    let n = r.memory.len();
    let windows = r.memory[n / 5..]
        .iter()
        .filter(|p| p.processes > 0)
        .map(|p| p.rss)
        .collect();
    Some(Side { whole, windows })
}

/// Compares `current` with `base`; metrics without data on both sides are
/// left out.
pub fn compare(current: &CheckResult, base: &CheckResult, t: &Tolerances) -> Vec<Comparison> {
    type Get = fn(&CheckResult) -> Option<Side>;
    // (metric, extractor, higher is worse, tolerance, relative, least
    // absolute change that counts: sub-millisecond p95 moves are jitter)
    let table: [(&str, Get, bool, f64, bool, f64); 4] = [
        (METRICS[0], latency, true, t.latency, true, t.latency_min),
        (METRICS[1], throughput, false, t.throughput, true, 0.0),
        (METRICS[2], memory, true, t.memory, true, 0.0),
        (METRICS[3], errors, true, t.error_rate, false, 0.0),
    ];
    table
        .iter()
        .filter_map(|(name, get, higher_worse, tol, relative, min_delta)| {
            let (b, c) = (get(base)?, get(current)?);
            let delta = if *higher_worse {
                c.whole - b.whole
            } else {
                b.whole - c.whole
            };
            let worse_by = match (*relative, b.whole) {
                (false, _) => delta,
                (true, w) if w > 0.0 => delta / w,
                (true, _) => 0.0,
            };
            let p_value = if *higher_worse {
                mann_whitney_greater(&b.windows, &c.windows)
            } else {
                mann_whitney_greater(&c.windows, &b.windows)
            };
            Some(Comparison {
                metric: name.to_string(),
                baseline: b.whole,
                current: c.whole,
                worse_by,
                tolerance: *tol,
                p_value,
                regressed: delta > *min_delta && worse_by > *tol && p_value < t.alpha,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::result::{Details, PhaseSummary, ScenarioKind, Window, FORMAT};

    fn result(p95s: &[f64], rate: f64) -> CheckResult {
        let windows: Vec<Window> = p95s
            .iter()
            .map(|p| Window {
                p95: *p,
                rate,
                requests: 100,
                ..Window::default()
            })
            .collect();
        let mut phase = PhaseSummary {
            achieved_rate: rate,
            ..PhaseSummary::default()
        };
        let mut sorted = p95s.to_vec();
        sorted.sort_by(f64::total_cmp);
        phase.latency_seconds.p95 = sorted[sorted.len() * 95 / 100];
        CheckResult {
            format: FORMAT,
            id: "x".into(),
            check: "c".into(),
            kind: ScenarioKind::Load,
            started_unix: 0.0,
            duration_seconds: 0.0,
            verdict: crate::load::Verdict::Pass,
            aborted_by: None,
            phases: vec![phase],
            thresholds: Vec::new(),
            findings: Vec::new(),
            details: Details::Load,
            windows,
            memory: Vec::new(),
            memory_process: None,
            baseline: None,
            comparisons: Vec::new(),
        }
    }

    #[test]
    fn both_the_delta_and_the_test_must_agree() {
        let base = result(
            &[0.040, 0.042, 0.041, 0.043, 0.040, 0.044, 0.041, 0.042],
            100.0,
        );
        let tiny = result(
            &[
                0.0004, 0.0004, 0.0004, 0.0004, 0.0004, 0.0004, 0.0004, 0.0004,
            ],
            100.0,
        );
        let tiny_slow = result(&[0.0006; 8], 100.0);
        assert!(
            !compare(&tiny_slow, &tiny, &Tolerances::default())[0].regressed,
            "+0.2ms is jitter"
        );
        // Every window 30% slower: a regression.
        let slow = result(
            &[0.053, 0.055, 0.054, 0.056, 0.052, 0.057, 0.053, 0.055],
            100.0,
        );
        let c = compare(&slow, &base, &Tolerances::default());
        assert!(c[0].regressed, "{c:?}");
        assert!(!c[1].regressed, "throughput is unchanged");
        // One outlier window lifts the whole-run p95 by 30% but the windows
        // as a set are no slower: not a regression.
        let noisy = result(
            &[0.040, 0.041, 0.042, 0.040, 0.043, 0.041, 0.040, 0.057],
            100.0,
        );
        let c = compare(&noisy, &base, &Tolerances::default());
        assert!(c[0].worse_by > 0.1, "{c:?}");
        assert!(!c[0].regressed, "{c:?}");
        // Significantly but only 2% slower: within tolerance.
        let bit = result(
            &base
                .windows
                .iter()
                .map(|w| w.p95 * 1.02)
                .collect::<Vec<_>>(),
            100.0,
        );
        assert!(!compare(&bit, &base, &Tolerances::default())[0].regressed);
        // Throughput down 10% in every window.
        let fewer = result(
            &[0.040, 0.042, 0.041, 0.043, 0.040, 0.044, 0.041, 0.042],
            90.0,
        );
        let c = compare(&fewer, &base, &Tolerances::default());
        assert!(c[1].regressed, "{c:?}");
    }
}
