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
use super::engine::{EntryStats, Model, ShardPlan, ShardReport};
use super::histogram::{Hist, Summary};
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
    /// Why the run is an error (a load thread died), if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub timeseries: Vec<Point>,
}

/// How a run ended: the one verdict of load runs and checks, stored and
/// exported as `pass`, `fail`, `aborted` or `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every threshold held.
    Pass,
    /// A threshold, memory rule or baseline comparison failed.
    Fail,
    /// Stopped by an abort rule, its time limit or Ctrl-C.
    Aborted,
    /// The load engine failed (a load thread died): nothing can be said of
    /// the service; never a pass, never a baseline.
    Error,
}

impl Verdict {
    pub(crate) const ALL: [Verdict; 4] = [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Aborted,
        Verdict::Error,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Aborted => "aborted",
            Verdict::Error => "error",
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
    let mut died = start_shards(workload, profile, &tx, &stop);
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
    let mut windows: Vec<Option<WindowRing>> = trackers
        .iter()
        .map(|t| t.rule.over.map(WindowRing::new))
        .collect();
    let mut aborts: Vec<Abort> = workload.aborts.iter().cloned().map(Abort::new).collect();
    let mut agg = Aggregator {
        threads: workload.threads,
        pending: BTreeMap::new(),
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
            ShardReport::Died { shard, reason } => {
                // The others stop too: this run can no longer say anything.
                tracing::error!(check = %workload.check, shard, %reason, "a load thread died");
                died.get_or_insert(format!("load thread {shard} died: {reason}"));
                stop.store(true, Ordering::Relaxed);
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
        for (t, w) in trackers.iter_mut().zip(windows.iter_mut()) {
            let Some(w) = w else { continue };
            if let Some(full) = w.push(&select(&t.rule, &names, &entries, false), target) {
                full.judge(t);
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
    let stopped_early = aborted_by.is_some() || interrupted || ended || died.is_some();
    let elapsed = if stopped_early {
        started.elapsed().as_secs_f64()
    } else {
        profile.duration().as_secs_f64()
    };
    let end = End {
        elapsed,
        aborted_by,
        interrupted,
        died,
    };
    result(workload, profile, agg, &trackers, end)
}

/// How the run ended, for [`result`].
struct End {
    elapsed: f64,
    aborted_by: Option<String>,
    interrupted: bool,
    /// Why a load thread died, if one did.
    died: Option<String>,
}

/// Starts one thread per shard. A shard that panics reports
/// [`ShardReport::Died`]; returns why, if a thread could not even start.
fn start_shards(
    workload: &Workload,
    profile: &Profile,
    tx: &mpsc::UnboundedSender<ShardReport>,
    stop: &Arc<AtomicBool>,
) -> Option<String> {
    let shard_fn = workload.engine;
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
            max_rate: workload.max_rate / workload.threads as f64,
            request_timeout: workload.request_timeout,
            seed: 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        };
        let (tx, stop_shard) = (tx.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("sidewatch-load-{i}"))
            .spawn(move || {
                let report = tx.clone();
                let run = std::panic::AssertUnwindSafe(|| shard_fn(shard, tx, stop_shard));
                if let Err(panic) = std::panic::catch_unwind(run) {
                    let reason = panic_text(panic.as_ref());
                    let _ = report.send(ShardReport::Died { shard: i, reason });
                }
            });
        if let Err(e) = spawned {
            stop.store(true, Ordering::Relaxed);
            return Some(format!("cannot start load thread {i}: {e}"));
        }
    }
    None
}

/// A panic's message, when it has one.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_string(),
        (_, Some(s)) => s.clone(),
        _ => "panicked".to_string(),
    }
}

/// Slots a sliding window keeps, whatever its length: the window's memory
/// does not grow with `over D`, and it slides by D/60.
const WINDOW_SLOTS: u32 = 60;

/// One slot of a [`WindowRing`]: what a threshold reads, summed.
#[derive(Clone, Debug)]
struct WindowSlot {
    requests: u64,
    errors: u64,
    dropped: u64,
    latency: Hist,
    /// Sum of the per-second targets: 0 when nothing was meant to be sent.
    target: f64,
    seconds: u32,
}

impl WindowSlot {
    fn new() -> WindowSlot {
        WindowSlot {
            requests: 0,
            errors: 0,
            dropped: 0,
            latency: Hist::coarse(),
            target: 0.0,
            seconds: 0,
        }
    }

