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
pub(crate) mod memory;
pub mod metrics;
pub mod result;
pub mod runner;
pub(crate) mod scenario;
pub(crate) mod timeline;
pub(crate) mod watch;

use std::time::Duration;

use crate::check::baseline::regression::Tolerances;
use crate::check::result::ScenarioKind;
use crate::check::scenario::{Build, Scenario};
use crate::config::{BuildCx, CheckConfig, Overlap};
use crate::load::{Guardrails, LoadPlan, LoadSection};
use crate::resources::process::Selector;
use memory::MemRule;

/// A compiled check.
#[derive(Clone, Debug)]
pub struct CheckPlan {
    pub name: String,
    pub(crate) schedule: Option<croner::Cron>,
    pub(crate) schedule_text: Option<String>,
    pub max_duration: Duration,
    pub overlap: Overlap,
    /// The load as configured; scenarios take its mix and base rate.
    pub load: Option<LoadPlan>,
    pub(crate) scenario: Scenario,
    pub(crate) memory_rules: Vec<MemRule>,
    pub(crate) baseline: Option<Tolerances>,
    /// The service process watched during the run, and how often.
    pub(crate) watch: Option<(Selector, Duration)>,
}

/// How a check is compiled besides its own config.
pub(crate) struct Context<'a> {
    pub(crate) rails: &'a Guardrails,
    pub(crate) selectors: &'a [Selector],
    pub(crate) has_store: bool,
}

