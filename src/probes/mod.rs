//! Synthetic probes. Every kind has the same shape: a `build` that compiles
//! its config section (reporting problems by path, opening nothing) and a
//! `run` that records phases into a [`Recorder`] and returns `Ok` or a
//! [`Failure`] with a bounded [`Reason`].
//!
//! [`Probe::run`] wraps a kind's run in the probe's timeout. Dropping the
//! future on timeout closes its sockets, so a run never outlives its timeout.

pub(crate) mod assert;
mod contain;
pub(crate) mod http;
pub(crate) mod kafka;
pub(crate) mod metrics;
pub(crate) mod postgres;
pub(crate) mod tcp;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::config::{BuildCx, ProbeConfig, ProbeDefaults};
use crate::net::{Failure, Phase, Reason, Timings};
use crate::units::human_duration;

/// `Debug` for a probe that shows only its `target`: the rest of its
/// config may hold secrets (a DSN's password, SASL credentials).
macro_rules! debug_target_only {
    ($t:ident) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("target", &self.target)
                    .finish()
            }
        }
    };
}
use debug_target_only;

/// The probe kinds; the `kind` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Http,
    Tcp,
    Postgres,
    Kafka,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::Postgres => "postgres",
            Kind::Kafka => "kafka",
        }
    }

    /// The reasons a run of this kind can fail with, in `Reason::ALL`
    /// order; their counters start at 0.
    pub(crate) fn reasons(self) -> impl Iterator<Item = Reason> {
        Reason::ALL
            .into_iter()
            .filter(move |r| self.can_fail_with(*r))
    }

    fn can_fail_with(self, r: Reason) -> bool {
        use Reason::*;
        // Every kind but Kafka dials one address itself.
        let dial = matches!(r, Timeout | Dns | Refused | Unreachable | Reset | Internal);
        match self {
            Kind::Http => dial || matches!(r, Tls | Protocol | Status | Assertion | Latency | Io),
            Kind::Tcp => dial || matches!(r, Assertion | Io),
            Kind::Postgres => {
                dial || matches!(r, Tls | Auth | QueryError | Assertion | Latency | Protocol)
            }
            Kind::Kafka => matches!(
                r,
                BrokerDown | Timeout | Auth | TopicError | Lost | Internal
            ),
        }
    }

    /// The phases a run of this kind reports, in order.
    pub(crate) fn phases(self) -> &'static [Phase] {
        match self {
            Kind::Http => &[
                Phase::Dns,
                Phase::Connect,
                Phase::Tls,
                Phase::FirstByte,
                Phase::Transfer,
            ],
            Kind::Tcp => &[Phase::Dns, Phase::Connect, Phase::FirstByte],
            Kind::Postgres => &[Phase::Connect, Phase::Query],
            Kind::Kafka => &[Phase::Produce, Phase::EndToEnd],
        }
    }
}

crate::telemetry::str_label!(Kind);

/// A numeric result column of a PostgreSQL value query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryValue {
    pub(crate) column: String,
    pub row: String,
    pub value: f64,
}

/// What a Kafka run saw of the probe's message stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KafkaStats {
    /// Messages given up on (this run's, if it was not consumed in time).
    pub lost: u64,
    /// Messages consumed more than once.
    pub duplicates: u64,
    /// Messages consumed after one with a higher sequence number.
    pub out_of_order: u64,
    /// Consumer lag of the probe's consumer on the partition just probed.
    pub lag: Option<(i32, i64)>,
}

/// What a run measured while it went. Phases add up over redirects.
/// Everything a probe run records: the transport's [`Timings`] and what the
/// kind saw (status, query values, Kafka stream counts).
#[derive(Debug, Default)]
pub struct Recorder {
    pub timings: Timings,
    pub http_status: Option<u16>,
    pub values: Vec<QueryValue>,
    pub kafka: Option<KafkaStats>,
}

impl Recorder {
    pub(crate) fn add(&mut self, phase: Phase, d: Duration) {
        self.timings.add(phase, d);
    }

    /// Times `fut` into `phase`.
    pub(crate) async fn time<T>(
        &mut self,
        phase: Phase,
        fut: impl std::future::Future<Output = T>,
    ) -> T {
        self.timings.time(phase, fut).await
    }

    pub fn phase(&self, phase: Phase) -> Option<Duration> {
        self.timings.phase(phase)
    }
}

/// The result of one run.
#[derive(Debug)]
pub struct Outcome {
    pub started: SystemTime,
    pub total: Duration,
    pub result: Result<(), Failure>,
    pub recorder: Recorder,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.result.is_ok()
    }
    pub fn reason(&self) -> Option<Reason> {
        self.result.as_ref().err().map(|f| f.reason)
    }
}

/// The kind-specific part of a probe.
#[derive(Debug)]
enum Target {
    Http(Box<http::HttpProbe>),
    Tcp(tcp::TcpProbe),
    Postgres(Box<postgres::PostgresProbe>),
    Kafka(Box<kafka::KafkaProbe>),
    /// Panics with this message: how tests show that a panicking run is
    /// contained.
    #[cfg(test)]
    Panic(String),
}

/// A compiled probe, ready to run.
#[derive(Debug)]
pub struct Probe {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) interval: Duration,
    pub timeout: Duration,
    /// What the probe talks to, with secrets masked, for tables and logs.
    pub(crate) target: String,
    inner: Target,
}

