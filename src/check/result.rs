//! The stored schema of a check run: [`CheckResult`] and every type it holds.
//! The store (`runs/CHECK/ID.json`), `check --json`, `baseline show --json`,
//! `report --input` and the reports all read and write these structs, and
//! only these; scenario code fills them, it does not define them.
//!
//! Types owned by the load engine are used as they are: a phase's latency is a
//! [`Summary`], a threshold's verdict a [`ThresholdResult`], the run's verdict
//! a [`Verdict`].
//!
//! # Changing the format
//!
//! Stored results are read back for months (a baseline is an old run), so a
//! change to anything this file serializes — a field renamed, removed, retyped
//! or given a new meaning — is a deliberate act: bump [`FORMAT`], keep reading
//! every older format (a `#[serde(default)]` for a new field, a conversion for
//! a changed one), and update the golden files in `tests/golden/`, which
//! `tests/result_format.rs` reads and writes back byte for byte.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::load::histogram::Summary;
use crate::load::thresholds::ThresholdResult;
pub(crate) use crate::load::Verdict;

/// The format new results are written in. A change to the stored format is
/// a deliberate act: bump this, keep reading every older format, and update
/// `tests/golden/` (see the module documentation). Results stored before
/// the field existed read as `0`, which has the same shape as `1`.
pub const FORMAT: u32 = 1;

/// Which scenario a check runs: the compiled plan's, the `kind` of a result,
/// of its `details` and of the store's index, all one name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScenarioKind {
    /// The check's `load` as written.
    Load,
    Soak,
    Spike,
    Breakpoint,
    Curve,
    Leak,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 6] = [
        ScenarioKind::Load,
        ScenarioKind::Soak,
        ScenarioKind::Spike,
        ScenarioKind::Breakpoint,
        ScenarioKind::Curve,
        ScenarioKind::Leak,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ScenarioKind::Load => "load",
            ScenarioKind::Soak => "soak",
            ScenarioKind::Spike => "spike",
            ScenarioKind::Breakpoint => "breakpoint",
            ScenarioKind::Curve => "curve",
            ScenarioKind::Leak => "leak",
        }
    }
}

crate::telemetry::str_label!(ScenarioKind);

/// Everything a check run produced; the JSON report and the stored record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckResult {
    /// The format this result is in ([`FORMAT`] when written now; `0` when
    /// stored before the field existed, and then written back without it).
    #[serde(default, skip_serializing_if = "is_unversioned")]
    pub format: u32,
    pub id: String,
    pub check: String,
    pub kind: ScenarioKind,
    pub(crate) started_unix: f64,
    pub duration_seconds: f64,
    /// `pass`, `fail`, `aborted` or `error`.
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

fn is_unversioned(format: &u32) -> bool {
    *format == 0
}

impl CheckResult {
    pub(crate) fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    pub(crate) fn regressions(&self) -> impl Iterator<Item = &Comparison> {
        self.comparisons.iter().filter(|c| c.regressed)
    }

    /// Re-derives the verdict after comparisons were added; an aborted or
    /// error run stays so.
    pub(crate) fn settle_verdict(&mut self) {
        if matches!(self.verdict, Verdict::Aborted | Verdict::Error) {
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
    pub(crate) fn peak_rss(&self) -> Option<f64> {
        self.memory
            .iter()
            .filter(|p| p.processes > 0)
            .map(|p| p.rss)
            .reduce(f64::max)
    }
}

/// A whole-phase load summary, owned so results can be read back.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PhaseSummary {
    pub(crate) name: String,
    pub(crate) executor: String,
    pub(crate) duration_seconds: f64,
    pub requests: u64,
    pub(crate) errors: u64,
    pub(crate) dropped: u64,
    pub(crate) target_rate: Option<f64>,
    pub(crate) achieved_rate: f64,
    pub error_rate: f64,
    pub(crate) errors_by_reason: BTreeMap<String, u64>,
    pub(crate) latency_seconds: Summary,
    pub(crate) service_time_seconds: Summary,
    pub(crate) aborted_by: Option<String>,
}

/// One verdict item a scenario or a memory rule adds beside the thresholds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    pub name: String,
    pub passed: bool,
    pub(crate) observed: String,
    pub(crate) limit: String,
}

