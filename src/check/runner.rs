//! Checks inside the sidecar: cron schedules, one check at a time (the
//! probes keep running), trigger and cancel from the control API, and the
//! end of every run: baseline comparison, the store, and the series.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::metrics::CheckMetrics;
use super::{execute, CheckPlan, CheckResult};
use crate::check::baseline::regression::compare;
use crate::check::baseline::store::Store;
use crate::config::Overlap;
use crate::load::metrics::LoadMetrics;
use crate::load::Quiet;
use crate::load::Verdict;

/// Parses a 5-field (or 6 with seconds) cron expression.
pub fn parse_cron(s: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(s)
        .map_err(|e| format!("`{s}` is not a cron schedule: {e}"))
}

/// The next time `cron` fires after now, as Unix seconds (UTC).
pub fn next_fire(cron: &Cron) -> Option<f64> {
    let now = chrono::Utc::now();
    let next = cron.find_next_occurrence(&now, false).ok()?;
    Some(next.timestamp_millis() as f64 / 1000.0)
}

/// Compares with the baseline, stores the run, accepts it if configured.
/// Store problems are reported, never fatal: the verdict stands.
pub fn conclude(r: &mut CheckResult, plan: &CheckPlan, store: Option<&Store>) -> Option<String> {
    let store = store?;
    if let Some(tol) = &plan.baseline {
        if let Some(base) = store.baseline(&r.check) {
            if r.verdict != Verdict::Aborted {
                r.comparisons = compare(r, &base, tol);
            }
            r.baseline = Some(base.id);
            r.settle_verdict();
        }
    }
    let accept = plan.baseline.as_ref().is_some_and(|t| t.auto_accept) && r.passed()
        || (plan.baseline.is_some() && r.baseline.is_none() && r.passed());
    store.save(r, accept).err()
}

/// A check's state as `GET /api/v1/checks` shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    pub name: String,
    pub kind: String,
    pub schedule: Option<String>,
    pub state: &'static str,
    pub next_run_unix: Option<f64>,
    pub last: Option<LastRun>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LastRun {
    pub id: String,
    pub verdict: Verdict,
    pub started_unix: f64,
    pub duration_seconds: f64,
    pub regressions: Vec<String>,
}

/// Why a trigger or cancel was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Unknown,
    Busy(String),
    NotRunning,
}

struct Shared {
    plans: Mutex<Arc<Vec<CheckPlan>>>,
    store: Mutex<Option<Arc<Store>>>,
    status: Mutex<BTreeMap<String, Status>>,
    /// The running check and its cancel token.
    running: Mutex<Option<(String, CancellationToken)>>,
    /// One check at a time.
    gate: Arc<tokio::sync::Mutex<()>>,
    metrics: Arc<CheckMetrics>,
    load_metrics: Arc<LoadMetrics>,
    shutdown: CancellationToken,
}

/// The checks component of the sidecar.
pub struct Checks {
    shared: Arc<Shared>,
    timers: Mutex<Vec<JoinHandle<()>>>,
    /// The bearer token of the control API; `None` turns the API off.
    pub token: Mutex<Option<String>>,
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checks")
    }
}

impl Checks {
    pub fn new(metrics: Arc<CheckMetrics>, load_metrics: Arc<LoadMetrics>) -> Checks {
        Checks {
            shared: Arc::new(Shared {
                plans: Mutex::new(Arc::new(Vec::new())),
                store: Mutex::new(None),
                status: Mutex::new(BTreeMap::new()),
                running: Mutex::new(None),
                gate: Arc::new(tokio::sync::Mutex::new(())),
                metrics,
                load_metrics,
                shutdown: CancellationToken::new(),
            }),
            timers: Mutex::new(Vec::new()),
            token: Mutex::new(None),
        }
    }

    /// Installs a plan's checks (at start and on reload). A running check
    /// finishes under its old plan.
    pub fn configure(&self, plans: Vec<CheckPlan>, store: Option<Store>, token: Option<String>) {
        for t in self.timers.lock().expect("timers").drain(..) {
            t.abort();
        }
        *self.token.lock().expect("token") = token.filter(|t| !t.is_empty());
        *self.shared.store.lock().expect("store") = store.map(Arc::new);
        let plans = Arc::new(plans);
        *self.shared.plans.lock().expect("plans") = plans.clone();
        let mut status = self.shared.status.lock().expect("status");
        status.retain(|name, _| plans.iter().any(|p| &p.name == name));
        for p in plans.iter() {
            let s = status.entry(p.name.clone()).or_default();
            s.name = p.name.clone();
            s.kind = p.kind().into();
            s.schedule = p.schedule_text.clone();
            self.shared.metrics.configured(&p.name);
            if s.state.is_empty() {
                s.state = "idle";
            }
        }
        drop(status);
        let mut timers = self.timers.lock().expect("timers");
        for (i, p) in plans.iter().enumerate() {
            if p.schedule.is_some() {
                timers.push(tokio::spawn(timer(self.shared.clone(), plans.clone(), i)));
            }
        }
    }

