//! Check series: the last verdict of each check, its thresholds and
//! findings, regressions against the baseline, scenario figures, and the
//! leak detector's slope.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::check::result::{CheckResult, Details};
use crate::load::Verdict;
use crate::telemetry::labels::{CheckLabels, ProcessLabels};
use crate::telemetry::FloatGauge;

// `Verdict` has its own `Display`; it becomes a label value here, where it
// is exported.

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    check: String,
    verdict: Verdict,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThresholdLabels {
    check: String,
    threshold: String,
}

/// `metric` is a comparison's, as stored with the result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    check: String,
    metric: String,
}

crate::telemetry::families! {
    /// The `check_` families.
    #[derive(Debug, Default)]
    pub struct CheckFamilies {
        last_run: Family<CheckLabels, FloatGauge> => "last_run_timestamp_seconds", "Unix time the check's last run ended",
        last_passed: Family<CheckLabels, Gauge> => "last_passed", "Whether the check's last run passed (1) or failed, regressed or was aborted (0)",
        last_duration: Family<CheckLabels, FloatGauge> => "last_duration_seconds", "How long the check's last run took",
        next_run: Family<CheckLabels, FloatGauge> => "next_run_timestamp_seconds", "Unix time the check's schedule fires next",
        running: Family<CheckLabels, Gauge> => "running", "Whether the check is running now",
        runs: Family<VerdictLabels, Counter> => "runs", "Check runs finished, by verdict (pass, fail, aborted, error)",
        skipped: Family<CheckLabels, Counter> => "skipped", "Scheduled runs skipped because another check was running (overlap: skip)",
        store_failures: Family<CheckLabels, Counter> => "store_failures", "Check results that could not be written to the result store",
        threshold: Family<ThresholdLabels, Gauge> => "threshold_passed", "Whether each threshold and scenario finding held in the check's last run",
        regressions: Family<MetricLabels, Gauge> => "regressions", "Whether the metric regressed against the accepted baseline in the last run (1) or not (0)",
        recovery: Family<CheckLabels, FloatGauge> => "recovery_seconds", "Time a spike or breakpoint check took to recover, in its last run",
        sustainable: Family<CheckLabels, FloatGauge> => "max_sustainable_requests_per_second", "Highest rate a breakpoint check's last run held without breaking",
        /// Threshold labels set by each check's last run, to clear on the next.
        shown: Mutex<HashMap<String, Vec<ThresholdLabels>>>,
    }
}

impl CheckFamilies {
    fn configured(&self, check: &str) {
        let k = CheckLabels::new(check);
        let _ = self.running.get_or_create(&k);
        let _ = self.skipped.get_or_create(&k);
        let _ = self.store_failures.get_or_create(&k);
        for verdict in Verdict::ALL {
            let _ = self.runs.get_or_create(&VerdictLabels {
                check: check.to_string(),
                verdict,
            });
        }
    }

    /// Removes every series of a check that is no longer configured;
    /// `compared` names the metrics a baseline comparison may have set.
    fn remove(&self, check: &str, compared: &[&str]) {
        let k = CheckLabels::new(check);
        for f in [&self.last_run, &self.last_duration, &self.next_run]
            .into_iter()
            .chain([&self.recovery, &self.sustainable])
        {
            f.remove(&k);
        }
        for f in [&self.last_passed, &self.running] {
            f.remove(&k);
        }
        self.skipped.remove(&k);
        self.store_failures.remove(&k);
        for verdict in Verdict::ALL {
            let check = check.to_string();
            self.runs.remove(&VerdictLabels { check, verdict });
        }
        for metric in compared {
            let (check, metric) = (check.to_string(), metric.to_string());
            self.regressions.remove(&MetricLabels { check, metric });
        }
        let shown = self.shown.lock().expect("metrics lock").remove(check);
        for old in shown.unwrap_or_default() {
            self.threshold.remove(&old);
        }
    }

    fn finished(&self, r: &CheckResult) {
        let k = CheckLabels::new(&r.check);
        self.last_run
            .get_or_create(&k)
            .set(r.started_unix + r.duration_seconds);
        self.last_passed
            .get_or_create(&k)
            .set(i64::from(r.passed()));
        self.last_duration.get_or_create(&k).set(r.duration_seconds);
        self.runs
            .get_or_create(&VerdictLabels {
                check: r.check.clone(),
                verdict: r.verdict,
            })
            .inc();
        self.thresholds(r);
        for c in &r.comparisons {
            self.regressions
                .get_or_create(&MetricLabels {
                    check: r.check.clone(),
                    metric: c.metric.clone(),
                })
                .set(i64::from(c.regressed));
        }
        self.details(r, &k);
    }

