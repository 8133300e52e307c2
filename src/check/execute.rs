//! Running a compiled check: watch the service, run the scenario, judge the
//! memory rules, and assemble the [`CheckResult`] that the baseline
//! comparison, the store and the reports take from there.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::check::memory;
use crate::check::result::{
    CheckResult, Details, MemPoint, PhaseSummary, ScenarioKind, Verdict, Window, FORMAT,
};
use crate::check::scenario::{Leg, Run};
use crate::check::timeline::ratio;
use crate::check::watch::Watch;
use crate::check::CheckPlan;
use crate::load::metrics::LoadMetrics;
use crate::load::Progress;

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
        legs: Vec::new(),
        windows: Vec::new(),
    };
    let (details, mut findings) = plan.scenario.run(&mut run).await;
    limit.abort();
    let timed_out = token.is_cancelled() && !cancel.is_cancelled();
    let stopped = run.stopped();
    let (legs, windows) = (run.legs, run.windows);
    let samples = watch.map(Watch::stop).unwrap_or_default();
    findings.extend(memory::judge(&plan.memory_rules, &samples, &details));
    let aborted_by = if timed_out {
        Some(format!(
            "max_duration {} reached",
            crate::units::human_duration(plan.max_duration)
        ))
    } else if stopped {
        legs.iter()
            .find_map(|l| l.result.aborted_by.clone())
            .or_else(|| Some("cancelled".into()))
    } else {
        None
    };
    let mut result = CheckResult {
        format: FORMAT,
        id: run_id(&plan.name, started),
        check: plan.name.clone(),
        kind: plan.kind(),
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
        thresholds: legs
            .iter()
            .flat_map(|l| l.result.thresholds.iter().cloned())
            .collect(),
        phases: legs.iter().map(summary).collect(),
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

/// A leg's whole-phase summary, as the result keeps it.
fn summary(leg: &Leg) -> PhaseSummary {
    let r = &leg.result;
    PhaseSummary {
        name: leg.name.clone(),
        executor: r.executor.clone(),
        duration_seconds: r.duration_seconds,
        requests: r.requests,
        errors: r.errors,
        dropped: r.dropped,
        target_rate: r.target_rate,
        achieved_rate: r.achieved_rate,
        error_rate: ratio(r.errors, r.requests),
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

/// A run id: UTC time to the millisecond, then the check name.
pub(crate) fn run_id(check: &str, at: SystemTime) -> String {
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
pub(crate) fn civil(z: i64) -> (i64, u32, u32) {
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

/// A made-up result with a few hundred windows and samples, for the
/// store's crash test.
pub(crate) fn synthetic(check: &str, n: u32) -> CheckResult {
    let started = 1_700_000_000.0 + f64::from(n);
    CheckResult {
        format: FORMAT,
        id: format!(
            "{}-{n:06}",
            run_id(check, UNIX_EPOCH + Duration::from_secs_f64(started))
        ),
        check: check.into(),
        kind: ScenarioKind::Load,
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
