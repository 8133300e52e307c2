//! Checks inside the sidecar: cron schedules, one check at a time (the
//! probes keep running), trigger and cancel from the control API, and the
//! end of every run: baseline comparison, the store, and the series.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::Serialize;
use tokio::sync::OwnedMutexGuard;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::check::baseline::regression::{compare, METRICS};
use crate::check::baseline::store::Store;
use crate::check::execute::execute;
use crate::check::metrics::CheckMetrics;
use crate::check::result::{CheckResult, Finding, ScenarioKind, Verdict};
use crate::check::CheckPlan;
use crate::config::Overlap;
use crate::load::metrics::LoadMetrics;
use crate::load::Quiet;

/// Parses a 5-field (or 6 with seconds) cron expression.
pub(crate) fn parse_cron(s: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(s)
        .map_err(|e| format!("`{s}` is not a cron schedule: {e}"))
}

/// The first slot of `cron` after `now` and after the slot fired last
/// (UTC): a wall clock stepped back, or a wait that ended a moment before
/// its slot, never fires a slot twice.
pub(crate) fn next_slot(
    cron: &Cron,
    now: DateTime<Utc>,
    fired: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let from = fired.map_or(now, |f| f.max(now));
    cron.find_next_occurrence(&from, false).ok()
}

/// Compares with the baseline, stores the run, accepts it if configured
/// (or if the check has no baseline yet). A baseline that is recorded but
/// cannot be read fails the run with a `baseline` finding and is logged;
/// it is never replaced. Returns why the run could not be stored, if it
/// could not: the verdict stands, the caller reports it.
pub fn conclude(r: &mut CheckResult, plan: &CheckPlan, store: Option<&Store>) -> Option<String> {
    let store = store?;
    let mut accept = false;
    if let Some(tol) = &plan.baseline {
        match store.baseline(&r.check) {
            Ok(Some(base)) => {
                // An aborted run is partial, and one whose load thread died
                // is an engine failure: neither is data to compare.
                if !matches!(r.verdict, Verdict::Aborted | Verdict::Error) {
                    r.comparisons = compare(r, &base, tol);
                }
                r.baseline = Some(base.id);
                r.settle_verdict();
                accept = tol.auto_accept && r.passed();
            }
            // The first passing run becomes the baseline.
            Ok(None) => accept = r.passed(),
            Err(e) => {
                tracing::error!(check = %r.check, error = %e, "cannot compare with the baseline");
                let limit = "a readable baseline (baseline accept RUN, or reset)";
                r.findings
                    .push(Finding::new("baseline", false, e, limit.into()));
                r.settle_verdict();
            }
        }
    }
    store.save(r, accept).err()
}

/// Where a check stands, as the control API shows it (`state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RunState {
    /// Not running, nor waiting to.
    #[default]
    Idle,
    /// Its schedule fired while another check ran (`overlap: queue`).
    Queued,
    Running,
    /// Only in the answer to a cancel: the run was told to stop. It shows
    /// as `running` until it has written its result.
    Cancelling,
}

/// A check's state as `GET /api/v1/checks` shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct CheckStatus {
    pub(crate) name: String,
    pub(crate) kind: ScenarioKind,
    pub(crate) schedule: Option<String>,
    pub(crate) state: RunState,
    pub(crate) next_run_unix: Option<f64>,
    pub(crate) last: Option<LastRun>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct LastRun {
    pub(crate) id: String,
    pub(crate) verdict: Verdict,
    pub(crate) started_unix: f64,
    pub(crate) duration_seconds: f64,
    pub(crate) regressions: Vec<String>,
}

/// Why a trigger or cancel was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    Unknown,
    Busy(String),
    NotRunning,
}

/// What a config installed: replaced as a whole on reload. A run keeps the
/// `Arc` it started with, so it finishes under its own plan.
#[derive(Default)]
struct Installed {
    plans: Vec<CheckPlan>,
    store: Option<Arc<Store>>,
    /// The bearer token of the control API; `None` turns the API off.
    token: Option<String>,
}

/// What is happening now: what the API shows and who runs.
#[derive(Default)]
struct Live {
    status: BTreeMap<String, CheckStatus>,
    /// The running check and its cancel token.
    running: Option<(String, CancellationToken)>,
}

