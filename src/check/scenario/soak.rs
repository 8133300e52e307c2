//! Soak: the base load held for a long time. Judged on drift (p95 in the
//! last windows against the first, by a practical tolerance and a
//! Mann–Whitney test together), on every window's error rate, and on the
//! service's memory trend.

use std::time::Duration;

use super::{secs, Build, Run};
use crate::check::leak::{analyse, LeakParams};
use crate::check::result::{Details, Finding, SoakReport, Window};
use crate::check::timeline::Collector;
use crate::config::{BuildCx, SoakConfig};
use crate::load::arrival::Profile;
use crate::stats::{mann_whitney_greater, median};
use crate::units::show_slope;

#[derive(Clone, Debug)]
pub(crate) struct Soak {
    start: f64,
    duration: Duration,
    window: u32,
    drift: f64,
    drift_min: f64,
    compare: Option<u32>,
    max_window_error_rate: f64,
    memory: LeakParams,
}

/// Significance for drift: the later windows must be slower with p < this.
const ALPHA: f64 = 0.05;

impl Soak {
    pub(crate) fn build(c: &SoakConfig, b: &Build, cx: &mut BuildCx) -> Option<Soak> {
        let Some(base) = b.base else {
            cx.problem("a soak needs a `load` with a `rate` and a `mix`");
            return None;
        };
        let duration = b.time(c.duration.0);
        let window = secs(b.time(c.window.0));
        if duration.as_secs_f64() < f64::from(window) * 6.0 {
            cx.problem_at(
                "duration",
                "a soak needs at least 6 windows (duration >= 6 x window)",
            );
        }
        let drift = b.percent(&c.drift, &mut cx.key("drift"));
        let err = b.percent(
            &c.max_window_error_rate,
            &mut cx.key("max_window_error_rate"),
        );
        let memory = LeakParams {
            warmup: (duration.as_secs_f64() / 5.0).min(300.0),
            window: (duration.as_secs_f64() / 20.0).min(30.0),
            min_slope: 1e7 / 60.0,
            min_step: 16.0 * 1024.0 * 1024.0,
            alpha: 0.05,
        };
        Some(Soak {
            start: base.start,
            duration,
            window,
            drift: drift?,
            drift_min: c.drift_min.0.as_secs_f64(),
            compare: c.compare,
            max_window_error_rate: err?,
            memory,
        })
    }

    pub(crate) fn duration(&self) -> Duration {
        self.duration
    }

    pub async fn run(&self, run: &mut Run<'_>) -> (Details, Vec<Finding>) {
        let c = Collector::new(run.now(), self.window, Vec::new());
        let profile = Profile::constant(self.start, self.duration);
        let c = run.drive("soak", profile, c, true).await;
        let mut report = self.judge(&c.windows);
        let mut findings = self.findings(&report, &c.windows);
        if let Some(w) = run.watch {
            let m = analyse(&w.samples(), &self.memory, &w.label);
            findings.push(Finding::new(
                "no memory leak suspected",
                !m.suspected,
                show_slope(m.slope_bytes_per_second),
                format!("< {} or not significant", show_slope(self.memory.min_slope)),
            ));
            report.memory = Some(m);
        }
        (Details::Soak(report), findings)
    }

    fn judge(&self, windows: &[Window]) -> SoakReport {
        let k = self
            .compare
            .map_or((windows.len() / 4).max(3), |k| k as usize)
            .min(windows.len() / 2);
        let p95s: Vec<f64> = windows.iter().map(|w| w.p95).collect();
        let (first, last) = (&p95s[..k], &p95s[p95s.len() - k..]);
        let (a, b) = (median(first), median(last));
        SoakReport {
            windows: windows.len(),
            compared: k,
            first_p95: a,
            last_p95: b,
            drift_ratio: if a > 0.0 { b / a - 1.0 } else { 0.0 },
            drift_p_value: mann_whitney_greater(first, last),
            worst_window_error_rate: windows.iter().map(|w| w.error_rate).fold(0.0, f64::max),
            memory: None,
        }
    }

    fn findings(&self, r: &SoakReport, windows: &[Window]) -> Vec<Finding> {
        let drifted = r.compared >= 3
            && r.drift_ratio > self.drift
            && r.last_p95 - r.first_p95 > self.drift_min
            && r.drift_p_value < ALPHA;
        vec![
            Finding::new(
                "no p95 drift",
                !drifted,
                format!(
                    "{:+.1}% (p={:.3}, {} windows each end)",
                    r.drift_ratio * 100.0,
                    r.drift_p_value,
                    r.compared
                ),
                format!(
                    "<= +{:.0}% (or +{}) or not significant",
                    self.drift * 100.0,
                    crate::units::secs(self.drift_min)
                ),
            ),
            no_data(windows),
            Finding::new(
                "every window's error rate",
                r.worst_window_error_rate < self.max_window_error_rate,
                format!("worst {:.3}%", r.worst_window_error_rate * 100.0),
                format!("< {:.2}%", self.max_window_error_rate * 100.0),
            ),
        ]
    }
}

/// A window in which requests were due but none completed reads p95 0 and
/// 0% errors, so the drift and error-rate findings cannot see it: it fails
/// here instead.
fn no_data(windows: &[Window]) -> Finding {
    let empty = windows
        .iter()
        .filter(|w| w.target_rate > 0.0 && w.requests == 0)
        .count();
    Finding::new(
        "every window has completed requests",
        empty == 0,
        format!("{empty} of {} windows without data", windows.len()),
        "0 windows without data".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soak() -> Soak {
        Soak {
            start: 100.0,
            duration: Duration::from_secs(600),
            window: 60,
            drift: 0.1,
            drift_min: 0.001,
            compare: None,
            max_window_error_rate: 0.01,
            memory: LeakParams {
                warmup: 0.0,
                window: 1.0,
                min_slope: 1.0,
                min_step: 1.0,
                alpha: 0.05,
            },
        }
    }

    fn windows(p95: impl Fn(usize) -> f64) -> Vec<Window> {
        (0..12)
            .map(|i| Window {
                p95: p95(i),
                ..Window::default()
            })
            .collect()
    }

    #[test]
    fn drift_needs_size_and_significance() {
        let s = soak();
        // Steadily 30% slower by the end: drift.
        let r = s.judge(&windows(|i| 0.050 * (1.0 + 0.03 * i as f64)));
        assert!(!s.findings(&r, &[])[0].passed, "{r:?}");
        // Noisy but flat: no drift.
        let r = s.judge(&windows(|i| [0.050, 0.070, 0.045][i % 3]));
        assert!(s.findings(&r, &[])[0].passed, "{r:?}");
        // Significant but tiny (+4%): no drift.
        let r = s.judge(&windows(|i| if i < 6 { 0.050 } else { 0.052 }));
        assert!(s.findings(&r, &[])[0].passed, "{r:?}");
    }

    #[test]
    fn a_window_with_nothing_completed_fails_the_soak() {
        let s = soak();
        let mut w = windows(|_| 0.050);
        for x in w.iter_mut() {
            (x.requests, x.target_rate) = (6000, 100.0);
        }
        let r = s.judge(&w);
        assert!(s.findings(&r, &w).iter().all(|f| f.passed), "{r:?}");
        // The service stops answering: the last windows read p95 0, 0% errors.
        for x in w[9..].iter_mut() {
            (x.requests, x.p95, x.error_rate) = (0, 0.0, 0.0);
        }
        let r = s.judge(&w);
        let failed: Vec<_> = s
            .findings(&r, &w)
            .into_iter()
            .filter(|f| !f.passed)
            .collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].observed, "3 of 12 windows without data");
    }
}