const MIN_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Probe {
    /// Compiles one probe section. Problems are reported by path; `None` means
    /// at least one was found.
    pub(crate) fn build(
        cfg: &ProbeConfig,
        defaults: &ProbeDefaults,
        cx: &mut BuildCx,
    ) -> Option<Probe> {
        crate::config::check_name(&cfg.name, &mut cx.key("name"));
        let interval = cfg.interval.unwrap_or(defaults.interval).0;
        let timeout = cfg
            .timeout
            .or(defaults.timeout)
            .map(|d| d.0)
            .unwrap_or(DEFAULT_TIMEOUT.min(interval));
        if interval < MIN_INTERVAL {
            cx.problem_at("interval", "must be at least 100ms");
        }
        if timeout > interval {
            cx.problem_at(
                "timeout",
                format!(
                    "timeout {} exceeds the interval {}",
                    human_duration(timeout),
                    human_duration(interval)
                ),
            );
        }
        if timeout.is_zero() {
            cx.problem_at("timeout", "must be greater than zero");
        }
        let set = [
            cfg.http.is_some(),
            cfg.tcp.is_some(),
            cfg.postgres.is_some(),
            cfg.kafka.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            cx.problem("set exactly one of `http`, `tcp`, `postgres` or `kafka`");
            return None;
        }
        let (kind, target, inner) = if let Some(h) = &cfg.http {
            let p = http::HttpProbe::build(h, &mut cx.key("http"))?;
            (Kind::Http, p.target(), Target::Http(Box::new(p)))
        } else if let Some(t) = &cfg.tcp {
            let p = tcp::TcpProbe::build(t, &mut cx.key("tcp"))?;
            (Kind::Tcp, p.target(), Target::Tcp(p))
        } else if let Some(pg) = &cfg.postgres {
            let p = postgres::PostgresProbe::build(pg, timeout, &mut cx.key("postgres"))?;
            (Kind::Postgres, p.target(), Target::Postgres(Box::new(p)))
        } else {
            let k = cfg.kafka.as_ref().expect("exactly one kind is set");
            let p = kafka::KafkaProbe::build(k, &cfg.name, timeout, &mut cx.key("kafka"))?;
            (Kind::Kafka, p.target(), Target::Kafka(Box::new(p)))
        };
        Some(Probe {
            name: cfg.name.clone(),
            kind,
            interval,
            timeout,
            target,
            inner,
        })
    }

    /// A probe whose every run panics with `message`.
    #[cfg(test)]
    pub(crate) fn panicking(name: &str, interval: Duration, message: &str) -> Probe {
        Probe {
            name: name.to_string(),
            kind: Kind::Http,
            interval,
            timeout: interval,
            target: "test".into(),
            inner: Target::Panic(message.to_string()),
        }
    }

    /// The host the probe talks to, for the load allowlist.
    pub(crate) fn host(&self) -> Option<String> {
        match &self.inner {
            Target::Http(p) => Some(p.host()),
            Target::Tcp(p) => Some(p.host()),
            Target::Postgres(_) | Target::Kafka(_) => None,
            #[cfg(test)]
            Target::Panic(_) => None,
        }
    }

    /// Runs once on a task of its own: a panic becomes a failure with reason
    /// `internal` (its message in the detail) instead of ending the caller.
    pub(crate) async fn run_contained(self: &Arc<Self>) -> Outcome {
        let (started, t0) = (SystemTime::now(), Instant::now());
        let probe = self.clone();
        match contain::contained(async move { probe.run().await }).await {
            Ok(outcome) => outcome,
            Err(how) => Outcome {
                started,
                total: t0.elapsed(),
                result: Err(Failure::new(Reason::Internal, format!("the run {how}"))),
                recorder: Recorder::default(),
            },
        }
    }

    /// Runs once, bounded by the timeout.
    pub async fn run(&self) -> Outcome {
        let started = SystemTime::now();
        let mut rec = Recorder::default();
        let run = async {
            match &self.inner {
                Target::Http(p) => p.run(&mut rec).await,
                Target::Tcp(p) => p.run(&mut rec).await,
                Target::Postgres(p) => p.run(&mut rec).await,
                Target::Kafka(p) => p.run(&mut rec).await,
                #[cfg(test)]
                Target::Panic(message) => panic!("{message}"),
            }
        };
        let result = match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                Reason::Timeout,
                format!("no result within {}", human_duration(self.timeout)),
            )),
        };
        Outcome {
            started,
            total: rec.timings.start.elapsed(),
            result,
            recorder: rec,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_adds_phases_over_hops() {
        let mut r = Recorder::default();
        r.add(Phase::Connect, Duration::from_millis(2));
        r.add(Phase::Connect, Duration::from_millis(3));
        assert_eq!(r.phase(Phase::Connect), Some(Duration::from_millis(5)));
        assert_eq!(r.phase(Phase::Tls), None);
    }

    #[test]
    fn each_kind_counts_its_own_reasons() {
        let dial = "timeout dns refused unreachable reset";
        let want = [
            (
                Kind::Http,
                format!("{dial} tls protocol status assertion latency io internal"),
            ),
            (Kind::Tcp, format!("{dial} assertion io internal")),
            (
                Kind::Postgres,
                format!("{dial} tls protocol assertion latency auth query_error internal"),
            ),
            (
                Kind::Kafka,
                "timeout auth broker_down topic_error lost internal".into(),
            ),
        ];
        for (kind, reasons) in want {
            let got: Vec<&str> = kind.reasons().map(Reason::as_str).collect();
            assert_eq!(got.join(" "), reasons, "{kind:?}");
        }
    }
}
