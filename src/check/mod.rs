//! Checks: a scenario with thresholds, run on a schedule or on request.
//! [`CheckPlan::build`] compiles a check's config; [`execute`] runs it,
//! watching the service, and returns a [`CheckResult`] that the baseline
//! comparison, the store and the reports take from there.

pub mod baseline;
pub mod leak;
pub mod memory;
pub mod metrics;
pub mod runner;
pub mod scenario;
pub mod timeline;
pub mod watch;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::check::baseline::regression::{Comparison, Tolerances};
use crate::check::scenario::{Build, Details, Finding, Run, Scenario};
use crate::config::{CheckConfig, Overlap, Path, Problems};
use crate::load::histogram::Summary;
use crate::load::metrics::LoadMetrics;
use crate::load::thresholds::ThresholdResult;
use crate::load::{Guardrails, LoadPlan, LoadResult, Progress, Verdict};
use crate::redact::Redactor;
use crate::resources::process::Selector;
use memory::MemRule;
use timeline::Window;
use watch::{MemPoint, Watch};

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
    pub fn build(
        c: &CheckConfig,
        cx: &Context,
        path: &Path,
        problems: &mut Problems,
        redactor: &mut Redactor,
    ) -> Option<CheckPlan> {
        let before = problems.0.len();
        crate::config::check_name(
            &c.name,
            &mut crate::config::BuildCx {
                path: path.key("name"),
                problems,
                redactor,
            },
        );
        type Indexed<'a> = Vec<(usize, &'a String)>;
        let (mem_exprs, load_exprs): (Indexed, Indexed) = c
            .thresholds
            .iter()
            .enumerate()
            .partition(|(_, t)| MemRule::is_memory(t));
        let memory_rules = memory::build(&mem_exprs, cx.selectors, path, problems);
        let load_exprs: Vec<String> = load_exprs.into_iter().map(|(_, t)| t.clone()).collect();
        let scenario_sets_time = c.scenarios() > 0;
        let load = c.load.as_ref().and_then(|l| {
            if scenario_sets_time && (l.duration.is_some() || l.stages.is_some()) {
                problems.push(
                    &path.key("load"),
                    "the scenario sets the timeline: drop `duration` and `stages`",
                );
                return None;
            }
            LoadPlan::build(
                &c.name,
                l,
                &load_exprs,
                &c.abort,
                cx.rails,
                scenario_sets_time,
                path,
                problems,
                redactor,
            )
        });
        if c.load.is_none() && !(load_exprs.is_empty() && c.abort.is_empty()) {
            problems.push(
                &path.key("thresholds"),
                "load thresholds and abort rules need a `load`",
            );
        }
        if c.breakpoint.is_some() && !load_exprs.is_empty() {
            problems.push(
                &path.key("thresholds"),
                "a breakpoint is judged by `breakpoint.break` rules, not load thresholds",
            );
        }
        let process = cx.selectors.first().map(|s| s.label.as_str());
        let build = Build {
            base: load.as_ref(),
            rate_scale: cx.rails.rate_scale(),
            time_scale: cx.rails.time_scale,
            max_rate: cx.rails.max_rate,
            process,
        };
        let scenario = Scenario::build(c, &build, path, problems)?;
        let schedule = c.schedule.as_ref().and_then(|s| {
            runner::parse_cron(s)
                .map_err(|e| problems.push(&path.key("schedule"), e))
                .ok()
        });
        let baseline = c.baseline.as_ref().and_then(|b| {
            if !cx.has_store {
                problems.push(
                    &path.key("baseline"),
                    "baseline comparison needs a `store` to keep results in",
                );
            }
            Tolerances::build(b, &path.key("baseline"), problems)
        });
        let watch = Self::watch(&scenario, cx.selectors, path, problems);
        let expected = scenario.duration(load.as_ref());
        let max_duration = c
            .max_duration
            .map_or(expected + Duration::from_secs(600), |d| {
                d.0.mul_f64(cx.rails.time_scale)
            });
        if max_duration < expected {
            problems.push(
                &path.key("max_duration"),
                format!(
                    "shorter than the scenario itself ({})",
                    crate::units::human_duration(expected)
                ),
            );
        }
        (problems.0.len() == before).then(|| CheckPlan {
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
    }

    /// Which process to watch: the leak's, else the first configured one.
    fn watch(
        scenario: &Scenario,
        selectors: &[Selector],
        path: &Path,
        problems: &mut Problems,
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
            problems.push(
                &path.key("leak").key("process"),
                format!(
                    "no `service.processes` entry labelled `{}`",
                    label.unwrap_or("")
                ),
            );
        }
        found.map(|s| (s.clone(), interval))
    }

    pub fn kind(&self) -> &'static str {
        self.scenario.kind()
    }

    /// The scenario's expected length.
    pub fn duration(&self) -> Duration {
        self.scenario.duration(self.load.as_ref())
    }
}