impl CheckPlan {
    /// Compiles `checks[i]`; `cx` is at that item.
    pub(crate) fn build(c: &CheckConfig, env: &Context, cx: &mut BuildCx) -> Option<CheckPlan> {
        cx.checked(|cx| {
            crate::config::check_dir_name(&c.name, &mut cx.key("name"));
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
                let section = LoadSection {
                    check: &c.name,
                    load: l,
                    thresholds: &load_exprs,
                    aborts: &c.abort,
                };
                if scenario_sets_time {
                    LoadPlan::build_base(cx, &section, env.rails)
                } else {
                    LoadPlan::build(cx, &section, env.rails)
                }
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

#[cfg(test)]
mod tests {
    use crate::config::Document;
    use crate::plan::Plan;

    const LOAD: &str = "{rate: 10/s, mix: [{http: {url: 'http://127.0.0.1:9/'}}]}";
    const USERS: &str = "{concurrency: 2, mix: [{http: {url: 'http://127.0.0.1:9/'}}]}";

    fn problems(text: &str) -> Vec<String> {
        let doc = Document::parse("c.yaml", text, &|_| None).unwrap();
        let errors = Plan::from_document(doc).unwrap_err().to_string();
        errors.lines().map(String::from).collect()
    }

    /// Every problem of a check's config, at its path.
    #[test]
    fn check_problems_are_reported_at_their_paths() {
        let without_service = format!(
            "limits: {{max_rate: 1000/s}}
checks:
  - name: 'bad name'
    load: {LOAD}
    thresholds: ['rss_max < 1GB', 'rss_peak < 1GB']
  - name: timeline
    load: {{rate: 10/s, duration: 5s, mix: [{{http: {{url: 'http://127.0.0.1:9/'}}}}]}}
    soak: {{duration: 1h}}
  - name: nothing
    thresholds: ['p95 < 1s']
  - name: two
    load: {LOAD}
    soak: {{duration: 1h}}
    spike: {{factor: 2}}
  - name: soak
    soak: {{duration: 10m}}
  - name: soak2
    load: {LOAD}
    soak: {{duration: 5m, drift: lots}}
  - name: spike
    load: {LOAD}
    spike: {{factor: 1, before: 5s}}
  - name: spike2
    load: {USERS}
    spike: {{factor: 2}}
  - name: spike3
    load: {LOAD}
    spike: {{factor: 200, before: 10s, max_error_rate: bad}}
  - name: bp
    load: {LOAD}
    thresholds: ['p95 < 1s']
    breakpoint: {{steps: [10/s, fast, 5000/s], break: ['error_rate > 5% over 10s', 'nonsense']}}
  - name: bp2
    load: {LOAD}
    breakpoint: {{steps: [20/s, 10/s]}}
  - name: bp3
    load: {LOAD}
    breakpoint: {{max: slow, tolerance: x}}
  - name: curve
    load: {LOAD}
    curve: {{levels: []}}
  - name: curve2
    load: {LOAD}
    curve: {{levels: [10/s, quick], step: 10s, settle: 8s}}
  - name: leak
    leak: {{duration: 1m, alpha: 2, min_slope: up, min_step: big}}
  - name: sched
    load: {{rate: 10/s, duration: 1m, mix: [{{http: {{url: 'http://127.0.0.1:9/'}}}}]}}
    schedule: nightly
    max_duration: 10s
    baseline: {{latency: much, alpha: 0.7}}
  - name: base2
    load: {{rate: 10/s, duration: 1m, mix: [{{http: {{url: 'http://127.0.0.1:9/'}}}}]}}
    baseline: {{alpha: 0.9}}
  - name: observe
"
        );
        assert_eq!(
            problems(&without_service),
            [
            "c.yaml:3:5: checks[0]: give a `load`, or a `leak` scenario to only observe",
            "c.yaml:3:11: checks[0].name: must be 1 to 64 letters, digits, `_`, `-` or `.` (it becomes a label value)",
            "c.yaml:4:11: checks[0].load: set `duration` for a constant load, or `stages` for a ramp",
            "c.yaml:5:18: checks[0].thresholds[0]: memory thresholds watch the service: add `service.processes`",
            "c.yaml:5:35: checks[0].thresholds[1]: unknown memory metric `rss_peak` (rss_growth, rss_increase, rss_max)",
            "c.yaml:7:11: checks[1].load: the scenario sets the timeline: drop `duration` and `stages`",
            "c.yaml:8:11: checks[1].soak: a soak needs a `load` with a `rate` and a `mix`",
            "c.yaml:9:5: checks[2]: give a `load`, or a `leak` scenario to only observe",
            "c.yaml:10:17: checks[2].thresholds: load thresholds and abort rules need a `load`",
            "c.yaml:11:5: checks[3]: give at most one scenario (soak, spike, breakpoint, curve, leak)",
            "c.yaml:16:11: checks[4].soak: a soak needs a `load` with a `rate` and a `mix`",
            "c.yaml:19:22: checks[5].soak.duration: a soak needs at least 6 windows (duration >= 6 x window)",
            "c.yaml:19:33: checks[5].soak.drift: `lots` is not a percentage (use 10% or 0.1)",
            "c.yaml:22:21: checks[6].spike.factor: must be greater than 1",
            "c.yaml:25:12: checks[7].spike.load: this scenario needs an arrival `rate` (open model), not `concurrency`",
            "c.yaml:28:21: checks[8].spike.factor: the spike's 2000/s exceeds the limit of 1000/s (limits.max_rate)",
            "c.yaml:28:34: checks[8].spike.before: needs at least 2 windows to measure the pre-spike level",
            "c.yaml:28:55: checks[8].spike.max_error_rate: `bad` is not a percentage (use 10% or 0.1)",
            "c.yaml:31:17: checks[9].thresholds: a breakpoint is judged by `breakpoint.break` rules, not load thresholds",
            "c.yaml:32:32: checks[9].breakpoint.steps[1]: `fast` is not a rate (use e.g. 200/s)",
            "c.yaml:32:38: checks[9].breakpoint.steps[2]: 5000/s exceeds the limit of 1000/s (limits.max_rate)",
            "c.yaml:35:25: checks[10].breakpoint.steps: give 1 to 64 increasing rates",
            "c.yaml:38:23: checks[11].breakpoint.max: `slow` is not a rate (use e.g. 200/s)",
            "c.yaml:41:21: checks[12].curve.levels: give 1 to 64 rate levels",
            "c.yaml:44:28: checks[13].curve.levels[1]: `quick` is not a rate (use e.g. 200/s)",
            "c.yaml:44:55: checks[13].curve.settle: must be at most half of `step`",
            "c.yaml:46:11: checks[14].leak: a leak check watches a service process: add `service.processes`",
            "c.yaml:49:15: checks[15].schedule: `nightly` is not a cron schedule: Invalid pattern: Pattern must have 5 or 6 fields when years are disallowed.",
            "c.yaml:50:19: checks[15].max_duration: shorter than the scenario itself (60.00s)",
            "c.yaml:51:15: checks[15].baseline: baseline comparison needs a `store` to keep results in",
            "c.yaml:51:25: checks[15].baseline.latency: `much` is not a percentage (use 10% or 0.1)",
            "c.yaml:54:15: checks[16].baseline: baseline comparison needs a `store` to keep results in",
            "c.yaml:54:23: checks[16].baseline.alpha: must be between 0 and 0.5",
            "c.yaml:55:5: checks[17]: give a `load`, or a `leak` scenario to only observe",
            ]
        );
        let with_service = format!(
            "service: {{processes: [{{label: web, comm: nginx}}]}}
store: {{dir: /tmp/x}}
checks:
  - name: leak
    leak: {{duration: 10s, process: db, window: 5s}}
  - name: mem
    load: {{rate: 10/s, duration: 1m, mix: [{{http: {{url: 'http://127.0.0.1:9/'}}}}]}}
    thresholds: ['rss_max > 1GB', 'rss_growth < 1MB/min']
  - name: leak2
    leak: {{duration: 1m, alpha: 2, min_slope: up, min_step: big}}
  - name: bp4
    load: {LOAD}
    breakpoint: {{steps: [10/s, 20/s], break: ['error_rate > 5% over 10s', 'nonsense']}}
"
        );
        assert_eq!(
            problems(&with_service),
            [
            "c.yaml:5:22: checks[0].leak.duration: needs at least 6 windows after the warm-up (duration >= warmup + 6 x window)",
            "c.yaml:5:36: checks[0].leak.process: no `service.processes` entry labelled `db`",
            "c.yaml:8:18: checks[1].thresholds[0]: `>`: memory thresholds are upper bounds (< or <=)",
            "c.yaml:10:33: checks[2].leak.alpha: must be between 0 and 0.5",
            "c.yaml:10:47: checks[2].leak.min_slope: `up` is not a rate of growth (use e.g. 10MB/min)",
            "c.yaml:10:61: checks[2].leak.min_step: `big` is not a size (use e.g. 500MB)",
            "c.yaml:13:47: checks[3].breakpoint.break[0]: a break rule is judged over a whole step: no [entry], `over` or `for`",
            "c.yaml:13:75: checks[3].breakpoint.break[1]: `nonsense`: expected METRIC OP VALUE, e.g. `p95 < 50ms`",
            ]
        );
    }
}
