//! Synthetic probes. Every kind has the same shape: a `build` that compiles
//! its config section (reporting problems by path, opening nothing) and a
//! `run` that records phases into a [`Recorder`] and returns `Ok` or a
//! [`Failure`] with a bounded [`Reason`].
//!
//! [`Probe::run`] wraps a kind's run in the probe's timeout. Dropping the
//! future on timeout closes its sockets, so a run never outlives its timeout.

pub mod assert;
pub mod dial;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod postgres;
pub mod tcp;
pub mod tls;

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::config::{human_duration, Path, ProbeConfig, ProbeDefaults, Problems};
use crate::redact::Redactor;

/// Why a run failed. A closed set: raw error text never becomes a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The run did not finish within its timeout.
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// The connection was refused.
    Refused,
    /// No route to the host or network.
    Unreachable,
    /// The peer reset or closed the connection mid-exchange.
    Reset,
    /// The TLS handshake failed (untrusted, expired, wrong name, protocol).
    Tls,
    /// The peer spoke something other than the expected protocol.
    Protocol,
    /// The HTTP status was not in the accepted set.
    Status,
    /// A body, header or JSON expectation did not hold.
    Assertion,
    /// The run succeeded but took longer than `max_latency`.
    Latency,
    /// Any other I/O error.
    Io,
    /// The server rejected the credentials (PostgreSQL, Kafka SASL).
    Auth,
    /// The server rejected the query (PostgreSQL).
    QueryError,
    /// No broker could be reached (Kafka).
    BrokerDown,
    /// The probe topic is missing and could not be created, or is unusable (Kafka).
    TopicError,
    /// A produced message was not consumed back within the timeout (Kafka).
    Lost,
}

impl Reason {
    pub const ALL: [Reason; 16] = [
        Reason::Timeout,
        Reason::Dns,
        Reason::Refused,
        Reason::Unreachable,
        Reason::Reset,
        Reason::Tls,
        Reason::Protocol,
        Reason::Status,
        Reason::Assertion,
        Reason::Latency,
        Reason::Io,
        Reason::Auth,
        Reason::QueryError,
        Reason::BrokerDown,
        Reason::TopicError,
        Reason::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Dns => "dns",
            Reason::Refused => "refused",
            Reason::Unreachable => "unreachable",
            Reason::Reset => "reset",
            Reason::Tls => "tls",
            Reason::Protocol => "protocol",
            Reason::Status => "status",
            Reason::Assertion => "assertion",
            Reason::Latency => "latency",
            Reason::Io => "io",
            Reason::Auth => "auth",
            Reason::QueryError => "query_error",
            Reason::BrokerDown => "broker_down",
            Reason::TopicError => "topic_error",
            Reason::Lost => "lost",
        }
    }
}

/// The probe kinds; the `kind` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Http,
    Tcp,
    Postgres,
    Kafka,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::Postgres => "postgres",
            Kind::Kafka => "kafka",
        }
    }

    /// The reasons a run of this kind can fail with; their counters start at 0.
    pub fn reasons(self) -> &'static [Reason] {
        match self {
            Kind::Http => &[
                Reason::Timeout,
                Reason::Dns,
                Reason::Refused,
                Reason::Unreachable,
                Reason::Reset,
                Reason::Tls,
                Reason::Protocol,
                Reason::Status,
                Reason::Assertion,
                Reason::Latency,
                Reason::Io,
            ],
            Kind::Tcp => &[
                Reason::Timeout,
                Reason::Dns,
                Reason::Refused,
                Reason::Unreachable,
                Reason::Reset,
                Reason::Assertion,
                Reason::Io,
            ],
            Kind::Postgres => &[
                Reason::Timeout,
                Reason::Dns,
                Reason::Refused,
                Reason::Unreachable,
                Reason::Reset,
                Reason::Tls,
                Reason::Auth,
                Reason::QueryError,
                Reason::Assertion,
                Reason::Latency,
                Reason::Protocol,
            ],
            Kind::Kafka => &[
                Reason::BrokerDown,
                Reason::Timeout,
                Reason::Auth,
                Reason::TopicError,
                Reason::Lost,
            ],
        }
    }

    /// The phases a run of this kind reports, in order.
    pub fn phases(self) -> &'static [Phase] {
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

/// A timed step of a run; the `phase` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Name resolution.
    Dns,
    /// TCP connect.
    Connect,
    /// TLS handshake.
    Tls,
    /// From sending the request to the first response byte.
    FirstByte,
    /// From the first response byte to the end of the body.
    Transfer,
    /// Running the query (PostgreSQL).
    Query,
    /// From the produce call to the broker's acknowledgement (Kafka).
    Produce,
    /// From the produce call to the message arriving at the consumer (Kafka).
    EndToEnd,
}

impl Phase {
    const COUNT: usize = 8;

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::FirstByte => "first_byte",
            Phase::Transfer => "transfer",
            Phase::Query => "query",
            Phase::Produce => "produce",
            Phase::EndToEnd => "end_to_end",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

crate::telemetry::str_label!(Reason, Kind, Phase);

/// A failed run: a bounded reason, and detail for logs only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub detail: String,
}

