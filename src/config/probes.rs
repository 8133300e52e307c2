//! The `probes:` section: defaults and one struct per probe kind.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::*;

/// Defaults for every probe.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProbeDefaults {
    /// Time between the starts of two runs of a probe. Default `15s`.
    #[serde(default = "default_interval")]
    pub(crate) interval: Dur,
    /// Hard bound on one run. Default `5s`, or the interval if that is shorter.
    pub(crate) timeout: Option<Dur>,
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
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProbeConfig {
    /// Unique name, the `probe` label. Letters, digits, `_`, `-` and `.`; at most
    /// 64 characters.
    pub(crate) name: String,
    /// Time between the starts of two runs. Must be at least 100ms.
    pub(crate) interval: Option<Dur>,
    /// Hard bound on one run, including DNS, connect, TLS, redirects and the
    /// body. Must not exceed the interval.
    pub(crate) timeout: Option<Dur>,
    /// An HTTP(S) request and its expectations.
    pub(crate) http: Option<HttpConfig>,
    /// A TCP connect, with an optional exchange.
    pub(crate) tcp: Option<TcpConfig>,
    /// A PostgreSQL connection and query.
    pub(crate) postgres: Option<PostgresConfig>,
    /// A Kafka produce and consume round trip.
    pub(crate) kafka: Option<KafkaConfig>,
}

/// An HTTP(S) probe.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpConfig {
    /// `http://` or `https://` URL. User info (`user:pass@`) becomes a Basic
    /// `Authorization` header and is never printed. Neither are the values of
    /// query parameters whose names look secret (`token`, `access_token`,
    /// `api_key`, `apiKey`, `secret`, `password`, `pwd`, `auth`, `sig`,
    /// `X-Amz-Signature`, ...): tables, JSON, logs and the status page show
    /// `***`.
    pub(crate) url: String,
    /// Request method. Default `GET`.
    #[serde(default = "default_method")]
    pub(crate) method: String,
    /// Request headers. Values of `Authorization`, `Cookie`, `Proxy-Authorization`
    /// and any header whose name contains `token`, `secret` or `key` are
    /// treated as secrets.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// Request body.
    pub(crate) body: Option<String>,
    /// Follow 301, 302, 303, 307 and 308 responses. Default `true`. Phase
    /// timings add up over the hops. Secret headers (`Authorization`,
    /// `Cookie`, API keys, URL credentials) go only to the configured scheme,
    /// host and port: a hop elsewhere, or down to plain `http`, gets the
    /// other headers only.
    #[serde(default = "yes")]
    pub(crate) follow_redirects: bool,
    /// Most redirects to follow before failing with reason `protocol`. Default 10.
    #[serde(default = "default_max_redirects")]
    pub(crate) max_redirects: u32,
    /// Largest body read; a larger body fails with reason `protocol`.
    /// Default 1048576 (1 MiB).
    #[serde(default = "default_max_body")]
    pub(crate) max_body_bytes: u64,
    /// TLS settings for `https://` URLs.
    #[serde(default)]
    pub(crate) tls: TlsConfig,
    /// What the response must look like.
    #[serde(default)]
    pub(crate) expect: HttpExpect,
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
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsConfig {
    /// Skip certificate verification. The certificate's expiry is still
    /// exported. Default `false`.
    #[serde(default)]
    pub(crate) insecure_skip_verify: bool,
    /// PEM file of CA certificates to trust in addition to the bundled
    /// Mozilla roots.
    pub(crate) ca_file: Option<PathBuf>,
    /// Server name for SNI and verification, if not the URL's host.
    pub(crate) server_name: Option<String>,
}

/// Expectations on an HTTP response. Any unmet one fails the run.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpExpect {
    /// Accepted status codes: numbers (`200`) or classes (`2xx`). Default `[2xx]`.
    /// A mismatch fails with reason `status`.
    #[serde(default)]
    pub(crate) status: Vec<String>,
    /// Regex the body must match (reason `assertion`).
    pub(crate) body_regex: Option<String>,
    /// Regex the body must not match (reason `assertion`).
    pub(crate) body_not_regex: Option<String>,
    /// Response headers that must be present and match a regex, by name.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// JSON fields of the body that must equal or match a value.
    #[serde(default)]
    pub(crate) json: Vec<JsonExpect>,
    /// Longest acceptable total time; a slower run fails with reason `latency`.
    pub(crate) max_latency: Option<Dur>,
}

/// One JSON field check. Set exactly one of `equals` or `matches`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JsonExpect {
    /// A JSON Pointer (`/data/0/status`) or a dotted path (`data[0].status`).
    pub(crate) path: String,
    /// The field must equal this value: strings compare as text, numbers
    /// numerically, `true`/`false`/`null` as themselves.
    pub(crate) equals: Option<String>,
    /// The field, as text, must match this regex.
    pub(crate) matches: Option<String>,
}