    fn thresholds(&self, r: &CheckResult) {
        let mut shown = self.shown.lock().expect("metrics lock");
        for old in shown.remove(&r.check).unwrap_or_default() {
            self.threshold.remove(&old);
        }
        let items = r
            .thresholds
            .iter()
            .map(|t| (t.expr.clone(), t.passed))
            .chain(r.findings.iter().map(|f| (f.name.clone(), f.passed)));
        let mut now = Vec::new();
        for (name, passed) in items {
            let l = ThresholdLabels {
                check: r.check.clone(),
                threshold: name,
            };
            self.threshold.get_or_create(&l).set(i64::from(passed));
            now.push(l);
        }
        shown.insert(r.check.clone(), now);
    }

    /// The spike and breakpoint figures.
    fn details(&self, r: &CheckResult, k: &CheckLabels) {
        match &r.details {
            Details::Spike(s) => {
                self.recovery
                    .get_or_create(k)
                    .set(s.recovery_seconds.unwrap_or(f64::INFINITY));
            }
            Details::Breakpoint(b) => {
                if let Some(s) = b.recovery_seconds {
                    self.recovery.get_or_create(k).set(s);
                }
                self.sustainable
                    .get_or_create(k)
                    .set(b.max_sustainable_rate.unwrap_or(0.0));
            }
            _ => {}
        }
    }
}

crate::telemetry::families! {
    /// The leak detector's `leak_` families, by watched process group.
    #[derive(Debug, Default)]
    pub struct LeakFamilies {
        slope: Family<ProcessLabels, FloatGauge> => "rss_slope_bytes_per_second", "Theil-Sen slope of the service's lower-envelope RSS in the last leak or soak check",
        suspected: Family<ProcessLabels, Gauge> => "suspected", "Whether the last leak or soak check suspected a memory leak (significant slope above the floor)",
    }
}

impl LeakFamilies {
    /// Publishes the leak report of a leak or soak run, if it had enough
    /// windows to judge.
    fn finished(&self, r: &CheckResult) {
        let report = match &r.details {
            Details::Leak(l) => Some(l),
            Details::Soak(s) => s.memory.as_ref(),
            _ => None,
        };
        if let Some(l) = report.filter(|l| l.windows >= crate::check::leak::MIN_WINDOWS) {
            let p = ProcessLabels::new(&l.process);
            self.slope.get_or_create(&p).set(l.slope_bytes_per_second);
            self.suspected.get_or_create(&p).set(i64::from(l.suspected));
        }
    }
}

/// Every check family: the check's own and the leak detector's.
#[derive(Debug, Default)]
pub struct CheckMetrics {
    check: CheckFamilies,
    leak: LeakFamilies,
}

impl CheckMetrics {
    /// Joins the two groups, each registered in its own sub-registry.
    pub fn new(check: CheckFamilies, leak: LeakFamilies) -> CheckMetrics {
        CheckMetrics { check, leak }
    }

    pub fn running(&self, check: &str, on: bool) {
        self.check
            .running
            .get_or_create(&CheckLabels::new(check))
            .set(i64::from(on));
    }

    /// Starts a configured check's counters at zero, so `increase()` and
    /// "not run" alerts have a series before its first run.
    pub(crate) fn configured(&self, check: &str) {
        self.check.configured(check);
    }

    /// Removes the series of a check a reload took out (the leak series
    /// are by process group, not by check, and stay).
    pub(crate) fn remove(&self, check: &str, compared: &[&str]) {
        self.check.remove(check, compared);
    }

    /// Counts a result the store could not take.
    pub fn store_failed(&self, check: &str) {
        self.check
            .store_failures
            .get_or_create(&CheckLabels::new(check))
            .inc();
    }

    pub fn skipped(&self, check: &str) {
        self.check
            .skipped
            .get_or_create(&CheckLabels::new(check))
            .inc();
    }

    pub fn next_run(&self, check: &str, unix: Option<f64>) {
        let k = CheckLabels::new(check);
        match unix {
            Some(t) => {
                self.check.next_run.get_or_create(&k).set(t);
            }
            None => {
                self.check.next_run.remove(&k);
            }
        }
    }

    /// Publishes a finished run.
    pub fn finished(&self, r: &CheckResult) {
        self.check.finished(r);
        self.leak.finished(r);
    }
}
