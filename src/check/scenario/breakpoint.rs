//! Breakpoint (stress): the rate steps up until a break rule holds over a
//! step. Reports the highest step that held (the max sustainable rate),
//! the step that broke, and how long the service took to recover once the
//! load fell back to the first step's rate.

use std::time::Duration;

use super::{secs, steps, Build, Recovery, Run};
use crate::check::result::{BreakpointReport, Details, Finding, StepRow, Window};
use crate::check::timeline::{ratio, Collector, Event, Segment};
use crate::config::{BreakpointConfig, BuildCx};
use crate::load::arrival::Profile;
use crate::load::thresholds::Rule;
use crate::units::human_duration;

#[derive(Clone, Debug)]
pub(crate) struct Breakpoint {
    levels: Vec<f64>,
    step: Duration,
    rules: Vec<Rule>,
    recovery: Duration,
    window: u32,
    tolerance: f64,
}

/// At most this many steps, however the series is given.
const MAX_STEPS: usize = 64;

impl Breakpoint {
    pub(crate) fn build(c: &BreakpointConfig, b: &Build, cx: &mut BuildCx) -> Option<Breakpoint> {
        let levels = Self::levels(c, b, cx)?;
        let exprs: Vec<String> = if c.break_on.is_empty() {
            vec!["error_rate > 5%".into(), "dropped > 1%".into()]
        } else {
            c.break_on.clone()
        };
        let mut rules = Vec::new();
        let mut break_on = cx.key("break");
        for (i, e) in exprs.iter().enumerate() {
            match Rule::parse(e) {
                Ok(r) if r.entry.is_some() || r.over.is_some() || r.hold.is_some() => {
                    break_on.index(i).problem(
                        "a break rule is judged over a whole step: no [entry], `over` or `for`",
                    )
                }
                Ok(r) => rules.push(r),
                Err(err) => break_on.index(i).problem(err),
            }
        }
        Some(Breakpoint {
            levels,
            step: b.time(c.step.0),
            rules,
            recovery: b.time(c.recovery.0),
            window: secs(b.time(c.window.0)),
            tolerance: b.percent(&c.tolerance, &mut cx.key("tolerance"))?,
        })
    }

    fn levels(c: &BreakpointConfig, b: &Build, cx: &mut BuildCx) -> Option<Vec<f64>> {
        if !c.steps.is_empty() {
            let v = b.rates(&c.steps, &mut cx.key("steps"))?;
            if v.len() > MAX_STEPS || v.windows(2).any(|w| w[1] <= w[0]) {
                cx.problem_at("steps", format!("give 1 to {MAX_STEPS} increasing rates"));
                return None;
            }
            return Some(v);
        }
        let start = b.base_rate(cx)?;
        if !(c.factor.is_finite() && c.factor > 1.0) {
            cx.problem_at("factor", "must be greater than 1");
            return None;
        }
        let max = match &c.max {
            Some(m) => b.rate(m, &mut cx.key("max"))?,
            None => b.max_rate,
        };
        let mut v = vec![start];
        while let Some(next) = v
            .last()
            .map(|r| r * c.factor)
            .filter(|r| *r <= max * 1.000_001)
        {
            if v.len() == MAX_STEPS {
                break;
            }
            v.push(next);
        }
        Some(v)
    }

    pub(crate) fn duration(&self) -> Duration {
        self.step * self.levels.len() as u32 + self.recovery
    }

    pub async fn run(&self, run: &mut Run<'_>) -> (Details, Vec<Finding>) {
        let step = secs(self.step);
        let segments = (0..self.levels.len() as u32)
            .map(|i| Segment::new(i * step, (i + 1) * step))
            .collect();
        let rules = self.rules.clone();
        let c = Collector::new(run.now(), self.window, segments).stop_when(move |e| match e {
            Event::Segment(s) => broken(&rules, s).is_some(),
            Event::Window(_) => false,
        });
        let levels: Vec<(Duration, f64)> = self.levels.iter().map(|r| (self.step, *r)).collect();
        let c = run.drive("steps", steps(&levels), c, false).await;
        let mut report = self.judge(&c.segments);
        if report.breaking_rate.is_some() && !run.stopped() {
            report.recovery_seconds = self.recover(run, &c.segments[0]).await;
        }
        let findings = self.findings(&report);
        (Details::Breakpoint(report), findings)
    }