    pub fn statuses(&self) -> Vec<Status> {
        self.shared
            .status
            .lock()
            .expect("status")
            .values()
            .cloned()
            .collect()
    }

    /// Starts a check now if none is running.
    pub fn trigger(&self, name: &str) -> Result<(), Refused> {
        let plans = self.shared.plans.lock().expect("plans").clone();
        let i = plans
            .iter()
            .position(|p| p.name == name)
            .ok_or(Refused::Unknown)?;
        let guard = self
            .shared
            .gate
            .clone()
            .try_lock_owned()
            .map_err(|_| Refused::Busy(self.running_name().unwrap_or_default()))?;
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let _guard = guard;
            run_one(&shared, &plans[i]).await;
        });
        Ok(())
    }

    pub fn cancel(&self, name: &str) -> Result<(), Refused> {
        let known = self
            .shared
            .plans
            .lock()
            .expect("plans")
            .iter()
            .any(|p| p.name == name);
        match &*self.shared.running.lock().expect("running") {
            Some((n, token)) if n == name => {
                token.cancel();
                Ok(())
            }
            _ if known => Err(Refused::NotRunning),
            _ => Err(Refused::Unknown),
        }
    }

    fn running_name(&self) -> Option<String> {
        self.shared
            .running
            .lock()
            .expect("running")
            .as_ref()
            .map(|(n, _)| n.clone())
    }

    /// Cancels a running check and stops the timers.
    pub async fn shutdown(&self) {
        for t in self.timers.lock().expect("timers").drain(..) {
            t.abort();
        }
        self.shared.shutdown.cancel();
        // Wait for the running check to write its result.
        let _ = self.shared.gate.lock().await;
    }
}

async fn timer(shared: Arc<Shared>, plans: Arc<Vec<CheckPlan>>, i: usize) {
    let plan = &plans[i];
    let Some(cron) = &plan.schedule else { return };
    loop {
        let Some(at) = next_fire(cron) else { return };
        shared.metrics.next_run(&plan.name, Some(at));
        set_status(&shared, &plan.name, |s| s.next_run_unix = Some(at));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let wait = Duration::from_secs_f64((at - now.as_secs_f64()).max(0.0));
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
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
                set_status(&shared, &plan.name, |s| s.state = "queued");
                shared.gate.clone().lock_owned().await
            }
        };
        run_one(&shared, plan).await;
        drop(guard);
        // Never fire twice for one instant, however quick the run.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
}

fn set_status(shared: &Shared, name: &str, f: impl FnOnce(&mut Status)) {
    if let Some(s) = shared.status.lock().expect("status").get_mut(name) {
        f(s);
    }
}

/// Runs one check (the caller holds the gate) and publishes the result.
async fn run_one(shared: &Shared, plan: &CheckPlan) {
    let token = shared.shutdown.child_token();
    *shared.running.lock().expect("running") = Some((plan.name.clone(), token.clone()));
    set_status(shared, &plan.name, |s| s.state = "running");
    shared.metrics.running(&plan.name, true);
    tracing::info!(check = %plan.name, kind = plan.kind(), "check started");
    let mut result = execute(plan, Some(&shared.load_metrics), &mut Quiet, token).await;
    let store = shared.store.lock().expect("store").clone();
    if let Some(e) = conclude(&mut result, plan, store.as_deref()) {
        tracing::error!(check = %plan.name, error = %e, "cannot store the check's result");
    }
    shared.metrics.finished(&result);
    shared.metrics.running(&plan.name, false);
    *shared.running.lock().expect("running") = None;
    tracing::info!(
        check = %plan.name,
        id = %result.id,
        verdict = %result.verdict,
        regressions = result.regressions().count(),
        "check finished"
    );
    set_status(shared, &plan.name, |s| {
        s.state = "idle";
        s.last = Some(LastRun {
            id: result.id.clone(),
            verdict: result.verdict,
            started_unix: result.started_unix,
            duration_seconds: result.duration_seconds,
            regressions: result.regressions().map(|c| c.metric.clone()).collect(),
        });
    });
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
        let next = next_fire(&parse_cron("* * * * * *").unwrap()).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(next > now - 0.01 && next <= now + 1.01, "{next} vs {now}");
    }
}
