//! Running a compiled check: watch the service, run the scenario, judge the
//! memory rules, and assemble the [`CheckResult`] that the baseline
//! comparison, the store and the reports take from there.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::check::memory;
use crate::check::result::{
    CheckResult, Details, Finding, MemPoint, PhaseSummary, ScenarioKind, Verdict, Window, FORMAT,
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
    // A load thread that died makes the run an error, whatever else it says.
    let error = legs.iter().find_map(|l| l.result.error.clone());
    if let Some(e) = &error {
        let limit = "every load thread runs to the end".to_string();
        findings.push(Finding::new("load engine", false, e.clone(), limit));
    }
    let aborted_by = if error.is_some() {
        None
    } else if timed_out {
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
        verdict: if error.is_some() {
            Verdict::Error
        } else if aborted_by.is_some() {
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

/// A run id: UTC time to the microsecond, a tag, then the check name, as
/// in `20261123T021320.123456Z-9e3779b9-soak`. Ids sort by time; the tag
/// keeps apart runs started in the same microsecond, in this process (a
/// counter) or in another one sharing the store, such as another shard
/// (each process starts its tags at a random point).
pub fn run_id(check: &str, at: SystemTime) -> String {
    tagged_id(check, at, unique_tag())
}

/// The id of a run started `at` with this tag.
fn tagged_id(check: &str, at: SystemTime, tag: u32) -> String {
    let us = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64;
    let (days, rem) = (us / 86_400_000_000, us % 86_400_000_000);
    let (y, m, d) = civil(days as i64);
    let secs = rem / 1_000_000;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:06}Z-{tag:08x}-{check}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        rem % 1_000_000
    )
}

/// A tag no other id of this process has (for 2^32 ids), starting at a
/// random point per process.
fn unique_tag() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        // RandomState's keys come from the OS's random source.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        h.finish() as u32
    });
    // An odd multiplier is a bijection on u32: distinct counts, distinct tags.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    start.wrapping_add(n.wrapping_mul(0x9e37_79b9))
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
pub fn synthetic(check: &str, n: u32) -> CheckResult {
    let started = 1_700_000_000.0 + f64::from(n);
    CheckResult {
        format: FORMAT,
        id: tagged_id(check, UNIX_EPOCH + Duration::from_secs_f64(started), n),
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
        let at = UNIX_EPOCH + Duration::from_micros(1_795_400_000_123_456);
        assert_eq!(
            tagged_id("soak", at, 0x9e37_79b9),
            "20261123T021320.123456Z-9e3779b9-soak"
        );
        let (a, b) = (run_id("soak", at), run_id("soak", at));
        assert_ne!(a, b, "one microsecond, two ids");
        assert!(a.starts_with("20261123T021320.123456Z-") && a.ends_with("-soak"));
        let later = run_id("soak", at + Duration::from_micros(1));
        assert!(later > a && later > b);
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
