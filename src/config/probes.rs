//! The `probes:` section: defaults and one struct per probe kind.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;

/// Defaults for every probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeDefaults {
    /// Time between the starts of two runs of a probe. Default `15s`.
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// Hard bound on one run. Default `5s`, or the interval if that is shorter.
    pub timeout: Option<Dur>,
}

impl Default for ProbeDefaults {
    fn default() -> Self {
        ProbeDefaults {
            interval: default_interval(),
            timeout: None,
        }
    }
}

fn default_interval() -> Dur {
    Dur::secs(15)
}

/// One probe. Exactly one of `http`, `tcp`, `postgres` or `kafka` must be set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Unique name, the `probe` label. Letters, digits, `_`, `-` and `.`; at most
    /// 64 characters.
    pub name: String,
    /// Time between the starts of two runs. Must be at least 100ms.
    pub interval: Option<Dur>,
    /// Hard bound on one run, including DNS, connect, TLS, redirects and the
    /// body. Must not exceed the interval.
    pub timeout: Option<Dur>,
    /// An HTTP(S) request and its expectations.
    pub http: Option<HttpConfig>,
    /// A TCP connect, with an optional exchange.
    pub tcp: Option<TcpConfig>,
    /// A PostgreSQL connection and query.
    pub postgres: Option<PostgresConfig>,
    /// A Kafka produce and consume round trip.
    pub kafka: Option<KafkaConfig>,
}

/// An HTTP(S) probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `http://` or `https://` URL. User info (`user:pass@`) becomes a Basic
    /// `Authorization` header and is never printed.
    pub url: String,
    /// Request method. Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers. Values of `Authorization`, `Cookie`, `Proxy-Authorization`
    /// and any header whose name contains `token`, `secret` or `key` are
    /// treated as secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body.
    pub body: Option<String>,
    /// Follow 301, 302, 303, 307 and 308 responses. Default `true`. Phase
    /// timings add up over the hops.
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// Most redirects to follow before failing with reason `protocol`. Default 10.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// Largest body read; a larger body fails with reason `protocol`.
    /// Default 1048576 (1 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// TLS settings for `https://` URLs.
    #[serde(default)]
    pub tls: TlsConfig,
    /// What the response must look like.
    #[serde(default)]
    pub expect: HttpExpect,
}

fn default_method() -> String {
    "GET".into()
}
fn default_max_redirects() -> u32 {
    10
}
fn default_max_body() -> u64 {
    1 << 20
}

/// TLS client settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Skip certificate verification. The certificate's expiry is still
    /// exported. Default `false`.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// PEM file of CA certificates to trust in addition to the bundled
    /// Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// Server name for SNI and verification, if not the URL's host.
    pub server_name: Option<String>,
}

/// Expectations on an HTTP response. Any unmet one fails the run.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    /// Accepted status codes: numbers (`200`) or classes (`2xx`). Default `[2xx]`.
    /// A mismatch fails with reason `status`.
    #[serde(default)]
    pub status: Vec<String>,
    /// Regex the body must match (reason `assertion`).
    pub body_regex: Option<String>,
    /// Regex the body must not match (reason `assertion`).
    pub body_not_regex: Option<String>,
    /// Response headers that must be present and match a regex, by name.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON fields of the body that must equal or match a value.
    #[serde(default)]
    pub json: Vec<JsonExpect>,
    /// Longest acceptable total time; a slower run fails with reason `latency`.
    pub max_latency: Option<Dur>,
}

/// One JSON field check. Set exactly one of `equals` or `matches`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonExpect {
    /// A JSON Pointer (`/data/0/status`) or a dotted path (`data[0].status`).
    pub path: String,
    /// The field must equal this value: strings compare as text, numbers
    /// numerically, `true`/`false`/`null` as themselves.
    pub equals: Option<String>,
    /// The field, as text, must match this regex.
    pub matches: Option<String>,
}

/// A TCP probe: connect, then optionally send bytes and expect a reply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// `host:port` or `[v6]:port`.
    pub address: String,
    /// Bytes to send after connecting. `\n`, `\r`, `\t` and `\\` escapes work.
    pub send: Option<String>,
    /// Regex the first bytes received must match (reason `assertion`).
    pub expect: Option<String>,
    /// Most bytes read while waiting for `expect` to match. Default 4096.
    #[serde(default = "default_tcp_read")]
    pub max_read_bytes: usize,
}