/// A TCP probe: connect, then optionally send bytes and expect a reply.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TcpConfig {
    /// `host:port` or `[v6]:port`.
    pub(crate) address: String,
    /// Bytes to send after connecting. `\n`, `\r`, `\t` and `\\` escapes work.
    pub(crate) send: Option<String>,
    /// Regex the first bytes received must match (reason `assertion`).
    pub(crate) expect: Option<String>,
    /// Most bytes read while waiting for `expect` to match. Default 4096.
    #[serde(default = "default_tcp_read")]
    pub(crate) max_read_bytes: usize,
}

fn default_tcp_read() -> usize {
    4096
}

/// A PostgreSQL probe: connect (timed as `connect`: TCP, startup, TLS and
/// auth), run `query` (timed as `query`), check the result.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresConfig {
    /// libpq connection string, as `key=value` pairs
    /// (`host=127.0.0.1 user=app password=${PGPASSWORD} dbname=app`) or a
    /// `postgres://` URL. The password is a secret. The probe adds
    /// `-c statement_timeout=<timeout>` to the DSN's `options` (yours are
    /// kept) and sets `application_name=sidewatch` unless the DSN names one.
    pub(crate) dsn: String,
    /// SQL to run, as a simple query. Default `SELECT 1`.
    #[serde(default = "default_pg_query")]
    pub(crate) query: String,
    /// `fresh` (default): connect on every run, so connection cost is seen;
    /// `pooled`: keep one connection, reconnecting after any error.
    #[serde(default)]
    pub(crate) mode: PostgresMode,
    /// TLS to the server.
    #[serde(default)]
    pub(crate) tls: PostgresTls,
    /// What the result must look like.
    #[serde(default)]
    pub(crate) expect: PostgresExpect,
    /// Numeric result columns to export as `sidewatch_query_value` gauges.
    pub(crate) values: Option<PostgresValues>,
}

fn default_pg_query() -> String {
    "SELECT 1".into()
}

/// How a PostgreSQL probe connects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PostgresMode {
    /// A new connection on every run.
    #[default]
    Fresh,
    /// One kept connection.
    Pooled,
}

/// TLS for a PostgreSQL probe.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresTls {
    /// `disable` (default), `require` (encrypt without verifying the
    /// certificate) or `verify-full` (verify against the bundled roots and `ca_file`).
    #[serde(default)]
    pub(crate) mode: PostgresTlsMode,
    /// PEM file of CA certificates to trust, for `verify-full`.
    pub(crate) ca_file: Option<PathBuf>,
}

/// PostgreSQL TLS modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub(crate) enum PostgresTlsMode {
    #[default]
    #[serde(rename = "disable")]
    Disable,
    #[serde(rename = "require")]
    Require,
    #[serde(rename = "verify-full")]
    VerifyFull,
}

/// Expectations on a PostgreSQL result (reason `assertion`, or `latency`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresExpect {
    /// Exact number of rows.
    pub(crate) rows: Option<u64>,
    /// The first column of the first row, as text, must equal this.
    pub(crate) value: Option<String>,
    /// The first column of the first row, as text, must match this regex.
    pub(crate) value_regex: Option<String>,
    /// Longest acceptable total time.
    pub(crate) max_latency: Option<Dur>,
}

/// Result columns exported as gauges:
/// `sidewatch_query_value{probe, column, row}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresValues {
    /// Numeric columns to export, by name.
    pub(crate) columns: Vec<String>,
    /// A column whose text becomes the `row` label (e.g. a query id or a
    /// state). Default: the row's position, `0`, `1`, ...
    pub(crate) label: Option<String>,
    /// At most this many rows are exported, to bound the series. Default 20,
    /// at most 100. Label texts are cut at 64 characters.
    #[serde(default = "default_max_rows")]
    pub(crate) max_rows: usize,
}

fn default_max_rows() -> usize {
    20
}

/// A Kafka probe: produce a small message with a sequence number to each
/// partition of `topic` in turn, and consume it back with a separate client.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub(crate) brokers: String,
    /// The probe topic. Created if missing. Default `sidewatch-probe`.
    #[serde(default = "default_kafka_topic")]
    pub(crate) topic: String,
    /// Partitions for a topic the probe creates. Default 1.
    #[serde(default = "default_one")]
    pub(crate) partitions: i32,
    /// Replication factor for a topic the probe creates. Default 1.
    #[serde(default = "default_one")]
    pub(crate) replication_factor: i32,
    /// Producer acks: `all` (default), `1` or `0`.
    #[serde(default = "default_acks")]
    pub(crate) acks: String,
    /// SASL/TLS: `plaintext` (default), `sasl_plaintext`, `ssl`, `sasl_ssl`.
    /// `ssl` and `sasl_ssl` need a build with `--features kafka-tls`.
    #[serde(default = "default_security")]
    pub(crate) security_protocol: String,
    /// SASL mechanism, e.g. `PLAIN` or `SCRAM-SHA-512`.
    pub(crate) sasl_mechanism: Option<String>,
    /// SASL user name.
    pub(crate) sasl_username: Option<String>,
    /// SASL password (a secret; use `${ENV}`).
    pub(crate) sasl_password: Option<String>,
    /// PEM CA file for `ssl` and `sasl_ssl`.
    pub(crate) ca_file: Option<PathBuf>,
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
