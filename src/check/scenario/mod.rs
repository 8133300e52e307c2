//! Scenarios: each file turns its config into load phases for the engine
//! and the phases' windows into findings (one verdict item each) and a
//! report section. All have the same shape:
//!
//! ```text
//! build(cfg, &Build, &mut BuildCx) -> Option<Self>    config → plan
//! duration(&self) -> Duration                         expected length
//! run(&self, &mut Run) -> (Details, Vec<Finding>)     stages → verdict
//! ```
//!
//! The reports they fill ([`Details`] and the scenario reports in it) are
//! defined with the rest of the stored schema in [`crate::check::result`].

pub(crate) mod breakpoint;
pub(crate) mod curve;
pub(crate) mod leak;
pub(crate) mod soak;
pub(crate) mod spike;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::check::result::{Details, Finding, ScenarioKind, Window};
use crate::check::timeline::{ratio, Collector};
use crate::check::watch::Watch;
use crate::config::{BuildCx, CheckConfig};
use crate::load::arrival::{Profile, Stage};
use crate::load::engine::{EntryStats, Model};
use crate::load::metrics::LoadMetrics;
use crate::load::{LoadPlan, LoadResult, Point, Progress, Workload};
use crate::units::parse_rate;

/// A compiled scenario.
#[derive(Clone, Debug)]
pub(crate) enum Scenario {
    /// The check's `load` as written.
    Load,
    Soak(soak::Soak),
    Spike(spike::Spike),
    Breakpoint(breakpoint::Breakpoint),
    Curve(curve::Curve),
    Leak(leak::Leak),
}

/// What building a scenario needs besides its own config.
pub(crate) struct Build<'a> {
    /// The check's compiled load: a scenario drives its workload through
    /// profiles it makes from the base (`start`).
    pub(crate) base: Option<&'a LoadPlan>,
    /// Rates are multiplied by this (1/N for a shard).
    pub(crate) rate_scale: f64,
    /// Durations are multiplied by this (`--time-scale`).
    pub(crate) time_scale: f64,
    pub(crate) max_rate: f64,
    /// The watched service process label, if any.
    pub(crate) process: Option<&'a str>,
}

impl Build<'_> {
    pub(crate) fn time(&self, d: Duration) -> Duration {
        d.mul_f64(self.time_scale)
    }

    /// The base plan's constant start rate; scenarios need the open model.
    fn base_rate(&self, cx: &mut BuildCx) -> Option<f64> {
        match self.base {
            Some(b) if b.workload.model == Model::Rate => Some(b.start),
            Some(_) => {
                cx.problem_at(
                    "load",
                    "this scenario needs an arrival `rate` (open model), not `concurrency`",
                );
                None
            }
            None => {
                cx.problem("this scenario needs a `load` with a `rate` and a `mix`");
                None
            }
        }
    }

    /// Parses a rate and applies the rate scale and the limit.
    fn rate(&self, s: &str, cx: &mut BuildCx) -> Option<f64> {
        let r = parse_rate(s).map_err(|e| cx.problem(e)).ok()? * self.rate_scale;
        if r > self.max_rate {
            cx.problem(format!(
                "{r:.0}/s exceeds the limit of {:.0}/s (limits.max_rate)",
                self.max_rate
            ));
            return None;
        }
        Some(r)
    }

    /// Every rate of a list, each problem reported at its index; `None` if
    /// any had one.
    fn rates(&self, list: &[String], cx: &mut BuildCx) -> Option<Vec<f64>> {
        let v: Vec<Option<f64>> = list
            .iter()
            .enumerate()
            .map(|(i, s)| self.rate(s, &mut cx.index(i)))
            .collect();
        v.into_iter().collect()
    }

    fn percent(&self, s: &str, cx: &mut BuildCx) -> Option<f64> {
        crate::units::percent(s).map_err(|e| cx.problem(e)).ok()
    }
}