/// A whole-phase load summary, owned so results can be read back.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PhaseSummary {
    pub name: String,
    pub executor: String,
    pub duration_seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub dropped: u64,
    pub target_rate: Option<f64>,
    pub achieved_rate: f64,
    pub error_rate: f64,
    pub errors_by_reason: std::collections::BTreeMap<String, u64>,
    pub latency_seconds: Summary,
    pub service_time_seconds: Summary,
    pub aborted_by: Option<String>,
}

impl PhaseSummary {
    fn of(name: &str, r: &LoadResult) -> PhaseSummary {
        PhaseSummary {
            name: name.to_string(),
            executor: r.executor.clone(),
            duration_seconds: r.duration_seconds,
            requests: r.requests,
            errors: r.errors,
            dropped: r.dropped,
            target_rate: r.target_rate,
            achieved_rate: r.achieved_rate,
            error_rate: timeline::ratio(r.errors, r.requests),
            errors_by_reason: r
                .errors_by_reason
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            latency_seconds: r.latency_seconds,
            service_time_seconds: r.service_time_seconds,
            aborted_by: r.aborted_by.clone(),
        }
    }
}

/// Everything a check run produced; the JSON report and the stored record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckResult {
    pub id: String,
    pub check: String,
    pub kind: String,
    pub started_unix: f64,
    pub duration_seconds: f64,
    /// `pass`, `fail` or `aborted`.
    pub verdict: Verdict,
    pub aborted_by: Option<String>,
    pub phases: Vec<PhaseSummary>,
    pub thresholds: Vec<ThresholdResult>,
    pub findings: Vec<Finding>,
    pub details: Details,
    pub windows: Vec<Window>,
    /// The watched process's samples (at most ~2000, evenly thinned).
    pub memory: Vec<MemPoint>,
    pub memory_process: Option<String>,
    /// The baseline run compared against, if any.
    pub baseline: Option<String>,
    pub comparisons: Vec<Comparison>,
}

impl CheckResult {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    pub fn regressions(&self) -> impl Iterator<Item = &Comparison> {
        self.comparisons.iter().filter(|c| c.regressed)
    }

    /// Re-derives the verdict after comparisons were added.
    pub fn settle_verdict(&mut self) {
        if self.verdict == Verdict::Aborted {
            return;
        }
        let ok = self.thresholds.iter().all(|t| t.passed)
            && self.findings.iter().all(|f| f.passed)
            && self.regressions().next().is_none();
        self.verdict = if ok { Verdict::Pass } else { Verdict::Fail };
    }

    /// The first phase: for most scenarios, the whole load.
    pub fn main_phase(&self) -> Option<&PhaseSummary> {
        self.phases.first()
    }

    /// Peak RSS of the watched process over the run.
    pub fn peak_rss(&self) -> Option<f64> {
        self.memory
            .iter()
            .filter(|p| p.processes > 0)
            .map(|p| p.rss)
            .reduce(f64::max)
    }
}