impl Finding {
    pub(crate) fn new(name: &str, passed: bool, observed: String, limit: String) -> Finding {
        Finding {
            name: name.to_string(),
            passed,
            observed,
            limit,
        }
    }
}

/// One window of a run. Times are seconds from the start of the check.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Window {
    pub(crate) start: f64,
    pub(crate) seconds: f64,
    pub(crate) target_rate: f64,
    pub(crate) rate: f64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) dropped: u64,
    pub(crate) error_rate: f64,
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
}

/// One sample of the watched service. `t` is seconds from the start of the
/// check.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MemPoint {
    pub t: f64,
    pub(crate) rss: f64,
    pub(crate) cpu_seconds: f64,
    pub(crate) processes: u32,
    /// Start time of the newest process (clock ticks after boot): a change
    /// is a restart.
    pub(crate) start: u64,
}

/// One metric compared with the baseline; `metric` is the `metric` label of
/// `sidewatch_check_regressions`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Comparison {
    pub metric: String,
    pub(crate) baseline: f64,
    pub(crate) current: f64,
    /// Relative change (error rate: absolute points), signed so that
    /// positive is worse.
    pub worse_by: f64,
    pub(crate) tolerance: f64,
    pub(crate) p_value: f64,
    pub regressed: bool,
}

/// The scenario's own section of a result. On disk: `{"kind": KIND, ...the
/// report's fields}`, the kind being the [`ScenarioKind`] of the variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Details {
    Load,
    Soak(SoakReport),
    Spike(SpikeReport),
    Breakpoint(BreakpointReport),
    Curve(CurveReport),
    Leak(LeakReport),
}

impl Details {
    pub fn kind(&self) -> ScenarioKind {
        match self {
            Details::Load => ScenarioKind::Load,
            Details::Soak(_) => ScenarioKind::Soak,
            Details::Spike(_) => ScenarioKind::Spike,
            Details::Breakpoint(_) => ScenarioKind::Breakpoint,
            Details::Curve(_) => ScenarioKind::Curve,
            Details::Leak(_) => ScenarioKind::Leak,
        }
    }

    /// The leak analysis a soak or leak run made.
    pub fn leak(&self) -> Option<&LeakReport> {
        match self {
            Details::Leak(l) => Some(l),
            Details::Soak(s) => s.memory.as_ref(),
            _ => None,
        }
    }
}

impl Serialize for Details {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tagged<'a, T> {
            kind: ScenarioKind,
            #[serde(flatten)]
            report: &'a T,
        }
        fn tagged<S: Serializer, T: Serialize>(
            s: S,
            kind: ScenarioKind,
            report: &T,
        ) -> Result<S::Ok, S::Error> {
            Tagged { kind, report }.serialize(s)
        }
        let kind = self.kind();
        match self {
            Details::Load => tagged(s, kind, &()),
            Details::Soak(r) => tagged(s, kind, r),
            Details::Spike(r) => tagged(s, kind, r),
            Details::Breakpoint(r) => tagged(s, kind, r),
            Details::Curve(r) => tagged(s, kind, r),
            Details::Leak(r) => tagged(s, kind, r),
        }
    }
}

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Tagged {
            kind: ScenarioKind,
            #[serde(flatten)]
            report: serde_json::Map<String, serde_json::Value>,
        }
        fn report<T: DeserializeOwned>(
            fields: serde_json::Map<String, serde_json::Value>,
        ) -> Result<T, serde_json::Error> {
            serde_json::from_value(serde_json::Value::Object(fields))
        }
        let Tagged {
            kind,
            report: fields,
        } = Tagged::deserialize(d)?;
        match kind {
            ScenarioKind::Load => Ok(Details::Load),
            ScenarioKind::Soak => report(fields).map(Details::Soak),
            ScenarioKind::Spike => report(fields).map(Details::Spike),
            ScenarioKind::Breakpoint => report(fields).map(Details::Breakpoint),
            ScenarioKind::Curve => report(fields).map(Details::Curve),
            ScenarioKind::Leak => report(fields).map(Details::Leak),
        }
        .map_err(|e| D::Error::custom(format_args!("details of a {kind} run: {e}")))
    }
}