impl Scenario {
    /// Compiles the check's scenario; `cx` is the check's.
    pub(crate) fn build(cfg: &CheckConfig, b: &Build, cx: &mut BuildCx) -> Option<Scenario> {
        if cfg.scenarios() > 1 {
            cx.problem("give at most one scenario (soak, spike, breakpoint, curve, leak)");
            return None;
        }
        if let Some(c) = &cfg.soak {
            return soak::Soak::build(c, b, &mut cx.key("soak")).map(Scenario::Soak);
        }
        if let Some(c) = &cfg.spike {
            return spike::Spike::build(c, b, &mut cx.key("spike")).map(Scenario::Spike);
        }
        if let Some(c) = &cfg.breakpoint {
            return breakpoint::Breakpoint::build(c, b, &mut cx.key("breakpoint"))
                .map(Scenario::Breakpoint);
        }
        if let Some(c) = &cfg.curve {
            return curve::Curve::build(c, b, &mut cx.key("curve")).map(Scenario::Curve);
        }
        if let Some(c) = &cfg.leak {
            return leak::Leak::build(c, b, &mut cx.key("leak")).map(Scenario::Leak);
        }
        if b.base.is_none() {
            cx.problem("give a `load`, or a `leak` scenario to only observe");
            return None;
        }
        Some(Scenario::Load)
    }

    pub(crate) fn kind(&self) -> ScenarioKind {
        match self {
            Scenario::Load => ScenarioKind::Load,
            Scenario::Soak(_) => ScenarioKind::Soak,
            Scenario::Spike(_) => ScenarioKind::Spike,
            Scenario::Breakpoint(_) => ScenarioKind::Breakpoint,
            Scenario::Curve(_) => ScenarioKind::Curve,
            Scenario::Leak(_) => ScenarioKind::Leak,
        }
    }

    /// Expected length (a breakpoint's is its longest).
    pub(crate) fn duration(&self, base: Option<&LoadPlan>) -> Duration {
        match self {
            Scenario::Load => base
                .and_then(|b| b.profile.as_ref())
                .map_or(Duration::ZERO, Profile::duration),
            Scenario::Soak(s) => s.duration(),
            Scenario::Spike(s) => s.duration(),
            Scenario::Breakpoint(s) => s.duration(),
            Scenario::Curve(s) => s.duration(),
            Scenario::Leak(s) => s.duration(),
        }
    }

    pub async fn run(&self, run: &mut Run<'_>) -> (Details, Vec<Finding>) {
        match self {
            Scenario::Load => {
                let base = run.base.expect("validated");
                let profile = base
                    .profile
                    .clone()
                    .expect("a load check sets its timeline");
                let window = window_for(profile.duration());
                let c = Collector::new(run.now(), window, Vec::new());
                run.drive("load", profile, c, true).await;
                (Details::Load, Vec::new())
            }
            Scenario::Soak(s) => s.run(run).await,
            Scenario::Spike(s) => s.run(run).await,
            Scenario::Breakpoint(s) => s.run(run).await,
            Scenario::Curve(s) => s.run(run).await,
            Scenario::Leak(s) => s.run(run).await,
        }
    }
}

/// "Back to normal" after a spike or a break: a window's p95 within
/// `tolerance` (or 1 ms) of a reference and its error rate within 1 point,
/// for two windows in a row. The 1 ms keeps a fast service's jitter from
/// counting as an outage.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Recovery {
    p95: f64,
    error_rate: f64,
}

impl Recovery {
    pub(crate) fn against(reference: &EntryStats, tolerance: f64) -> Recovery {
        let p95 = reference.latency.quantile(0.95);
        Recovery {
            p95: (p95 * (1.0 + tolerance)).max(p95 + 0.001),
            error_rate: ratio(reference.errors(), reference.requests) + 0.01,
        }
    }

