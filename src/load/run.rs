//! The coordinator: starts the shards, merges their per-second reports,
//! evaluates sliding threshold windows and abort rules, feeds the observer,
//! progress and metrics, and builds the [`LoadResult`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::arrival::{self, Profile};
use super::engine::{self, EntryStats, Model, ShardPlan, ShardReport};
use super::histogram::Summary;
use super::metrics::LoadMetrics;
use super::plan::Workload;
use super::thresholds::{Abort, Rule, Stats, ThresholdResult, Tracker};
use crate::net::Reason;

/// One second of the run, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub second: u32,
    pub requests: u64,
    pub rate: f64,
    pub(crate) errors: u64,
    pub(crate) dropped: u64,
    pub(crate) p95_seconds: f64,
    pub(crate) target: f64,
}

/// Per-entry results.
#[derive(Clone, Debug, Serialize)]
pub struct EntryResult {
    pub(crate) name: String,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) dropped: u64,
    pub(crate) latency_seconds: Summary,
    pub(crate) service_time_seconds: Summary,
}

/// The result of a run; `--json` writes it.
#[derive(Clone, Debug, Serialize)]
pub struct LoadResult {
    pub(crate) check: String,
    pub executor: String,
    pub target_rate: Option<f64>,
    pub achieved_rate: f64,
    pub(crate) duration_seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub errors_by_reason: BTreeMap<&'static str, u64>,
    pub dropped: u64,
    pub(crate) latency_seconds: Summary,
    pub(crate) service_time_seconds: Summary,
    pub entries: Vec<EntryResult>,
    pub thresholds: Vec<ThresholdResult>,
    pub verdict: Verdict,
    pub aborted_by: Option<String>,
    pub timeseries: Vec<Point>,
}

/// How a run ended: the one verdict of load runs and checks, stored and
/// exported as `pass`, `fail` or `aborted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every threshold held.
    Pass,
    /// A threshold, memory rule or baseline comparison failed.
    Fail,
    /// Stopped by an abort rule, its time limit or Ctrl-C.
    Aborted,
}

impl Verdict {
    pub(crate) const ALL: [Verdict; 3] = [Verdict::Pass, Verdict::Fail, Verdict::Aborted];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Aborted => "aborted",
        }
    }
}

crate::telemetry::str_label!(Verdict);

/// Sees every merged second of a run; scenarios cut them into windows
/// and segments, and may end the run early (a breakpoint that broke).
pub trait Observer: Send {
    /// Second `index` (from 0) with its target and all entries merged.
    /// Returns true to end the run; that is not an abort.
    fn second(&mut self, index: u32, target: f64, all: &EntryStats) -> bool;
}

impl Observer for () {
    fn second(&mut self, _: u32, _: f64, _: &EntryStats) -> bool {
        false
    }
}

/// Live progress, once a second.
pub trait Progress: Send {
    fn second(&mut self, elapsed: u32, total: u32, point: &Point);
    fn finish(&mut self);
}

/// No output, for runs inside the sidecar.
pub struct Quiet;

impl Progress for Quiet {
    fn second(&mut self, _: u32, _: u32, _: &Point) {}
    fn finish(&mut self) {}
}

/// Merges the shards' per-second reports.
struct Aggregator {
    threads: usize,
    pending: BTreeMap<u32, (usize, Vec<EntryStats>, usize)>,
    window: VecDeque<Vec<EntryStats>>,
    window_len: usize,
    timeseries: Vec<Point>,
    total: Vec<EntryStats>,
}

fn merge_all(entries: &[EntryStats], precise: bool) -> EntryStats {
    let mut all = EntryStats::new(precise);
    for e in entries {
        all.add(e);
    }
    all
}

fn stats<'a>(e: &'a EntryStats, seconds: f64) -> Stats<'a> {
    Stats {
        requests: e.requests,
        errors: e.errors(),
        dropped: e.dropped,
        seconds,
        latency: &e.latency,
    }
}

/// The entry a rule is about, or all entries merged.
fn select(rule: &Rule, names: &[String], entries: &[EntryStats], precise: bool) -> EntryStats {
    match &rule.entry {
        Some(name) => {
            let i = names
                .iter()
                .position(|n| n == name)
                .expect("validated entry name");
            entries[i].clone()
        }
        None => merge_all(entries, precise),
    }
}

