//! The transport every component shares: timed DNS and connect ([`dial`]),
//! the TLS handshake ([`tls`]), and the closed sets a run reports with
//! ([`Reason`], [`Phase`]) and the [`Timings`] it records.

pub(crate) mod dial;
pub(crate) mod tls;

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

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
    /// sidewatch itself failed during the run: the run panicked (a bug; the
    /// log has the message). The probe keeps running.
    Internal,
}

impl Reason {
    pub(crate) const ALL: [Reason; 17] = [
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
        Reason::Internal,
    ];

    pub(crate) fn as_str(self) -> &'static str {
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
            Reason::Internal => "internal",
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

    pub(crate) const ALL: [Phase; Phase::COUNT] = [
        Phase::Dns,
        Phase::Connect,
        Phase::Tls,
        Phase::FirstByte,
        Phase::Transfer,
        Phase::Query,
        Phase::Produce,
        Phase::EndToEnd,
    ];

    pub(crate) fn as_str(self) -> &'static str {
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

crate::telemetry::str_label!(Reason, Phase);

/// A failed run: a bounded reason, and detail for logs only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub(crate) reason: Reason,
    pub(crate) detail: String,
}

impl Failure {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> Failure {
        Failure {
            reason,
            detail: detail.into(),
        }
    }
}

/// When a run started, how long each phase took, and the TLS leaf
/// certificate's expiry: what [`dial`] and [`tls`] record for any caller.
#[derive(Debug)]
pub struct Timings {
    pub(crate) start: Instant,
    phases: [Option<Duration>; Phase::COUNT],
    pub tls_not_after: Option<SystemTime>,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            start: Instant::now(),
            phases: [None; Phase::COUNT],
            tls_not_after: None,
        }
    }
}

impl Timings {
    pub(crate) fn add(&mut self, phase: Phase, d: Duration) {
        let slot = &mut self.phases[phase.index()];
        *slot = Some(slot.unwrap_or_default() + d);
    }

    /// Times `fut` into `phase`.
    pub(crate) async fn time<T>(
        &mut self,
        phase: Phase,
        fut: impl std::future::Future<Output = T>,
    ) -> T {
        let t = Instant::now();
        let out = fut.await;
        self.add(phase, t.elapsed());
        out
    }

    pub(crate) fn phase(&self, phase: Phase) -> Option<Duration> {
        self.phases[phase.index()]
    }
}
