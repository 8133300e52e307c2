//! The transport every component shares: timed DNS and connect ([`dial`]),
//! the TLS handshake ([`tls`]), and the closed sets a run reports with
//! ([`Reason`], [`Phase`]) and the [`Timings`] it records.

pub(crate) mod dial;
pub(crate) mod tls;

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

crate::telemetry::label_enum! {
    /// Why a run failed. A closed set: raw error text never becomes a label.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Reason {
        /// The run did not finish within its timeout.
        Timeout => "timeout",
        /// The host name did not resolve.
        Dns => "dns",
        /// The connection was refused.
        Refused => "refused",
        /// No route to the host or network.
        Unreachable => "unreachable",
        /// The peer reset or closed the connection mid-exchange.
        Reset => "reset",
        /// The TLS handshake failed (untrusted, expired, wrong name, protocol).
        Tls => "tls",
        /// The peer spoke something other than the expected protocol.
        Protocol => "protocol",
        /// The HTTP status was not in the accepted set.
        Status => "status",
        /// A body, header or JSON expectation did not hold.
        Assertion => "assertion",
        /// The run succeeded but took longer than `max_latency`.
        Latency => "latency",
        /// Any other I/O error.
        Io => "io",
        /// The server rejected the credentials (PostgreSQL, Kafka SASL).
        Auth => "auth",
        /// The server rejected the query (PostgreSQL).
        QueryError => "query_error",
        /// No broker could be reached (Kafka).
        BrokerDown => "broker_down",
        /// The probe topic is missing and could not be created, or is unusable (Kafka).
        TopicError => "topic_error",
        /// A produced message was not consumed back within the timeout (Kafka).
        Lost => "lost",
        /// sidewatch itself failed during the run: the run panicked (a bug; the
        /// log has the message). The probe keeps running.
        Internal => "internal",
    }
}

crate::telemetry::label_enum! {
    /// A timed step of a run; the `phase` label.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Phase {
        /// Name resolution.
        Dns => "dns",
        /// TCP connect.
        Connect => "connect",
        /// TLS handshake.
        Tls => "tls",
        /// From sending the request to the first response byte.
        FirstByte => "first_byte",
        /// From the first response byte to the end of the body.
        Transfer => "transfer",
        /// Running the query (PostgreSQL).
        Query => "query",
        /// From the produce call to the broker's acknowledgement (Kafka).
        Produce => "produce",
        /// From the produce call to the message arriving at the consumer (Kafka).
        EndToEnd => "end_to_end",
    }
}

impl Phase {
    const COUNT: usize = Phase::ALL.len();

    fn index(self) -> usize {
        self as usize
    }
}

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

/// The headers every request sidewatch sends to a collector carries (the
/// Pushgateway, an OTLP endpoint): `Host` from the URL, the content type,
/// and sidewatch's `User-Agent`.
pub(crate) fn collector_headers(
    h: &mut http::HeaderMap,
    url: &url::Url,
    content_type: &'static str,
) {
    use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
    use http::HeaderValue;
    use url::Position;
    if let Ok(v) = HeaderValue::from_str(&url[Position::BeforeHost..Position::AfterPort]) {
        h.insert(HOST, v);
    }
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("sidewatch/", env!("CARGO_PKG_VERSION"))),
    );
}