/// Drives `workload` through `profile` to its end, an abort rule, or
/// `cancel` (SIGINT).
pub async fn run(
    workload: &Workload,
    profile: &Profile,
    metrics: Option<&LoadMetrics>,
    progress: &mut dyn Progress,
    cancel: CancellationToken,
) -> LoadResult {
    run_observed(workload, profile, metrics, progress, cancel, &mut ()).await
}

/// Sets the engine's stop flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// [`run`], showing every second to `observer`.
pub async fn run_observed(
    workload: &Workload,
    profile: &Profile,
    metrics: Option<&LoadMetrics>,
    progress: &mut dyn Progress,
    cancel: CancellationToken,
    observer: &mut dyn Observer,
) -> LoadResult {
    let names = workload.names();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    // A run whose future is dropped (its task aborted) stops its threads.
    let _stop_on_drop = StopOnDrop(stop.clone());
    let started = Instant::now();
    let share = 1.0 / workload.threads as f64;
    for i in 0..workload.threads {
        let shard = ShardPlan {
            model: workload.model,
            profile: match workload.model {
                Model::Rate => profile.scaled(share),
                Model::Users => split_users(profile, workload.threads, i),
            },
            mix: workload.mix.clone(),
            max_connections: workload.max_connections.div_ceil(workload.threads),
            request_timeout: workload.request_timeout,
            seed: 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        };
        let (tx, stop) = (tx.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("sidewatch-load-{i}"))
            .spawn(move || engine::run(shard, tx, stop))
            .expect("spawn a load thread");
    }
    drop(tx);
    if let Some(m) = metrics {
        m.start(&workload.check);
    }
    let mut trackers: Vec<Tracker> = workload
        .thresholds
        .iter()
        .cloned()
        .map(Tracker::new)
        .collect();
    let mut aborts: Vec<Abort> = workload.aborts.iter().cloned().map(Abort::new).collect();
    let mut agg = Aggregator {
        threads: workload.threads,
        pending: BTreeMap::new(),
        window: VecDeque::new(),
        window_len: window(workload),
        timeseries: Vec::new(),
        total: vec![EntryStats::new(true); names.len()],
    };
    let total_secs = profile.duration().as_secs_f64().ceil() as u32;
    let mut aborted_by = None;
    let mut interrupted = false;
    let mut ended = false;
    loop {
        let msg = tokio::select! {
            _ = cancel.cancelled(), if !interrupted => {
                interrupted = true;
                stop.store(true, Ordering::Relaxed);
                continue;
            }
            msg = rx.recv() => msg,
        };
        let Some(msg) = msg else { break };
        let (index, entries, active) = match msg {
            ShardReport::Done { entries } => {
                for (t, e) in agg.total.iter_mut().zip(&entries) {
                    t.add(e);
                }
                continue;
            }
            ShardReport::Second {
                index,
                entries,
                active,
            } => (index, entries, active),
        };
        let Some((entries, active)) = agg.collect(index, entries, active) else {
            continue;
        };
        // The closing report of a run that ended on a second boundary is empty.
        if index >= total_secs && entries.iter().all(|e| e.requests == 0 && e.dropped == 0) {
            continue;
        }
        let target = profile.at(f64::from(index) + 0.5);
        let point = agg.point(index, &entries, target);
        if !ended && observer.second(index, target, &merge_all(&entries, false)) {
            ended = true;
            stop.store(true, Ordering::Relaxed);
        }
        if let Some(m) = metrics {
            m.second(&workload.check, &names, &entries, target, active);
        }
        agg.push_window(entries.clone());
        for t in trackers.iter_mut() {
            // A window is judged once it is full.
            let Some(secs) = t.rule.over.map(|d| d.as_secs().max(1) as usize) else {
                continue;
            };
            if agg.window.len() >= secs {
                let recent = agg.window_merged_last(names.len(), secs);
                let e = select(&t.rule, &names, &recent, false);
                t.window(&stats(&e, secs as f64));
            }
        }
        if aborted_by.is_none() {
            for a in aborts.iter_mut() {
                let e = select(&a.rule, &names, &entries, false);
                if a.second(&stats(&e, 1.0)) {
                    aborted_by = Some(a.rule.expr.clone());
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        progress.second(index + 1, total_secs, &point);
    }
    progress.finish();
    if let Some(m) = metrics {
        m.finish(&workload.check);
    }
    // A run that went the distance is measured over its schedule; the drain
    // after the last start is not sending time.
    let stopped_early = aborted_by.is_some() || interrupted || ended;
    let elapsed = if stopped_early {
        started.elapsed().as_secs_f64()
    } else {
        profile.duration().as_secs_f64()
    };
    result(
        workload,
        profile,
        agg,
        &trackers,
        elapsed,
        aborted_by,
        interrupted,
    )
}

/// The longest sliding window any threshold uses.
fn window(workload: &Workload) -> usize {
    workload
        .thresholds
        .iter()
        .filter_map(|r| r.over)
        .map(|d| d.as_secs() as usize)
        .max()
        .unwrap_or(0)
}

/// Users of a closed-model profile split over threads, remainders first.
fn split_users(p: &Profile, threads: usize, i: usize) -> Profile {
    let part = |n: f64| {
        let base = (n / threads as f64).floor();
        let extra = if (i as f64) < n - base * threads as f64 {
            1.0
        } else {
            0.0
        };
        base + extra
    };
    Profile {
        start: part(p.start.round()),
        stages: p
            .stages
            .iter()
            .map(|s| arrival::Stage {
                duration: s.duration,
                target: part(s.target.round()),
            })
            .collect(),
    }
}

impl Aggregator {
    /// Adds a shard's second; returns the merged second once every shard
    /// has reported it.
    fn collect(
        &mut self,
        index: u32,
        entries: Vec<EntryStats>,
        active: usize,
    ) -> Option<(Vec<EntryStats>, usize)> {
        let slot = self
            .pending
            .entry(index)
            .or_insert_with(|| (0, vec![EntryStats::new(false); entries.len()], 0));
        slot.0 += 1;
        slot.2 += active;
        for (a, b) in slot.1.iter_mut().zip(&entries) {
            a.add(b);
        }
        if slot.0 < self.threads {
            return None;
        }
        self.pending.remove(&index).map(|(_, e, a)| (e, a))
    }

    fn point(&mut self, index: u32, entries: &[EntryStats], target: f64) -> Point {
        let all = merge_all(entries, false);
        let p = Point {
            second: index + 1,
            requests: all.requests,
            rate: all.requests as f64,
            errors: all.errors(),
            dropped: all.dropped,
            p95_seconds: all.latency.quantile(0.95),
            target,
        };
        self.timeseries.push(p.clone());
        p
    }

    fn push_window(&mut self, entries: Vec<EntryStats>) {
        if self.window_len == 0 {
            return;
        }
        self.window.push_back(entries);
        while self.window.len() > self.window_len {
            self.window.pop_front();
        }
    }

    fn window_merged_last(&self, n: usize, secs: usize) -> Vec<EntryStats> {
        let mut out = vec![EntryStats::new(false); n];
        for second in self.window.iter().rev().take(secs) {
            for (a, b) in out.iter_mut().zip(second) {
                a.add(b);
            }
        }
        out
    }
}

fn result(
    workload: &Workload,
    profile: &Profile,
    agg: Aggregator,
    trackers: &[Tracker],
    elapsed: f64,
    aborted_by: Option<String>,
    interrupted: bool,
) -> LoadResult {
    let names = &workload.names();
    let all = merge_all(&agg.total, true);
    let thresholds: Vec<ThresholdResult> = trackers
        .iter()
        .map(|t| {
            let e = select(&t.rule, names, &agg.total, true);
            t.finish(&stats(&e, elapsed))
        })
        .collect();
    let verdict = if aborted_by.is_some() || interrupted {
        Verdict::Aborted
    } else if thresholds.iter().all(|t| t.passed) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let errors_by_reason = Reason::ALL
        .iter()
        .zip(all.errors)
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (r.as_str(), n))
        .collect();
    let entries = names
        .iter()
        .zip(&agg.total)
        .map(|(name, e)| EntryResult {
            name: name.clone(),
            requests: e.requests,
            errors: e.errors(),
            dropped: e.dropped,
            latency_seconds: e.latency.summary(),
            service_time_seconds: e.service.summary(),
        })
        .collect();
    LoadResult {
        check: workload.check.clone(),
        executor: workload.describe(profile),
        target_rate: (workload.model == Model::Rate)
            .then(|| profile.total() / profile.duration().as_secs_f64()),
        achieved_rate: if elapsed > 0.0 {
            all.requests as f64 / elapsed
        } else {
            0.0
        },
        duration_seconds: elapsed,
        requests: all.requests,
        errors: all.errors(),
        errors_by_reason,
        dropped: all.dropped,
        latency_seconds: all.latency.summary(),
        service_time_seconds: all.service.summary(),
        entries,
        thresholds,
        verdict,
        aborted_by: aborted_by.or_else(|| interrupted.then(|| "interrupted (SIGINT)".to_string())),
        timeseries: agg.timeseries,
    }
}
