//! Runs each probe on its interval, records outcomes, and keeps the latest
//! result per probe for the status views.
//!
//! Each probe's first run is offset by a hash of its name, so probes with the
//! same interval do not fire together and keep their spacing across restarts
//! (Prometheus spreads scrapes the same way). A run is never cancelled by
//! shutdown or reload: it ends by itself within its timeout, which is what
//! "drain" means here.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::net::Reason;
use crate::probes::metrics::ProbeMetrics;
use crate::probes::{Kind, Outcome, Probe};
use crate::redact::Redactor;

/// Repeated failures with the same reason are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The latest state of one probe.
#[derive(Clone, Debug)]
pub struct ProbeStatus {
    pub(crate) kind: Kind,
    pub(crate) target: String,
    pub runs: u64,
    pub failures: u64,
    pub last: Option<ProbeRun>,
    logged: Option<(Option<Reason>, Instant)>,
    suppressed: u64,
}

#[derive(Clone, Debug)]
pub struct ProbeRun {
    pub(crate) total: Duration,
    pub reason: Option<Reason>,
}

/// Latest results by probe name, for the index page and the demo's status lines.
#[derive(Debug, Default)]
pub struct Board(Mutex<BTreeMap<String, ProbeStatus>>);

impl Board {
    pub fn snapshot(&self) -> BTreeMap<String, ProbeStatus> {
        self.0.lock().expect("board lock").clone()
    }

    fn retain(&self, probes: &[Arc<Probe>]) {
        let mut map = self.0.lock().expect("board lock");
        map.retain(|name, s| probes.iter().any(|p| &p.name == name && p.kind == s.kind));
        for p in probes {
            // A kept probe shows its new target (the old one may hold a
            // secret the new config no longer has).
            if let Some(s) = map.get_mut(&p.name) {
                s.target.clone_from(&p.target);
                continue;
            }
            map.entry(p.name.clone()).or_insert_with(|| ProbeStatus {
                kind: p.kind,
                target: p.target.clone(),
                runs: 0,
                failures: 0,
                last: None,
                logged: None,
                suppressed: 0,
            });
        }
    }

    /// Updates the probe's status; returns what to log, if anything.
    fn update(&self, probe: &Probe, outcome: &Outcome) -> Option<LogLine> {
        let mut map = self.0.lock().expect("board lock");
        let s = map.get_mut(&probe.name)?;
        let reason = outcome.reason();
        let was = s.last.as_ref().map(|l| l.reason);
        s.runs += 1;
        s.failures += u64::from(reason.is_some());
        s.last = Some(ProbeRun {
            total: outcome.total,
            reason,
        });
        let changed = s.logged.is_none_or(|(r, _)| r != reason);
        let due = s.logged.is_none_or(|(_, at)| at.elapsed() >= LOG_EVERY);
        match reason {
            None if matches!(was, Some(Some(_))) => {
                s.logged = Some((None, Instant::now()));
                Some(LogLine::Recovered)
            }
            Some(_) if changed || due => {
                s.logged = Some((reason, Instant::now()));
                let suppressed = std::mem::take(&mut s.suppressed);
                Some(LogLine::Failed { suppressed })
            }
            Some(_) => {
                s.suppressed += 1;
                None
            }
            None => None,
        }
    }
}

enum LogLine {
    Failed { suppressed: u64 },
    Recovered,
}

/// What every probe loop shares.
#[derive(Debug)]
pub struct Outcomes {
    pub metrics: ProbeMetrics,
    pub board: Board,
    pub(crate) redactor: Mutex<Arc<Redactor>>,
}

impl Outcomes {
    pub(crate) fn new(metrics: ProbeMetrics) -> Outcomes {
        Outcomes {
            metrics,
            board: Board::default(),
            redactor: Mutex::new(Arc::new(Redactor::default())),
        }
    }

    fn record(&self, probe: &Probe, outcome: &Outcome) {
        self.metrics.record(probe, outcome);
        let Some(line) = self.board.update(probe, outcome) else {
            return;
        };
        match (line, &outcome.result) {
            (LogLine::Failed { suppressed }, Err(f)) => {
                let redactor = self.redactor.lock().expect("redactor lock").clone();
                tracing::warn!(
                    probe = %probe.name,
                    kind = %probe.kind,
                    reason = %f.reason,
                    detail = %redactor.redact(&f.detail),
                    suppressed,
                    "probe failed"
                );
            }
            (LogLine::Recovered, _) => {
                tracing::info!(probe = %probe.name, kind = %probe.kind, "probe recovered")
            }
            _ => {}
        }
    }
}