/// A soak's drift and error figures, and its memory trend.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SoakReport {
    pub(crate) windows: usize,
    pub(crate) compared: usize,
    pub(crate) first_p95: f64,
    pub(crate) last_p95: f64,
    pub(crate) drift_ratio: f64,
    pub(crate) drift_p_value: f64,
    pub(crate) worst_window_error_rate: f64,
    pub memory: Option<LeakReport>,
}

/// A spike's levels before and during the burst, and the recovery time.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SpikeReport {
    pub(crate) base_rate: f64,
    pub(crate) spike_rate: f64,
    pub(crate) pre_p95: f64,
    pub(crate) pre_error_rate: f64,
    pub spike_p95: f64,
    pub(crate) spike_error_rate: f64,
    pub(crate) spike_achieved_rate: f64,
    /// Seconds from the end of the burst; `None` if it never recovered.
    pub recovery_seconds: Option<f64>,
    /// Recovery is timed to the window: this many seconds.
    pub(crate) resolution_seconds: f64,
}

/// A breakpoint's steps up to the break, and the recovery after it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BreakpointReport {
    pub steps: Vec<StepRow>,
    pub max_sustainable_rate: Option<f64>,
    pub breaking_rate: Option<f64>,
    pub broken_by: Option<String>,
    /// Seconds after the load fell back; `None` if it did not recover (or
    /// never broke).
    pub recovery_seconds: Option<f64>,
    pub(crate) resolution_seconds: f64,
}

/// One step of a breakpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StepRow {
    pub(crate) target_rate: f64,
    pub(crate) rate: f64,
    pub(crate) p95: f64,
    pub(crate) error_rate: f64,
    pub(crate) dropped_ratio: f64,
    pub(crate) broke: Option<String>,
}

/// A load curve: one row per level.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CurveReport {
    pub levels: Vec<Level>,
}

/// One level of a curve, measured after its settling time.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Level {
    pub target_rate: f64,
    pub rate: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub(crate) error_rate: f64,
    pub(crate) dropped: u64,
    pub cpu_cores: Option<f64>,
    pub rss_bytes: Option<f64>,
}

/// The leak test's verdict on the service's RSS (a leak run, a soak's
/// memory section).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LeakReport {
    pub(crate) process: String,
    pub windows: usize,
    pub slope_bytes_per_second: f64,
    pub(crate) slope_low: f64,
    pub(crate) slope_high: f64,
    pub(crate) recent_slope_bytes_per_second: f64,
    pub p_value: f64,
    pub level_shifts: usize,
    pub(crate) restarts: usize,
    /// Lowest RSS of the last window minus that of the first (raw).
    pub(crate) growth_bytes: f64,
    pub(crate) max_rss_bytes: f64,
    pub suspected: bool,
    pub reason: String,
    /// (window middle, window minimum, shift-adjusted minimum) for plots.
    pub minima: Vec<(f64, f64, f64)>,
    /// The fitted line on the adjusted minima: rss = intercept + slope·t.
    pub(crate) intercept: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_serializes_as_its_name() {
        for k in ScenarioKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(
                serde_json::from_value::<ScenarioKind>(k.as_str().into()).unwrap(),
                k
            );
        }
    }

    #[test]
    fn details_are_tagged_with_their_kind() {
        let all = [
            Details::Load,
            Details::Soak(SoakReport::default()),
            Details::Spike(SpikeReport::default()),
            Details::Breakpoint(BreakpointReport::default()),
            Details::Curve(CurveReport::default()),
            Details::Leak(LeakReport::default()),
        ];
        for d in all {
            let v = serde_json::to_value(&d).unwrap();
            assert_eq!(v["kind"], d.kind().as_str(), "{v}");
            assert_eq!(serde_json::from_value::<Details>(v).unwrap(), d);
        }
        assert_eq!(
            serde_json::to_string(&Details::Load).unwrap(),
            r#"{"kind":"load"}"#
        );
        let wrong = serde_json::json!({"kind": "soak", "windows": "many"});
        let err = serde_json::from_value::<Details>(wrong).unwrap_err();
        assert!(err.to_string().contains("details of a soak run"), "{err}");
    }
}
