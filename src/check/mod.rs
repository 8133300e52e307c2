//! Checks: a scenario with thresholds, run on a schedule or on request.
//! [`CheckPlan::build`] compiles a check's config; [`execute::execute`] runs
//! it, watching the service, and returns a [`result::CheckResult`] (the
//! stored schema) that the baseline comparison, the store and the reports
//! take from there; [`runner`] runs checks inside the sidecar.
//!
//! The submodules are layered (`tests/layers.rs` judges it), each importing
//! only those below it: `result` (the stored schema); `timeline`, `watch`
//! (what a run collects); `leak` (the trend test); `memory`, `metrics`;
//! `scenario`, `baseline`; `execute`; `runner`.

pub mod baseline;
pub mod execute;
pub mod leak;
pub mod memory;
pub mod metrics;
pub mod result;
pub mod runner;
pub mod scenario;
pub mod timeline;
pub mod watch;

use std::time::Duration;

use crate::check::baseline::regression::Tolerances;
use crate::check::result::ScenarioKind;
use crate::check::scenario::{Build, Scenario};
use crate::config::{BuildCx, CheckConfig, Overlap};
use crate::load::{Guardrails, LoadPlan};
use crate::resources::process::Selector;
use memory::MemRule;

/// A compiled check.
#[derive(Clone, Debug)]
pub struct CheckPlan {
    pub name: String,
    pub schedule: Option<croner::Cron>,
    pub schedule_text: Option<String>,
    pub max_duration: Duration,
    pub overlap: Overlap,
    /// The load as configured; scenarios take its mix and base rate.
    pub load: Option<LoadPlan>,
    pub scenario: Scenario,
    pub memory_rules: Vec<MemRule>,
    pub baseline: Option<Tolerances>,
    /// The service process watched during the run, and how often.
    pub watch: Option<(Selector, Duration)>,
}

/// How a check is compiled besides its own config.
pub struct Context<'a> {
    pub rails: &'a Guardrails,
    pub selectors: &'a [Selector],
    pub has_store: bool,
}

impl CheckPlan {
    /// Compiles `checks[i]`; `cx` is at that item.
    pub fn build(c: &CheckConfig, env: &Context, cx: &mut BuildCx) -> Option<CheckPlan> {
        cx.checked(|cx| {
            crate::config::check_name(&c.name, &mut cx.key("name"));
            type Indexed<'a> = Vec<(usize, &'a String)>;
            let (mem_exprs, load_exprs): (Indexed, Indexed) = c
                .thresholds
                .iter()
                .enumerate()
                .partition(|(_, t)| MemRule::is_memory(t));
            let memory_rules = memory::build(&mem_exprs, env.selectors, cx);
            let load_exprs: Vec<String> = load_exprs.into_iter().map(|(_, t)| t.clone()).collect();
            let scenario_sets_time = c.scenarios() > 0;
            let load = c.load.as_ref().and_then(|l| {
                if scenario_sets_time && (l.duration.is_some() || l.stages.is_some()) {
                    cx.problem_at(
                        "load",
                        "the scenario sets the timeline: drop `duration` and `stages`",
                    );
                    return None;
                }
                let (path, problems, redactor) = (&cx.path, &mut *cx.problems, &mut *cx.redactor);
                LoadPlan::build(
                    &c.name,
                    l,
                    &load_exprs,
                    &c.abort,
                    env.rails,
                    scenario_sets_time,
                    path,
                    problems,
                    redactor,
                )
            });
            if c.load.is_none() && !(load_exprs.is_empty() && c.abort.is_empty()) {
                cx.problem_at(
                    "thresholds",
                    "load thresholds and abort rules need a `load`",
                );
            }
            if c.breakpoint.is_some() && !load_exprs.is_empty() {
                cx.problem_at(
                    "thresholds",
                    "a breakpoint is judged by `breakpoint.break` rules, not load thresholds",
                );
            }
            let process = env.selectors.first().map(|s| s.label.as_str());
            let build = Build {
                base: load.as_ref(),
                rate_scale: env.rails.rate_scale(),
                time_scale: env.rails.time_scale,
                max_rate: env.rails.max_rate,
                process,
            };
            let scenario = Scenario::build(c, &build, cx)?;
            let schedule = c.schedule.as_ref().and_then(|s| {
                runner::parse_cron(s)
                    .map_err(|e| cx.problem_at("schedule", e))
                    .ok()
            });
            let baseline = c.baseline.as_ref().and_then(|b| {
                let mut cx = cx.key("baseline");
                if !env.has_store {
                    cx.problem("baseline comparison needs a `store` to keep results in");
                }
                Tolerances::build(b, &mut cx)
            });
            let watch = Self::watch(&scenario, env.selectors, cx);
            let expected = scenario.duration(load.as_ref());
            let max_duration = c
                .max_duration
                .map_or(expected + Duration::from_secs(600), |d| {
                    d.0.mul_f64(env.rails.time_scale)
                });
            if max_duration < expected {
                cx.problem_at(
                    "max_duration",
                    format!(
                        "shorter than the scenario itself ({})",
                        crate::units::human_duration(expected)
                    ),
                );
            }
            Some(CheckPlan {
                name: c.name.clone(),
                schedule,
                schedule_text: c.schedule.clone(),
                max_duration,
                overlap: c.overlap,
                load,
                scenario,
                memory_rules,
                baseline,
                watch,
            })
        })
    }

    /// Which process to watch: the leak's, else the first configured one.
    fn watch(
        scenario: &Scenario,
        selectors: &[Selector],
        cx: &mut BuildCx,
    ) -> Option<(Selector, Duration)> {
        let (label, interval) = match scenario {
            Scenario::Leak(l) => (Some(l.process.as_str()), l.sample_interval),
            _ => (None, Duration::from_secs(1)),
        };
        let found = match label {
            Some(l) => selectors.iter().find(|s| s.label == l),
            None => selectors.first(),
        };
        if label.is_some() && found.is_none() {
            cx.key("leak").problem_at(
                "process",
                format!(
                    "no `service.processes` entry labelled `{}`",
                    label.unwrap_or("")
                ),
            );
        }
        found.map(|s| (s.clone(), interval))
    }

    pub fn kind(&self) -> ScenarioKind {
        self.scenario.kind()
    }

    /// The scenario's expected length.
    pub fn duration(&self) -> Duration {
        self.scenario.duration(self.load.as_ref())
    }
}