    fn judge(&self, segs: &[Segment]) -> BreakpointReport {
        let mut report = BreakpointReport {
            resolution_seconds: f64::from(self.window),
            ..BreakpointReport::default()
        };
        for (seg, target) in segs.iter().zip(&self.levels).filter(|(s, _)| s.seconds > 0) {
            let broke = broken(&self.rules, seg);
            let s = &seg.stats;
            report.steps.push(StepRow {
                target_rate: *target,
                rate: s.requests as f64 / f64::from(seg.seconds),
                p95: s.latency.quantile(0.95),
                error_rate: ratio(s.errors(), s.requests),
                dropped_ratio: ratio(s.dropped, s.requests + s.dropped),
                broke: broke.clone(),
            });
            if broke.is_some() {
                report.breaking_rate = Some(*target);
                report.broken_by = broke;
                break;
            }
            // A step counts as sustained only if it ran its whole length.
            if seg.seconds >= seg.to - seg.from {
                report.max_sustainable_rate = Some(*target);
            }
        }
        report
    }

    /// Holds the first step's rate until two windows in a row are back
    /// within tolerance of the first step; seconds until the first of them.
    async fn recover(&self, run: &mut Run<'_>, first: &Segment) -> Option<f64> {
        let back = Recovery::against(&first.stats, self.tolerance);
        let mut streak = 0;
        let c = Collector::new(run.now(), self.window, Vec::new()).stop_when(move |e| {
            if let Event::Window(w) = e {
                streak = if back.holds(w) { streak + 1 } else { 0 };
            }
            streak >= 2
        });
        let offset = run.now();
        let profile = Profile::constant(self.levels[0], self.recovery);
        let c = run.drive("recovery", profile, c, false).await;
        let windows: Vec<&Window> = c.windows.iter().collect();
        back.first(&windows).map(|w| (w.start - offset).max(0.0))
    }

    fn findings(&self, r: &BreakpointReport) -> Vec<Finding> {
        let Some(rate) = r.breaking_rate else {
            return vec![Finding::new(
                "held every step",
                true,
                format!("up to {:.0}/s", self.levels.last().copied().unwrap_or(0.0)),
                "no break".into(),
            )];
        };
        vec![Finding::new(
            "recovered after the break",
            r.recovery_seconds.is_some(),
            r.recovery_seconds.map_or("not recovered".into(), |s| {
                format!(
                    "{} after breaking at {rate:.0}/s",
                    human_duration(Duration::from_secs_f64(s))
                )
            }),
            format!("within {}", human_duration(self.recovery)),
        )]
    }
}

/// The first break rule that holds over a step. A step in which nothing
/// completed is broken by any rule: there is no data that says it held up.
fn broken(rules: &[Rule], seg: &Segment) -> Option<String> {
    rules.iter().find_map(|r| match r.check(&seg.rule_stats()) {
        (true, _) => Some(r.expr.clone()),
        (false, None) => Some(format!("{} (no data)", r.expr)),
        (false, Some(_)) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::engine::EntryStats;

    #[test]
    fn max_sustainable_is_the_last_step_before_the_break() {
        let b = Breakpoint {
            levels: vec![100.0, 200.0, 400.0, 800.0],
            step: Duration::from_secs(10),
            rules: vec![Rule::parse("error_rate > 5%").unwrap()],
            recovery: Duration::from_secs(60),
            window: 5,
            tolerance: 0.2,
        };
        let seg = |i: u32, requests: u64, errors: u64| {
            let mut s = Segment::new(i * 10, i * 10 + 10);
            s.stats = EntryStats::new(false);
            s.stats.requests = requests;
            s.stats.errors[0] = errors;
            s.seconds = 10;
            s
        };
        let r = b.judge(&[
            seg(0, 1000, 0),
            seg(1, 2000, 10),
            seg(2, 4000, 400),
            seg(3, 0, 0),
        ]);
        assert_eq!(r.max_sustainable_rate, Some(200.0));
        assert_eq!(r.breaking_rate, Some(400.0));
        assert_eq!(r.broken_by.as_deref(), Some("error_rate > 5%"));
        assert_eq!(r.steps.len(), 3);
    }
}