    fn add(&mut self, o: &WindowSlot) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.dropped += o.dropped;
        self.latency.add(&o.latency);
        self.target += o.target;
        self.seconds += o.seconds;
    }

    /// Judges a full window; one in which nothing was meant to be sent
    /// (a 0/s stage) has nothing to judge. One in which something was meant
    /// to be sent but nothing completed fails as `no data`.
    fn judge(&self, t: &mut Tracker) {
        if self.target <= 0.0 {
            return;
        }
        t.window(&Stats {
            requests: self.requests,
            errors: self.errors,
            dropped: self.dropped,
            seconds: f64::from(self.seconds),
            latency: &self.latency,
        });
    }
}

/// A threshold's sliding `over D` window: at most [`WINDOW_SLOTS`] slots of
/// `width` seconds, so its memory is independent of D. D is rounded up to
/// whole slots (at most D/60 longer); the window is judged each time a slot
/// fills, once it spans D.
#[derive(Debug)]
struct WindowRing {
    width: u32,
    slots: usize,
    full: VecDeque<WindowSlot>,
    open: WindowSlot,
}

impl WindowRing {
    fn new(over: std::time::Duration) -> WindowRing {
        let secs = over.as_secs().clamp(1, u64::from(u32::MAX)) as u32;
        let width = secs.div_ceil(WINDOW_SLOTS);
        WindowRing {
            width,
            slots: secs.div_ceil(width) as usize,
            full: VecDeque::new(),
            open: WindowSlot::new(),
        }
    }

    /// Adds one second; returns the whole window when a slot fills and the
    /// window spans its length.
    fn push(&mut self, e: &EntryStats, target: f64) -> Option<WindowSlot> {
        let o = &mut self.open;
        o.requests += e.requests;
        o.errors += e.errors();
        o.dropped += e.dropped;
        o.latency.add(&e.latency);
        o.target += target;
        o.seconds += 1;
        if o.seconds < self.width {
            return None;
        }
        let slot = std::mem::replace(&mut self.open, WindowSlot::new());
        self.full.push_back(slot);
        while self.full.len() > self.slots {
            self.full.pop_front();
        }
        if self.full.len() < self.slots {
            return None;
        }
        let mut all = WindowSlot::new();
        for s in &self.full {
            all.add(s);
        }
        Some(all)
    }

    /// Histograms held.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.full.len() + 1
    }
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
}