    pub(crate) fn holds(&self, w: &Window) -> bool {
        w.requests > 0 && w.p95 <= self.p95 && w.error_rate <= self.error_rate
    }

    /// The first window that is back, with the next one back too.
    pub(crate) fn first<'a>(&self, windows: &[&'a Window]) -> Option<&'a Window> {
        windows
            .windows(2)
            .find(|pair| self.holds(pair[0]) && self.holds(pair[1]))
            .map(|pair| pair[0])
    }
}

/// A window length for runs without one: about 60 windows, 1 s to 1 min.
pub(crate) fn window_for(d: Duration) -> u32 {
    (d.as_secs() / 60).clamp(1, 60) as u32
}

/// Whole seconds, at least 1.
pub(crate) fn secs(d: Duration) -> u32 {
    (d.as_secs_f64().round() as u32).max(1)
}

/// A profile that holds each (duration, rate) level, stepping instantly.
pub(crate) fn steps(levels: &[(Duration, f64)]) -> Profile {
    let mut stages = Vec::new();
    for (d, r) in levels {
        stages.push(Stage {
            duration: Duration::ZERO,
            target: *r,
        });
        stages.push(Stage {
            duration: *d,
            target: *r,
        });
    }
    Profile {
        start: levels.first().map_or(0.0, |l| l.1),
        stages,
    }
}

/// One leg of a check: a load profile the engine drove, and its result.
/// Each becomes a `PhaseSummary` of the stored result.
#[derive(Clone, Debug)]
pub(crate) struct Leg {
    pub(crate) name: String,
    pub(crate) result: LoadResult,
}

/// What a running check gives its scenario.
pub(crate) struct Run<'a> {
    pub(crate) base: Option<&'a LoadPlan>,
    pub(crate) metrics: Option<&'a LoadMetrics>,
    pub(crate) progress: &'a mut dyn Progress,
    pub(crate) cancel: CancellationToken,
    pub(crate) epoch: Instant,
    pub(crate) watch: Option<&'a Watch>,
    pub(crate) legs: Vec<Leg>,
    pub(crate) windows: Vec<Window>,
}

impl Run<'_> {
    /// Seconds since the check started.
    pub(crate) fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Drives `profile` with the check's mix. Thresholds and abort rules
    /// apply when `judged` (a recovery phase is not).
    pub(crate) async fn drive(
        &mut self,
        name: &str,
        profile: Profile,
        mut collector: Collector,
        judged: bool,
    ) -> Collector {
        let base = self.base.expect("a driving scenario has a load");
        let workload = Workload {
            thresholds: if judged {
                base.workload.thresholds.clone()
            } else {
                Vec::new()
            },
            aborts: if judged {
                base.workload.aborts.clone()
            } else {
                Vec::new()
            },
            ..base.workload.clone()
        };
        let result = crate::load::run_observed(
            &workload,
            &profile,
            self.metrics,
            self.progress,
            self.cancel.clone(),
            &mut collector,
        )
        .await;
        collector.finish();
        self.windows.extend(collector.windows.iter().cloned());
        self.legs.push(Leg {
            name: name.to_string(),
            result,
        });
        collector
    }

    /// Waits `d` without load (a leak check that only observes), showing
    /// progress; ends early on cancel.
    pub(crate) async fn observe(&mut self, d: Duration) {
        let total = secs(d);
        for s in 1..=total {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let point = Point {
                second: s,
                requests: 0,
                rate: 0.0,
                errors: 0,
                dropped: 0,
                p95_seconds: 0.0,
                target: 0.0,
            };
            self.progress.second(s, total, &point);
        }
        self.progress.finish();
    }

    /// True when a leg was stopped by an abort rule, a cancel or the time
    /// limit, or its load engine failed.
    pub(crate) fn stopped(&self) -> bool {
        self.cancel.is_cancelled()
            || self
                .legs
                .iter()
                .any(|l| l.result.aborted_by.is_some() || l.result.error.is_some())
    }
}
