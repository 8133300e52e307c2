//! Leak: drive the base load (or only watch) and judge the service's RSS
//! trend with [`crate::check::leak`].

use std::time::Duration;

use super::{Build, Run};
use crate::check::leak::{analyse, LeakParams};
use crate::check::result::{Details, Finding};
use crate::check::timeline::Collector;
use crate::config::{BuildCx, LeakConfig};
use crate::load::arrival::Profile;
use crate::units::{bytes, show_slope, slope};

#[derive(Clone, Debug)]
pub(crate) struct Leak {
    duration: Duration,
    pub(crate) sample_interval: Duration,
    pub(crate) process: String,
    params: LeakParams,
    /// The base load's start (rate or users), if it drives load.
    drive: Option<f64>,
}

impl Leak {
    pub(crate) fn build(c: &LeakConfig, b: &Build, cx: &mut BuildCx) -> Option<Leak> {
        let Some(process) = c.process.as_deref().or(b.process) else {
            cx.problem("a leak check watches a service process: add `service.processes`");
            return None;
        };
        if !(c.alpha > 0.0 && c.alpha < 0.5) {
            cx.problem_at("alpha", "must be between 0 and 0.5");
        }
        let min_slope = slope(&c.min_slope).map_err(|e| cx.problem_at("min_slope", e));
        let min_step = bytes(&c.min_step).map_err(|e| cx.problem_at("min_step", e));
        let params = LeakParams {
            warmup: b.time(c.warmup.0).as_secs_f64(),
            window: b.time(c.window.0).as_secs_f64(),
            min_slope: min_slope.ok()?,
            min_step: min_step.ok()?,
            alpha: c.alpha,
        };
        let duration = b.time(c.duration.0);
        if params.window <= 0.0 || duration.as_secs_f64() - params.warmup < params.window * 6.0 {
            cx.problem_at(
                "duration",
                "needs at least 6 windows after the warm-up (duration >= warmup + 6 x window)",
            );
        }
        Some(Leak {
            duration,
            sample_interval: b.time(c.sample_interval.0).max(Duration::from_millis(50)),
            process: process.to_string(),
            params,
            drive: b.base.map(|p| p.start),
        })
    }

    pub(crate) fn duration(&self) -> Duration {
        self.duration
    }

    pub async fn run(&self, run: &mut Run<'_>) -> (Details, Vec<Finding>) {
        match self.drive {
            Some(start) => {
                let c = Collector::new(run.now(), super::window_for(self.duration), Vec::new());
                run.drive("leak", Profile::constant(start, self.duration), c, true)
                    .await;
            }
            None => run.observe(self.duration).await,
        }
        let points = run.watch.map(|w| w.samples()).unwrap_or_default();
        let r = analyse(&points, &self.params, &self.process);
        let finding = Finding::new(
            "no memory leak suspected",
            !r.suspected,
            show_slope(r.slope_bytes_per_second),
            format!("< {} or not significant", show_slope(self.params.min_slope)),
        );
        (Details::Leak(r), vec![finding])
    }
}