fn result(
    workload: &Workload,
    profile: &Profile,
    agg: Aggregator,
    trackers: &[Tracker],
    end: End,
) -> LoadResult {
    let End {
        elapsed,
        aborted_by,
        interrupted,
        died,
    } = end;
    let names = &workload.names();
    let all = merge_all(&agg.total, true);
    let thresholds: Vec<ThresholdResult> = trackers
        .iter()
        .map(|t| {
            let e = select(&t.rule, names, &agg.total, true);
            t.finish(&stats(&e, elapsed))
        })
        .collect();
    let verdict = if died.is_some() {
        Verdict::Error
    } else if aborted_by.is_some() || interrupted {
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
        aborted_by: aborted_by
            .or_else(|| interrupted.then(|| "interrupted (SIGINT or SIGTERM)".to_string())),
        error: died,
        timeseries: agg.timeseries,
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan::tests::compile_in;
    use super::*;
    use crate::load::engine::ShardFn;
    use crate::load::{Guardrails, LoadPlan};

    /// The plan of a one-check config's `load`, one whole shard.
    fn plan(load: &str, thresholds: &[&str]) -> LoadPlan {
        let list: Vec<String> = thresholds.iter().map(|t| format!("'{t}'")).collect();
        let yaml = format!(
            "checks: [{{name: c, load: {{{load}, mix: [{{name: api, http: {{url: 'http://127.0.0.1:9/'}}}}]}}, thresholds: [{}]}}]",
            list.join(", ")
        );
        let rails = Guardrails {
            max_rate: 1000.0,
            allow_hosts: Default::default(),
            shard: (0, 1),
            time_scale: 1.0,
        };
        let (plan, problems) = compile_in(&yaml, LoadPlan::build, &rails);
        assert!(problems.is_empty(), "{problems:?}");
        plan.unwrap()
    }

    fn dies(_: ShardPlan, _: mpsc::UnboundedSender<ShardReport>, _: Arc<AtomicBool>) {
        panic!("a shard died");
    }

    /// Sends its seconds until told to stop, with one quick request each.
    fn healthy(plan: ShardPlan, tx: mpsc::UnboundedSender<ShardReport>, stop: Arc<AtomicBool>) {
        let secs = plan.profile.duration().as_secs() as u32;
        let mut all = EntryStats::new(true);
        for index in 0..secs {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let mut one = EntryStats::new(false);
            one.record(
                std::time::Duration::from_millis(1),
                std::time::Duration::from_millis(1),
                None,
            );
            all.add(&one);
            let _ = tx.send(ShardReport::Second {
                index,
                entries: vec![one],
                active: 1,
            });
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = tx.send(ShardReport::Done { entries: vec![all] });
    }

    async fn drive(p: &LoadPlan, engine: ShardFn) -> LoadResult {
        let profile = p.profile.as_ref().unwrap();
        let workload = Workload {
            engine,
            ..p.workload.clone()
        };
        run(
            &workload,
            profile,
            None,
            &mut Quiet,
            CancellationToken::new(),
        )
        .await
    }

    #[tokio::test]
    async fn a_dead_shard_is_never_a_pass() {
        let p = plan("rate: 10/s, duration: 3s", &[]);
        let r = drive(&p, dies).await;
        assert_ne!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.verdict, Verdict::Error);
        let error = r.error.unwrap_or_default();
        assert!(
            error.contains("load thread 0 died: a shard died"),
            "{error}"
        );
        // The healthy stand-in passes, so the test above can only fail
        // on the dead shard.
        let r = drive(&p, healthy).await;
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.requests, 3);
    }

    #[test]
    fn a_long_window_holds_a_bounded_number_of_histograms() {
        let mut ring = WindowRing::new(std::time::Duration::from_secs(3600));
        let mut second = EntryStats::new(false);
        second.record(
            std::time::Duration::from_millis(3),
            std::time::Duration::from_millis(3),
            None,
        );
        let mut judged = Vec::new();
        for i in 1..=7200u32 {
            if let Some(w) = ring.push(&second, 1.0) {
                judged.push((i, w.requests, w.seconds));
            }
        }
        let held = ring.held();
        assert!(held <= 64, "{held} histograms held for a 1 h window");
        // Every window spans the hour; they slide by a minute.
        assert_eq!(judged.len(), 61);
        assert_eq!(judged[0], (3600, 3600, 3600));
        assert_eq!(judged[60], (7200, 3600, 3600));
        // Short windows still slide by the second.
        let mut ring = WindowRing::new(std::time::Duration::from_secs(10));
        let n = (0..20)
            .filter(|_| ring.push(&second, 1.0).is_some())
            .count();
        assert_eq!(n, 11);
    }

    #[test]
    fn a_window_with_nothing_completed_fails_unless_nothing_was_due() {
        let rule = Rule::parse("p95 < 1s over 2s").unwrap();
        let idle = EntryStats::new(false);
        for (target, passes) in [(5.0, false), (0.0, true)] {
            let mut t = Tracker::new(rule.clone());
            let mut ring = WindowRing::new(std::time::Duration::from_secs(2));
            for _ in 0..4 {
                if let Some(w) = ring.push(&idle, target) {
                    w.judge(&mut t);
                }
            }
            let mut done = Hist::precise();
            done.record(1000);
            let whole = Stats {
                requests: 1,
                errors: 0,
                dropped: 0,
                seconds: 4.0,
                latency: &done,
            };
            assert_eq!(t.finish(&whole).passed, passes, "target {target}");
        }
    }
}
