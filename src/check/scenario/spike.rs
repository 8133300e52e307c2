//! Spike: the base rate, a burst of `factor` times it, the base again.
//! Judged on the error rate and p95 during the burst and on the recovery
//! time: from the end of the burst to the first window that, with the one
//! after it, is back within tolerance of the pre-spike p95 and error rate.

use std::time::Duration;

use super::{secs, steps, Build, Recovery, Run};
use crate::check::result::{Details, Finding, SpikeReport, Window};
use crate::check::timeline::{ratio, Collector, Segment};
use crate::config::{BuildCx, SpikeConfig};
use crate::load::thresholds::NO_DATA;
use crate::units::human_duration;

#[derive(Clone, Debug)]
pub(crate) struct Spike {
    base: f64,
    factor: f64,
    before: Duration,
    hold: Duration,
    after: Duration,
    window: u32,
    max_error_rate: f64,
    max_p95: Option<f64>,
    tolerance: f64,
    max_recovery: Duration,
}

impl Spike {
    pub(crate) fn build(c: &SpikeConfig, b: &Build, cx: &mut BuildCx) -> Option<Spike> {
        let base = b.base_rate(cx)?;
        if !(c.factor.is_finite() && c.factor > 1.0) {
            cx.problem_at("factor", "must be greater than 1");
            return None;
        }
        if base * c.factor > b.max_rate {
            cx.problem_at(
                "factor",
                format!(
                    "the spike's {:.0}/s exceeds the limit of {:.0}/s (limits.max_rate)",
                    base * c.factor,
                    b.max_rate
                ),
            );
        }
        let window = secs(b.time(c.window.0));
        let before = b.time(c.before.0);
        if before.as_secs_f64() < f64::from(window) * 2.0 {
            cx.problem_at(
                "before",
                "needs at least 2 windows to measure the pre-spike level",
            );
        }
        Some(Spike {
            base,
            factor: c.factor,
            before,
            hold: b.time(c.hold.0),
            after: b.time(c.after.0),
            window,
            max_error_rate: b.percent(&c.max_error_rate, &mut cx.key("max_error_rate"))?,
            max_p95: c.max_p95.map(|d| d.0.as_secs_f64()),
            tolerance: b.percent(&c.tolerance, &mut cx.key("tolerance"))?,
            max_recovery: b.time(c.max_recovery.0),
        })
    }

    pub(crate) fn duration(&self) -> Duration {
        self.before + self.hold + self.after
    }

    pub async fn run(&self, run: &mut Run<'_>) -> (Details, Vec<Finding>) {
        let (b, h) = (secs(self.before), secs(self.hold));
        let end = secs(self.duration());
        let segments = vec![
            // The first window warms connections up; leave it out.
            Segment::new(self.window.min(b / 2), b),
            Segment::new(b, b + h),
            Segment::new(b + h, end),
        ];
        let offset = run.now();
        let c = Collector::new(offset, self.window, segments);
        let profile = steps(&[
            (self.before, self.base),
            (self.hold, self.base * self.factor),
            (self.after, self.base),
        ]);
        let c = run.drive("spike", profile, c, true).await;
        let report = self.judge(&c.segments, &c.windows, offset + f64::from(b + h));
        let findings = self.findings(&report);
        (Details::Spike(report), findings)
    }

    fn judge(&self, segs: &[Segment], windows: &[Window], spike_end: f64) -> SpikeReport {
        let (pre, spike) = (&segs[0].stats, &segs[1].stats);
        let after: Vec<&Window> = windows
            .iter()
            .filter(|w| w.start >= spike_end - 0.5)
            .collect();
        let recovered = Recovery::against(pre, self.tolerance)
            .first(&after)
            .map(|w| (w.start - spike_end).max(0.0));
        SpikeReport {
            base_rate: self.base,
            spike_rate: self.base * self.factor,
            pre_p95: pre.latency.quantile(0.95),
            pre_error_rate: ratio(pre.errors(), pre.requests),
            spike_p95: spike.latency.quantile(0.95),
            spike_error_rate: ratio(spike.errors(), spike.requests),
            spike_achieved_rate: spike.requests as f64 / f64::from(segs[1].seconds.max(1)),
            recovery_seconds: recovered,
            resolution_seconds: f64::from(self.window),
        }
    }