/// A run id: UTC time to the millisecond, then the check name.
pub fn run_id(check: &str, at: SystemTime) -> String {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let (days, rem) = (ms / 86_400_000, ms % 86_400_000);
    let (y, m, d) = civil(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z-{check}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
pub fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Runs a check to its end, its time limit or `cancel`.
pub async fn execute(
    plan: &CheckPlan,
    metrics: Option<&LoadMetrics>,
    progress: &mut dyn Progress,
    cancel: CancellationToken,
) -> CheckResult {
    let started = SystemTime::now();
    let epoch = Instant::now();
    let token = cancel.child_token();
    let limit = {
        let t = token.clone();
        let max = plan.max_duration;
        tokio::spawn(async move {
            tokio::time::sleep(max).await;
            t.cancel();
        })
    };
    let watch = plan
        .watch
        .as_ref()
        .map(|(sel, every)| Watch::start(sel.clone(), *every, epoch));
    let mut run = Run {
        base: plan.load.as_ref(),
        metrics,
        progress,
        cancel: token.clone(),
        epoch,
        watch: watch.as_ref(),
        phases: Vec::new(),
        windows: Vec::new(),
    };
    let (details, mut findings) = plan.scenario.run(&mut run).await;
    limit.abort();
    let timed_out = token.is_cancelled() && !cancel.is_cancelled();
    let stopped = run.stopped();
    let (phases, windows) = (run.phases, run.windows);
    let samples = watch.map(Watch::stop).unwrap_or_default();
    findings.extend(memory::judge(&plan.memory_rules, &samples, &details));
    let aborted_by = if timed_out {
        Some(format!(
            "max_duration {} reached",
            crate::units::human_duration(plan.max_duration)
        ))
    } else if stopped {
        phases
            .iter()
            .find_map(|p| p.result.aborted_by.clone())
            .or_else(|| Some("cancelled".into()))
    } else {
        None
    };
    let mut result = CheckResult {
        id: run_id(&plan.name, started),
        check: plan.name.clone(),
        kind: plan.kind().into(),
        started_unix: started
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64(),
        duration_seconds: epoch.elapsed().as_secs_f64(),
        verdict: if aborted_by.is_some() {
            Verdict::Aborted
        } else {
            Verdict::Pass
        },
        aborted_by,
        thresholds: phases
            .iter()
            .flat_map(|p| p.result.thresholds.iter().cloned())
            .collect(),
        phases: phases
            .iter()
            .map(|p| PhaseSummary::of(&p.name, &p.result))
            .collect(),
        findings,
        details,
        windows,
        memory: thin(samples, 2000),
        memory_process: plan.watch.as_ref().map(|(s, _)| s.label.clone()),
        baseline: None,
        comparisons: Vec::new(),
    };
    result.settle_verdict();
    result
}

/// A made-up result with a few hundred windows and samples, for the
/// store's crash test.
pub fn synthetic(check: &str, n: u32) -> CheckResult {
    let started = 1_700_000_000.0 + f64::from(n);
    CheckResult {
        id: format!(
            "{}-{n:06}",
            run_id(check, UNIX_EPOCH + Duration::from_secs_f64(started))
        ),
        check: check.into(),
        kind: "load".into(),
        started_unix: started,
        duration_seconds: 60.0,
        verdict: Verdict::Pass,
        aborted_by: None,
        phases: vec![PhaseSummary::default()],
        thresholds: Vec::new(),
        findings: Vec::new(),
        details: Details::Load,
        windows: (0..300)
            .map(|i| Window {
                start: f64::from(i),
                seconds: 1.0,
                p95: 0.01 + f64::from(i % 7) * 1e-3,
                ..Window::default()
            })
            .collect(),
        memory: (0..600)
            .map(|i| MemPoint {
                t: f64::from(i),
                rss: 1e8 + f64::from(i) * 1e4,
                processes: 1,
                ..MemPoint::default()
            })
            .collect(),
        memory_process: Some("app".into()),
        baseline: None,
        comparisons: Vec::new(),
    }
}

/// Keeps at most `max` evenly spaced points (and always the last).
fn thin(points: Vec<MemPoint>, max: usize) -> Vec<MemPoint> {
    if points.len() <= max {
        return points;
    }
    let step = points.len().div_ceil(max);
    let last = *points.last().expect("non-empty");
    let mut out: Vec<MemPoint> = points.into_iter().step_by(step).collect();
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_400_000_123);
        assert_eq!(run_id("soak", at), "20261123T021320.123Z-soak");
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_782), (2024, 2, 29));
    }

    #[test]
    fn thinning_keeps_the_ends() {
        let pts: Vec<MemPoint> = (0..5000)
            .map(|i| MemPoint {
                t: f64::from(i),
                ..MemPoint::default()
            })
            .collect();
        let out = thin(pts, 2000);
        assert!(out.len() <= 2001);
        assert_eq!(out[0].t, 0.0);
        assert_eq!(out.last().unwrap().t, 4999.0);
    }
}