struct Shared {
    installed: Mutex<Arc<Installed>>,
    live: Mutex<Live>,
    /// One check at a time.
    gate: Arc<tokio::sync::Mutex<()>>,
    metrics: Arc<CheckMetrics>,
    load_metrics: Arc<LoadMetrics>,
    shutdown: CancellationToken,
    /// Every run's own task: a reload (which stops the timers) never
    /// touches a run, and shutdown waits for all of them.
    runs: TaskTracker,
}

/// How long shutdown waits for a cancelled run to store its result (a
/// store whose lock another process holds must not hang the exit).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Shared {
    fn installed(&self) -> Arc<Installed> {
        self.installed.lock().expect("installed").clone()
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().expect("live")
    }

    fn set_status(&self, name: &str, f: impl FnOnce(&mut CheckStatus)) {
        if let Some(s) = self.live().status.get_mut(name) {
            f(s);
        }
    }
}

/// The checks component of the sidecar. Four locks, each with one job: what
/// is installed, what is live, the gate (one check at a time, held for a
/// whole run) and the schedule's timers. The other three are held only for
/// a read or a write, never two at once.
/// Most `/runs` store reads at once: each may hold a blocking thread for
/// up to the store's 2 s lock wait.
pub(crate) const STORE_READERS: usize = 2;

pub(crate) struct Checks {
    shared: Arc<Shared>,
    timers: Mutex<Vec<JoinHandle<()>>>,
    /// Bounds the store reads `/runs` runs at once (see `server::runs`).
    readers: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checks")
    }
}

impl Checks {
    pub(crate) fn new(metrics: Arc<CheckMetrics>, load_metrics: Arc<LoadMetrics>) -> Checks {
        Checks {
            shared: Arc::new(Shared {
                installed: Mutex::new(Arc::default()),
                live: Mutex::new(Live::default()),
                gate: Arc::new(tokio::sync::Mutex::new(())),
                metrics,
                load_metrics,
                shutdown: CancellationToken::new(),
                runs: TaskTracker::new(),
            }),
            timers: Mutex::new(Vec::new()),
            readers: Arc::new(tokio::sync::Semaphore::new(STORE_READERS)),
        }
    }

    /// Installs a plan's checks (at start and on reload). A running check
    /// finishes under its old plan.
    pub(crate) fn configure(
        &self,
        plans: Vec<CheckPlan>,
        store: Option<Store>,
        token: Option<String>,
    ) {
        self.stop_timers();
        let installed = Arc::new(Installed {
            plans,
            store: store.map(Arc::new),
            token: token.filter(|t| !t.is_empty()),
        });
        let old = std::mem::replace(
            &mut *self.shared.installed.lock().expect("installed"),
            installed.clone(),
        );
        for gone in old.plans.iter().filter(|p| !installed.has(&p.name)) {
            // A run of it that is still going removes them again at its end.
            self.shared.metrics.remove(&gone.name, &METRICS);
        }
        let mut live = self.shared.live();
        live.status.retain(|name, _| installed.has(name));
        for p in &installed.plans {
            self.shared.metrics.configured(&p.name);
            let fresh = || CheckStatus {
                name: p.name.clone(),
                kind: p.kind(),
                schedule: None,
                state: RunState::Idle,
                next_run_unix: None,
                last: None,
            };
            let s = live.status.entry(p.name.clone()).or_insert_with(fresh);
            s.kind = p.kind();
            s.schedule = p.schedule_text.clone();
            // The old timers are gone: a firing queued behind another run
            // was abandoned, and without a schedule there is no next run
            // (a new timer sets it again otherwise).
            if s.state == RunState::Queued {
                s.state = RunState::Idle;
            }
            if p.schedule.is_none() {
                s.next_run_unix = None;
                self.shared.metrics.next_run(&p.name, None);
            }
        }
        drop(live);
        let mut timers = self.timers.lock().expect("timers");
        for (i, p) in installed.plans.iter().enumerate() {
            if p.schedule.is_some() {
                timers.push(tokio::spawn(timer(
                    self.shared.clone(),
                    installed.clone(),
                    i,
                )));
            }
        }
    }