    fn findings(&self, r: &SpikeReport) -> Vec<Finding> {
        let ms = |s: f64| human_duration(Duration::from_secs_f64(s.max(0.0)));
        // Nothing completed during the spike: 0% errors and p95 0 are no data.
        let data = r.spike_achieved_rate > 0.0;
        let shown = |s: String| if data { s } else { NO_DATA.to_string() };
        let mut out = vec![Finding::new(
            "error rate during the spike",
            data && r.spike_error_rate < self.max_error_rate,
            shown(format!("{:.3}%", r.spike_error_rate * 100.0)),
            format!("< {:.2}%", self.max_error_rate * 100.0),
        )];
        if let Some(max) = self.max_p95 {
            out.push(Finding::new(
                "p95 during the spike",
                data && r.spike_p95 < max,
                shown(ms(r.spike_p95)),
                format!("< {}", ms(max)),
            ));
        }
        out.push(Finding::new(
            "recovery time",
            r.recovery_seconds
                .is_some_and(|s| s < self.max_recovery.as_secs_f64()),
            r.recovery_seconds.map_or("not recovered".into(), |s| {
                format!("{} (±{}s)", ms(s), r.resolution_seconds)
            }),
            format!("< {}", ms(self.max_recovery.as_secs_f64())),
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::engine::EntryStats;

    fn seg(requests: u64, errors: u64, micros: u64) -> Segment {
        let mut s = Segment::new(0, 10);
        s.stats = EntryStats::new(false);
        s.stats.requests = requests;
        s.stats.errors[0] = errors;
        for _ in 0..requests {
            s.stats.latency.record(micros);
        }
        s.seconds = 10;
        s
    }

    fn win(start: f64, p95: f64, error_rate: f64) -> Window {
        Window {
            start,
            p95,
            error_rate,
            requests: 100,
            ..Window::default()
        }
    }

    fn spike() -> Spike {
        Spike {
            base: 10.0,
            factor: 10.0,
            before: Duration::from_secs(30),
            hold: Duration::from_secs(10),
            after: Duration::from_secs(60),
            window: 10,
            max_error_rate: 0.1,
            max_p95: None,
            tolerance: 0.2,
            max_recovery: Duration::from_secs(25),
        }
    }

    #[test]
    fn a_spike_in_which_nothing_completed_fails() {
        let s = spike();
        let segs = [seg(100, 0, 10_000), seg(0, 0, 0)];
        let f = s.findings(&s.judge(&segs, &[], 40.0));
        assert!(!f[0].passed, "{:?}", f[0]);
        assert_eq!(f[0].observed, "no data");
    }

    #[test]
    fn recovery_is_the_first_window_back_that_stays_back() {
        let s = spike();
        let segs = [seg(100, 0, 10_000), seg(1000, 50, 900_000)];
        let windows = [
            win(40.0, 0.5, 0.0),
            win(50.0, 0.011, 0.0), // back, but the next window is not
            win(60.0, 0.3, 0.0),
            win(70.0, 0.011, 0.0),
            win(80.0, 0.010, 0.0),
        ];
        let r = s.judge(&segs, &windows, 40.0);
        assert_eq!(r.recovery_seconds, Some(30.0));
        assert_eq!(r.spike_error_rate, 0.05);
        let f = s.findings(&r);
        assert!(f[0].passed);
        assert!(!f[1].passed, "30 s is over the 25 s limit");
        let never = s.judge(&segs, &windows[..3], 40.0);
        assert_eq!(never.recovery_seconds, None);
    }
}