impl Failure {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Failure {
        Failure {
            reason,
            detail: detail.into(),
        }
    }
}

/// A numeric result column of a PostgreSQL value query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryValue {
    pub column: String,
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
#[derive(Debug)]
pub struct Recorder {
    pub start: Instant,
    phases: [Option<Duration>; Phase::COUNT],
    pub tls_not_after: Option<SystemTime>,
    pub http_status: Option<u16>,
    pub values: Vec<QueryValue>,
    pub kafka: Option<KafkaStats>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            start: Instant::now(),
            phases: [None; Phase::COUNT],
            tls_not_after: None,
            http_status: None,
            values: Vec::new(),
            kafka: None,
        }
    }
}

impl Recorder {
    pub fn add(&mut self, phase: Phase, d: Duration) {
        let slot = &mut self.phases[phase.index()];
        *slot = Some(slot.unwrap_or_default() + d);
    }

    /// Times `fut` into `phase`.
    pub async fn time<T>(&mut self, phase: Phase, fut: impl std::future::Future<Output = T>) -> T {
        let t = Instant::now();
        let out = fut.await;
        self.add(phase, t.elapsed());
        out
    }

    pub fn phase(&self, phase: Phase) -> Option<Duration> {
        self.phases[phase.index()]
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
}

/// A compiled probe, ready to run.
#[derive(Debug)]
pub struct Probe {
    pub name: String,
    pub kind: Kind,
    pub interval: Duration,
    pub timeout: Duration,
    /// What the probe talks to, with secrets masked, for tables and logs.
    pub target: String,
    inner: Target,
}

const MIN_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Probe {
    /// Compiles one probe section. Problems are reported by path; `None` means
    /// at least one was found.
    pub fn build(
        cfg: &ProbeConfig,
        defaults: &ProbeDefaults,
        path: &Path,
        problems: &mut Problems,
        redactor: &mut Redactor,
    ) -> Option<Probe> {
        check_name(&cfg.name, &path.key("name"), problems);
        let interval = cfg.interval.unwrap_or(defaults.interval).0;
        let timeout = cfg
            .timeout
            .or(defaults.timeout)
            .map(|d| d.0)
            .unwrap_or(DEFAULT_TIMEOUT.min(interval));
        if interval < MIN_INTERVAL {
            problems.push(&path.key("interval"), "must be at least 100ms");
        }
        if timeout > interval {
            problems.push(
                &path.key("timeout"),
                format!(
                    "timeout {} exceeds the interval {}",
                    human_duration(timeout),
                    human_duration(interval)
                ),
            );
        }
        if timeout.is_zero() {
            problems.push(&path.key("timeout"), "must be greater than zero");
        }
        let set = [
            cfg.http.is_some(),
            cfg.tcp.is_some(),
            cfg.postgres.is_some(),
            cfg.kafka.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            problems.push(
                path,
                "set exactly one of `http`, `tcp`, `postgres` or `kafka`",
            );
            return None;
        }
        let (kind, target, inner) = if let Some(h) = &cfg.http {
            let p = http::HttpProbe::build(h, &path.key("http"), problems, redactor)?;
            (Kind::Http, p.target(), Target::Http(Box::new(p)))
        } else if let Some(t) = &cfg.tcp {
            let p = tcp::TcpProbe::build(t, &path.key("tcp"), problems)?;
            (Kind::Tcp, p.target(), Target::Tcp(p))
        } else if let Some(pg) = &cfg.postgres {
            let p = postgres::PostgresProbe::build(
                pg,
                timeout,
                &path.key("postgres"),
                problems,
                redactor,
            )?;
            (Kind::Postgres, p.target(), Target::Postgres(Box::new(p)))
        } else {
            let k = cfg.kafka.as_ref().expect("exactly one kind is set");
            let p = kafka::KafkaProbe::build(
                k,
                &cfg.name,
                timeout,
                &path.key("kafka"),
                problems,
                redactor,
            )?;
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

    /// The host the probe talks to, for the load allowlist.
    pub fn host(&self) -> Option<String> {
        match &self.inner {
            Target::Http(p) => Some(p.host()),
            Target::Tcp(p) => Some(p.host()),
            Target::Postgres(_) | Target::Kafka(_) => None,
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
            total: rec.start.elapsed(),
            result,
            recorder: rec,
        }
    }
}

pub fn check_name(name: &str, path: &Path, problems: &mut Problems) {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty() || name.len() > 64 || !ok_chars {
        problems.push(
            path,
            "must be 1 to 64 letters, digits, `_`, `-` or `.` (it becomes a label value)",
        );
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
    fn every_kind_reason_is_in_all() {
        for k in [Kind::Http, Kind::Tcp] {
            for r in k.reasons() {
                assert!(Reason::ALL.contains(r));
            }
        }
    }

    #[test]
    fn names_must_be_label_safe() {
        let mut p = Problems::default();
        check_name("api-health_1.v2", &Path::default(), &mut p);
        assert!(p.is_empty());
        check_name("has space", &Path::default(), &mut p);
        check_name("", &Path::default(), &mut p);
        assert_eq!(p.0.len(), 2);
    }
}