fn default_tcp_read() -> usize {
    4096
}

/// A PostgreSQL probe: connect (timed as `connect`: TCP, startup, TLS and
/// auth), run `query` (timed as `query`), check the result.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// libpq connection string, as `key=value` pairs
    /// (`host=127.0.0.1 user=app password=${PGPASSWORD} dbname=app`) or a
    /// `postgres://` URL. The password is a secret.
    pub dsn: String,
    /// SQL to run, as a simple query. Default `SELECT 1`.
    #[serde(default = "default_pg_query")]
    pub query: String,
    /// `fresh` (default): connect on every run, so connection cost is seen;
    /// `pooled`: keep one connection, reconnecting after any error.
    #[serde(default)]
    pub mode: PostgresMode,
    /// TLS to the server.
    #[serde(default)]
    pub tls: PostgresTls,
    /// What the result must look like.
    #[serde(default)]
    pub expect: PostgresExpect,
    /// Numeric result columns to export as `sidewatch_query_value` gauges.
    pub values: Option<PostgresValues>,
}

fn default_pg_query() -> String {
    "SELECT 1".into()
}

/// How a PostgreSQL probe connects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostgresMode {
    /// A new connection on every run.
    #[default]
    Fresh,
    /// One kept connection.
    Pooled,
}

/// TLS for a PostgreSQL probe.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTls {
    /// `disable` (default), `require` (encrypt without verifying the
    /// certificate) or `verify-full` (verify against the bundled roots and `ca_file`).
    #[serde(default)]
    pub mode: PostgresTlsMode,
    /// PEM file of CA certificates to trust, for `verify-full`.
    pub ca_file: Option<PathBuf>,
}

/// PostgreSQL TLS modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum PostgresTlsMode {
    #[default]
    #[serde(rename = "disable")]
    Disable,
    #[serde(rename = "require")]
    Require,
    #[serde(rename = "verify-full")]
    VerifyFull,
}

/// Expectations on a PostgreSQL result (reason `assertion`, or `latency`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresExpect {
    /// Exact number of rows.
    pub rows: Option<u64>,
    /// The first column of the first row, as text, must equal this.
    pub value: Option<String>,
    /// The first column of the first row, as text, must match this regex.
    pub value_regex: Option<String>,
    /// Longest acceptable total time.
    pub max_latency: Option<Dur>,
}

/// Result columns exported as gauges:
/// `sidewatch_query_value{probe, column, row}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresValues {
    /// Numeric columns to export, by name.
    pub columns: Vec<String>,
    /// A column whose text becomes the `row` label (e.g. a query id or a
    /// state). Default: the row's position, `0`, `1`, ...
    pub label: Option<String>,
    /// At most this many rows are exported, to bound the series. Default 20,
    /// at most 100. Label texts are cut at 64 characters.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
}

fn default_max_rows() -> usize {
    20
}

/// A Kafka probe: produce a small message with a sequence number to each
/// partition of `topic` in turn, and consume it back with a separate client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The probe topic. Created if missing. Default `sidewatch-probe`.
    #[serde(default = "default_kafka_topic")]
    pub topic: String,
    /// Partitions for a topic the probe creates. Default 1.
    #[serde(default = "default_one")]
    pub partitions: i32,
    /// Replication factor for a topic the probe creates. Default 1.
    #[serde(default = "default_one")]
    pub replication_factor: i32,
    /// Producer acks: `all` (default), `1` or `0`.
    #[serde(default = "default_acks")]
    pub acks: String,
    /// SASL/TLS: `plaintext` (default), `sasl_plaintext`, `ssl`, `sasl_ssl`.
    /// `ssl` and `sasl_ssl` need a build with `--features kafka-tls`.
    #[serde(default = "default_security")]
    pub security_protocol: String,
    /// SASL mechanism, e.g. `PLAIN` or `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    pub sasl_username: Option<String>,
    /// SASL password (a secret; use `${ENV}`).
    pub sasl_password: Option<String>,
    /// PEM CA file for `ssl` and `sasl_ssl`.
    pub ca_file: Option<PathBuf>,
}

fn default_kafka_topic() -> String {
    "sidewatch-probe".into()
}
fn default_one() -> i32 {
    1
}
fn default_acks() -> String {
    "all".into()
}
fn default_security() -> String {
    "plaintext".into()
}