    /// The result store, for `/runs`; `None` without one.
    pub(crate) fn store(&self) -> Option<Arc<Store>> {
        self.shared.installed().store.clone()
    }

    /// A permit for one `/runs` store read; `None` when [`STORE_READERS`]
    /// are already running.
    pub(crate) fn store_reader(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.readers.clone().try_acquire_owned().ok()
    }

    /// The control API's bearer token; `None` when the API is off.
    pub(crate) fn token(&self) -> Option<String> {
        self.shared.installed().token.clone()
    }

    pub(crate) fn statuses(&self) -> Vec<CheckStatus> {
        self.shared.live().status.values().cloned().collect()
    }

    /// Starts a check now if none is running.
    pub(crate) fn trigger(&self, name: &str) -> Result<(), Refused> {
        let installed = self.shared.installed();
        let i = installed
            .plans
            .iter()
            .position(|p| p.name == name)
            .ok_or(Refused::Unknown)?;
        let guard = self
            .shared
            .gate
            .clone()
            .try_lock_owned()
            .map_err(|_| Refused::Busy(self.running_name().unwrap_or_default()))?;
        spawn_run(&self.shared, installed, i, guard);
        Ok(())
    }

    pub(crate) fn cancel(&self, name: &str) -> Result<(), Refused> {
        let known = self.shared.installed().plans.iter().any(|p| p.name == name);
        match &self.shared.live().running {
            Some((n, token)) if n == name => {
                token.cancel();
                Ok(())
            }
            _ if known => Err(Refused::NotRunning),
            _ => Err(Refused::Unknown),
        }
    }

    fn running_name(&self) -> Option<String> {
        self.shared.live().running.as_ref().map(|(n, _)| n.clone())
    }

    fn stop_timers(&self) {
        for t in self.timers.lock().expect("timers").drain(..) {
            t.abort();
        }
    }

    /// Cancels a running check and stops the timers.
    pub(crate) async fn shutdown(&self) {
        self.stop_timers();
        self.shared.shutdown.cancel();
        // Wait for the running check to write its result.
        self.shared.runs.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.shared.runs.wait())
            .await
            .is_err()
        {
            tracing::error!("a cancelled check did not finish storing its result in time");
        }
    }
}

impl Installed {
    fn has(&self, check: &str) -> bool {
        self.plans.iter().any(|p| p.name == check)
    }
}

/// Runs check `i` of `installed` on a task of its own, holding the gate
/// until it ends.
fn spawn_run(
    shared: &Arc<Shared>,
    installed: Arc<Installed>,
    i: usize,
    gate: OwnedMutexGuard<()>,
) -> JoinHandle<()> {
    let shared = shared.clone();
    shared.runs.clone().spawn(async move {
        let _gate = gate;
        run_one(&shared, installed, i).await;
    })
}

