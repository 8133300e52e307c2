//! Curve: a list of rate levels, each held for a step and measured on its
//! own (after a settling time): achieved rate, p50/p95/p99, error rate, and
//! the service's CPU and peak RSS over the level.

use std::time::Duration;

use super::{secs, steps, Build, Run};
use crate::check::result::{CurveReport, Details, Finding, Level, MemPoint};
use crate::check::timeline::{ratio, Collector, Segment};
use crate::check::watch::usage;
use crate::config::{BuildCx, CurveConfig};

#[derive(Clone, Debug)]
pub(crate) struct Curve {
    levels: Vec<f64>,
    step: Duration,
    settle: u32,
}

impl Curve {
    pub(crate) fn build(c: &CurveConfig, b: &Build, cx: &mut BuildCx) -> Option<Curve> {
        if b.base.is_none() {
            cx.problem("a curve needs a `load` with a `mix`");
            return None;
        }
        if c.levels.is_empty() || c.levels.len() > 64 {
            cx.problem_at("levels", "give 1 to 64 rate levels");
            return None;
        }
        let levels = b.rates(&c.levels, &mut cx.key("levels"));
        let step = b.time(c.step.0);
        let settle = b.time(c.settle.0);
        if settle * 2 > step {
            cx.problem_at("settle", "must be at most half of `step`");
        }
        Some(Curve {
            levels: levels?,
            step,
            settle: secs(settle).min(secs(step) / 2),
        })
    }

    pub(crate) fn duration(&self) -> Duration {
        self.step * self.levels.len() as u32
    }

    pub async fn run(&self, run: &mut Run<'_>) -> (Details, Vec<Finding>) {
        let step = secs(self.step);
        let segments = (0..self.levels.len() as u32)
            .map(|i| Segment::new(i * step + self.settle, (i + 1) * step))
            .collect();
        let offset = run.now();
        let c = Collector::new(offset, step, segments);
        let levels: Vec<(Duration, f64)> = self.levels.iter().map(|r| (self.step, *r)).collect();
        let c = run.drive("curve", steps(&levels), c, true).await;
        let points = run.watch.map(|w| w.samples()).unwrap_or_default();
        (
            Details::Curve(self.judge(&c.segments, &points, offset)),
            Vec::new(),
        )
    }

    fn judge(&self, segs: &[Segment], points: &[MemPoint], offset: f64) -> CurveReport {
        let levels = segs
            .iter()
            .zip(&self.levels)
            .filter(|(s, _)| s.seconds > 0)
            .map(|(s, target)| {
                let from = offset + f64::from(s.from);
                let (cpu_cores, rss_bytes) = usage(points, from, from + f64::from(s.seconds));
                let st = &s.stats;
                Level {
                    target_rate: *target,
                    rate: st.requests as f64 / f64::from(s.seconds),
                    p50: st.latency.quantile(0.50),
                    p95: st.latency.quantile(0.95),
                    p99: st.latency.quantile(0.99),
                    error_rate: ratio(st.errors(), st.requests),
                    dropped: st.dropped,
                    cpu_cores,
                    rss_bytes,
                }
            })
            .collect();
        CurveReport { levels }
    }
}