/// A running set of probe loops, stopped together.
#[derive(Debug)]
pub(crate) struct ProbeSet {
    pub(crate) probes: Vec<Arc<Probe>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl ProbeSet {
    pub(crate) fn start(
        probes: Vec<Arc<Probe>>,
        outcomes: &Arc<Outcomes>,
        redactor: Redactor,
    ) -> ProbeSet {
        *outcomes.redactor.lock().expect("redactor lock") = Arc::new(redactor);
        outcomes.board.retain(&probes);
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        for probe in &probes {
            outcomes.metrics.init(probe);
            tracker.spawn(probe_loop(probe.clone(), outcomes.clone(), cancel.clone()));
        }
        tracker.close();
        ProbeSet {
            probes,
            cancel,
            tracker,
        }
    }

    /// Stops scheduling new runs and waits for the runs in flight.
    pub(crate) async fn stop(self) -> Vec<Arc<Probe>> {
        self.cancel.cancel();
        self.tracker.wait().await;
        self.probes
    }
}

async fn probe_loop(probe: Arc<Probe>, outcomes: Arc<Outcomes>, cancel: CancellationToken) {
    let start = Instant::now() + first_offset(&probe.name, probe.interval);
    let mut ticker = tokio::time::interval_at(start.into(), probe.interval);
    // A run that overruns (it cannot: timeout <= interval) or a stalled
    // process skips ticks rather than bursting to catch up.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // A panicking run is recorded as a failure (`internal`) and logged,
        // redacted, like any other; the loop goes on.
        let outcome = probe.run_contained().await;
        outcomes.record(&probe, &outcome);
    }
}

/// A stable offset in `[0, interval)` derived from the probe's name.
fn first_offset(name: &str, interval: Duration) -> Duration {
    let mut h = std::hash::DefaultHasher::new();
    name.hash(&mut h);
    let nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(h.finish() % nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::metrics::{KafkaFamilies, ProbeFamilies, QueryFamilies};
    use prometheus_client::registry::Registry;

    /// Log lines, captured for one test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_panicking_run_is_a_failure_and_the_loop_keeps_running() {
        let log = Captured::default();
        let writer = log.clone();
        let _subscriber = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        );
        let mut registry = Registry::with_prefix(crate::telemetry::PREFIX);
        let probe_families = ProbeFamilies::register(registry.sub_registry_with_prefix("probe"));
        let metrics = ProbeMetrics::new(
            probe_families,
            QueryFamilies::register(registry.sub_registry_with_prefix("query")),
            KafkaFamilies::register(registry.sub_registry_with_prefix("kafka")),
        );
        let outcomes = Arc::new(Outcomes::new(metrics));
        let mut redactor = Redactor::default();
        redactor.add("hunter2-secret");
        let probe = Arc::new(Probe::panicking(
            "boom",
            Duration::from_millis(100),
            "the service said hunter2-secret",
        ));
        let set = ProbeSet::start(vec![probe], &outcomes, redactor);
        let end = Instant::now() + Duration::from_secs(5);
        while outcomes.board.snapshot()["boom"].runs < 3 && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        set.stop().await;
        let status = outcomes.board.snapshot()["boom"].clone();
        assert!(status.runs >= 3, "the loop died: {} runs", status.runs);
        assert_eq!(status.failures, status.runs);
        assert_eq!(status.last.unwrap().reason, Some(Reason::Internal));
        let text = crate::telemetry::encode_prometheus(&registry);
        let panics = crate::telemetry::find_sample(
            &text,
            "sidewatch_probe_failures_total",
            &[("probe", "boom"), ("reason", "internal")],
        );
        assert_eq!(panics, Some(status.runs as f64), "{text}");
        let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("probe failed"), "{log}");
        assert!(log.contains("panicked"), "{log}");
        assert!(!log.contains("hunter2-secret"), "{log}");
    }

    #[test]
    fn offsets_are_stable_and_within_the_interval() {
        let i = Duration::from_secs(10);
        let a = first_offset("api", i);
        assert_eq!(a, first_offset("api", i));
        assert!(a < i);
        let spread: std::collections::HashSet<_> = (0..20)
            .map(|n| first_offset(&format!("p{n}"), i).as_secs())
            .collect();
        assert!(spread.len() > 5, "offsets should spread: {spread:?}");
    }
}