/// A check's schedule. Aborted by a reload or shutdown, never while it
/// holds a run: the run has its own task.
async fn timer(shared: Arc<Shared>, installed: Arc<Installed>, i: usize) {
    let plan = &installed.plans[i];
    let Some(cron) = &plan.schedule else { return };
    let mut fired = None;
    loop {
        let now = Utc::now();
        let Some(slot) = next_slot(cron, now, fired) else {
            return;
        };
        let at = slot.timestamp_millis() as f64 / 1000.0;
        shared.metrics.next_run(&plan.name, Some(at));
        shared.set_status(&plan.name, |s| s.next_run_unix = Some(at));
        // The wait is measured on the monotonic clock: a wall clock step
        // during it neither fires early nor holds the slot back.
        let wait = (slot - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        fired = Some(slot);
        let guard = match plan.overlap {
            Overlap::Skip => match shared.gate.clone().try_lock_owned() {
                Ok(g) => g,
                Err(_) => {
                    tracing::warn!(check = %plan.name, "schedule fired while another check runs; skipped");
                    shared.metrics.skipped(&plan.name);
                    continue;
                }
            },
            Overlap::Queue => {
                shared.set_status(&plan.name, |s| s.state = RunState::Queued);
                shared.gate.clone().lock_owned().await
            }
        };
        let _ = spawn_run(&shared, installed.clone(), i, guard).await;
    }
}

/// Runs one check (the caller holds the gate) and publishes the result.
async fn run_one(shared: &Shared, installed: Arc<Installed>, i: usize) {
    let plan = &installed.plans[i];
    let token = shared.shutdown.child_token();
    let _idle = Running::start(shared, &plan.name, token.clone());
    tracing::info!(check = %plan.name, kind = plan.kind().as_str(), "check started");
    let result = execute(plan, Some(&shared.load_metrics), &mut Quiet, token).await;
    // The store installed now: a reload during the run may have moved it.
    let store = shared.installed().store.clone();
    // Locking, writing and fsyncing the store blocks: off the async workers.
    let concluded = tokio::task::spawn_blocking(move || {
        let mut result = result;
        let plan = &installed.plans[i];
        let failed = conclude(&mut result, plan, store.as_deref());
        (result, failed)
    })
    .await;
    let Ok((result, failed)) = concluded else {
        tracing::error!("storing a check's result panicked");
        return;
    };
    if let Some(e) = failed {
        tracing::error!(check = %result.check, error = %e, "cannot store the check's result");
        shared.metrics.store_failed(&result.check);
    }
    shared.metrics.finished(&result);
    tracing::info!(
        check = %result.check,
        id = %result.id,
        verdict = %result.verdict,
        regressions = result.regressions().count(),
        "check finished"
    );
    let last = LastRun {
        id: result.id.clone(),
        verdict: result.verdict,
        started_unix: result.started_unix,
        duration_seconds: result.duration_seconds,
        regressions: result.regressions().map(|c| c.metric.clone()).collect(),
    };
    shared.set_status(&result.check, |s| s.last = Some(last));
}

/// A run in the live state; dropping it (at the end, or if the run
/// panics) sets the check idle again, so the API never shows a run that
/// is gone. A check a reload removed loses its series here.
struct Running<'a> {
    shared: &'a Shared,
    check: String,
}

impl<'a> Running<'a> {
    fn start(shared: &'a Shared, check: &str, token: CancellationToken) -> Running<'a> {
        let mut live = shared.live();
        live.running = Some((check.to_string(), token));
        if let Some(s) = live.status.get_mut(check) {
            s.state = RunState::Running;
        }
        drop(live);
        shared.metrics.running(check, true);
        Running {
            shared,
            check: check.to_string(),
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.shared.metrics.running(&self.check, false);
        if !self.shared.installed().has(&self.check) {
            self.shared.metrics.remove(&self.check, &METRICS);
        }
        let mut live = self.shared.live();
        live.running = None;
        if let Some(s) = live.status.get_mut(&self.check) {
            s.state = RunState::Idle;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_forms() {
        assert!(parse_cron("0 2 * * *").is_ok());
        assert!(parse_cron("*/5 * * * * *").is_ok());
        assert!(parse_cron("0 25 * * *").is_err());
        assert!(parse_cron("nightly").is_err());
        let now = Utc::now();
        let next = next_slot(&parse_cron("* * * * * *").unwrap(), now, None).unwrap();
        assert!(
            next > now && next <= now + chrono::Duration::seconds(1),
            "{next} vs {now}"
        );
    }

    #[test]
    fn a_clock_stepped_back_never_fires_a_slot_twice() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let nightly = parse_cron("0 2 * * *").unwrap();
        let fired = next_slot(&nightly, at("2026-11-20T01:59:59Z"), None).unwrap();
        assert_eq!(fired, at("2026-11-20T02:00:00Z"));
        // After the run, the wall clock steps back half an hour.
        let next = next_slot(&nightly, at("2026-11-20T01:30:00Z"), Some(fired));
        assert_eq!(next, Some(at("2026-11-21T02:00:00Z")));
        // A monotonic wait that ends a little before the wall-clock slot.
        let next = next_slot(&nightly, at("2026-11-20T01:59:59.990Z"), Some(fired));
        assert_eq!(next, Some(at("2026-11-21T02:00:00Z")));
    }

    #[test]
    fn run_states_serialize_as_before() {
        let all = [
            (RunState::Idle, "idle"),
            (RunState::Queued, "queued"),
            (RunState::Running, "running"),
            (RunState::Cancelling, "cancelling"),
        ];
        for (state, text) in all {
            assert_eq!(serde_json::to_value(state).unwrap(), text);
        }
    }
}
