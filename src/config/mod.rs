//! The configuration file: its structs (whose doc comments are the reference
//! in docs/config.md), loading with `${ENV}` interpolation, and errors that
//! name `FILE:LINE:COL: field.path`.
//!
//! Loading is pure: nothing here opens a socket. Semantic checks (URLs,
//! regexes, certificate files) happen where the values are compiled, in
//! the plan, and report through [`Problems`].

mod checks;
mod duration;
mod env;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};

use serde::Deserialize;

pub use checks::*;
pub use duration::Dur;
pub use env::Substitution;
pub use yaml::{Path, Pos};

/// The whole sidewatch configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP server that serves `/metrics`, `/healthz` and
    /// `/readyz`. `--listen` overrides it. Default `0.0.0.0:9479`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Interval and timeout for probes that do not set their own.
    #[serde(default)]
    pub defaults: ProbeDefaults,
    /// The continuous synthetic probes.
    #[serde(default)]
    pub probes: Vec<ProbeConfig>,
    /// The colocated service whose processes are sampled.
    #[serde(default)]
    pub service: ServiceConfig,
    /// Resource sampling of the host, the container's cgroup and the service.
    #[serde(default)]
    pub resources: ResourcesConfig,
    /// Push every metric family to an OpenTelemetry (OTLP) endpoint.
    pub otlp: Option<OtlpConfig>,
    /// Named checks: a scenario (soak, spike, breakpoint, curve, leak) or a
    /// plain load profile, with thresholds, a schedule and a baseline.
    #[serde(default)]
    pub checks: Vec<CheckConfig>,
    /// Where check results and baselines are kept.
    pub store: Option<StoreConfig>,
    /// The control API on the `listen` address (off unless a token is set).
    pub api: Option<ApiConfig>,
    /// Guardrails every load run obeys.
    #[serde(default)]
    pub limits: LimitsConfig,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9479))
}

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
fn yes() -> bool {
    true
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

/// The colocated service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Process groups to sample; each becomes a `process` label value.
    #[serde(default)]
    pub processes: Vec<ProcessSelector>,
}

/// Selects a group of processes. Set exactly one of `pid_file`, `comm`,
/// `cmdline` or `all_in_pod`. Selection is re-resolved on every sample, so a
/// restarted service (new pid) is followed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSelector {
    /// The `process` label. Letters, digits, `_`, `-`, `.`; unique; not `sidewatch`.
    pub label: String,
    /// A file holding the main pid (the process and none of its children).
    pub pid_file: Option<PathBuf>,
    /// Processes whose name (`/proc/PID/comm`, at most 15 characters) equals this.
    pub comm: Option<String>,
    /// Processes whose command line (arguments joined by spaces) matches this regex.
    pub cmdline: Option<String>,
    /// Every process in the pod (shared process namespace) except sidewatch
    /// itself and the `pause` container.
    #[serde(default)]
    pub all_in_pod: bool,
}

/// Resource sampling.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesConfig {
    /// Time between samples. Default `5s`; at least `100ms`.
    #[serde(default = "default_resource_interval")]
    pub interval: Dur,
    /// Sample the host: CPU, load, memory, swap, disks, network, filesystems.
    /// Default `true`.
    #[serde(default = "yes")]
    pub host: bool,
    /// Mount points whose size and free space are exported. Default `["/"]`.
    #[serde(default = "default_filesystems")]
    pub filesystems: Vec<String>,
    /// Which block devices get a `device` label. Default excludes `loop`,
    /// `ram`, `zram`, `sr` and `dm-` devices.
    #[serde(default)]
    pub disks: LabelFilter,
    /// Which network interfaces get an `interface` label. Default excludes
    /// `lo` and virtual interfaces (`veth`, `cali`, `cni`, `flannel`, `docker`,
    /// `br-`, `virbr`, `tun`, `tap`, `ifb`).
    #[serde(default)]
    pub interfaces: LabelFilter,
    /// The container's cgroup.
    #[serde(default)]
    pub cgroup: CgroupConfig,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        ResourcesConfig {
            interval: default_resource_interval(),
            host: true,
            filesystems: default_filesystems(),
            disks: LabelFilter::default(),
            interfaces: LabelFilter::default(),
            cgroup: CgroupConfig::default(),
        }
    }
}

fn default_resource_interval() -> Dur {
    Dur::secs(5)
}

fn default_filesystems() -> Vec<String> {
    vec!["/".into()]
}

/// Include and exclude regexes for a label's values. At most 32 values are
/// exported, to keep cardinality bounded.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelFilter {
    /// Only values matching this regex.
    pub include: Option<String>,
    /// No values matching this regex (replaces the default exclusion).
    pub exclude: Option<String>,
}

/// The container's cgroup (v2, or v1 where only v1 controllers are mounted).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupConfig {
    /// Sample the cgroup. Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The cgroup directory. Default: found from `/proc/self/cgroup`.
    pub path: Option<PathBuf>,
}

impl Default for CgroupConfig {
    fn default() -> Self {
        CgroupConfig {
            enabled: true,
            path: None,
        }
    }
}

/// OTLP metrics export. Histograms keep their buckets; counters are
/// cumulative monotonic sums.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Base URL of the receiver, e.g. `http://otel-collector:4318` for
    /// `http/protobuf` (`/v1/metrics` is appended unless the URL has a path)
    /// or `http://otel-collector:4317` for `grpc`.
    pub endpoint: String,
    /// `http/protobuf` (default) or `grpc`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Time between exports. Default `15s`.
    #[serde(default = "default_otlp_interval")]
    pub interval: Dur,
    /// Bound on one export request. Default `10s`.
    #[serde(default = "default_otlp_timeout")]
    pub timeout: Dur,
    /// Extra request headers (e.g. an API key; values are secrets).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Most snapshots held while the endpoint is down; the oldest is dropped
    /// first. Default 20.
    #[serde(default = "default_otlp_queue")]
    pub max_queue: usize,
    /// `service.name` resource attribute. Default `sidewatch`.
    pub service_name: Option<String>,
    /// TLS settings for `https://` endpoints.
    #[serde(default)]
    pub tls: TlsConfig,
}

fn default_otlp_interval() -> Dur {
    Dur::secs(15)
}
fn default_otlp_timeout() -> Dur {
    Dur::secs(10)
}
fn default_otlp_queue() -> usize {
    20
}

/// OTLP transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP POST.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// gRPC (HTTP/2).
    #[serde(rename = "grpc")]
    Grpc,
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

/// Guardrails for load runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// No load profile may exceed this arrival rate (per sidewatch, after
    /// sharding). Default `20000/s`.
    #[serde(default = "default_max_rate")]
    pub max_rate: String,
    /// Hosts load may target besides loopback and the hosts the config's
    /// probes already talk to. Anything else is refused before the run.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_rate: default_max_rate(),
            allow_hosts: Vec::new(),
        }
    }
}

fn default_max_rate() -> String {
    "20000/s".into()
}

/// A load profile. Set `rate` (open model: requests start on schedule
/// whatever the target does) or `concurrency` (closed model: N users, each
/// sending its next request when the last one ends).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// Constant arrival rate, e.g. `200/s`; with `stages`, the start rate;
    /// with a scenario, its base rate.
    pub rate: Option<String>,
    /// Constant number of users; with `stages`, the start count.
    pub concurrency: Option<u32>,
    /// Stages, each ramping linearly from the previous target:
    /// `1m:100/s,30s:1000/s,1m:100/s` (open) or `30s:50,5m:50` (closed).
    pub stages: Option<String>,
    /// Length of a constant run. Not used with `stages` or a scenario
    /// (the scenario sets the timeline).
    pub duration: Option<Dur>,
    /// Most connections (open model); a request that finds none free is
    /// counted as dropped. Default 1000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Bound on one request. Default `10s`.
    #[serde(default = "default_request_timeout")]
    pub timeout: Dur,
    /// Engine threads, each with its own connections and share of the rate.
    /// Default 1.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Weighted requests.
    pub mix: Vec<MixEntry>,
}

fn default_max_connections() -> usize {
    1000
}
fn default_request_timeout() -> Dur {
    Dur::secs(10)
}
fn default_threads() -> usize {
    1
}

/// One weighted request of a load mix.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixEntry {
    /// The `entry` label. Default: `entry0`, `entry1`, ...
    pub name: Option<String>,
    /// Relative weight. Default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The request: the same fields as an HTTP probe (`expect.status` applies;
    /// body and JSON expectations do not).
    pub http: HttpConfig,
}

fn default_weight() -> u32 {
    1
}

/// One configuration error, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub pos: Pos,
    pub path: Path,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.pos.line, self.pos.col, self.path, self.message
        )
    }
}

/// All errors found in one configuration file, in file order.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Problems found while compiling config values, by path. Positions are
/// attached later from the document tree.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<(Path, String)>);

impl Problems {
    pub fn push(&mut self, path: &Path, message: impl Into<String>) {
        self.0.push((path.clone(), message.into()));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A parsed config file with its source tree, for locating later problems.
#[derive(Debug)]
pub struct Document {
    pub file: String,
    pub config: Config,
    pub root: yaml::Node,
    /// Values taken from the environment, for redaction.
    pub substitutions: Vec<Substitution>,
}

impl Document {
    /// Reads, interpolates and deserializes a file.
    pub fn load(path: &FsPath) -> Result<Document, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                pos: Pos { line: 1, col: 1 },
                path: Path::default(),
                message: format!("cannot read file: {e}"),
            }])
        })?;
        Self::parse(&file, &text, &|k| std::env::var(k).ok())
    }

    /// Parses config text. `file` is only used in messages.
    pub fn parse(
        file: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Document, ConfigErrors> {
        let err = |pos, path, message| ConfigError {
            file: file.to_string(),
            pos,
            path,
            message,
        };
        let mut root = yaml::parse(text)
            .map_err(|e| ConfigErrors(vec![err(e.pos, Path::default(), e.message)]))?;
        let mut substitutions = Vec::new();
        let mut env_errors = Vec::new();
        root.map_scalars(
            &Path::default(),
            &mut |_, s| {
                *s = env::interpolate(s, env, &mut substitutions)?;
                Ok::<(), String>(())
            },
            &mut env_errors,
        );
        if !env_errors.is_empty() {
            let errors = env_errors
                .into_iter()
                .map(|(path, pos, msg)| err(pos, path, msg))
                .collect();
            return Err(ConfigErrors(errors));
        }
        let config: Config = yaml::from_node(&root).map_err(|e| {
            let pos = e.pos.unwrap_or_else(|| root.pos_of(&e.path));
            ConfigErrors(vec![err(pos, e.path, e.message)])
        })?;
        Ok(Document {
            file: file.to_string(),
            config,
            root,
            substitutions,
        })
    }

    /// Locates problems in the file, sorted by position.
    pub fn locate(&self, problems: Problems) -> ConfigErrors {
        let mut errors: Vec<ConfigError> = problems
            .0
            .into_iter()
            .map(|(path, message)| ConfigError {
                file: self.file.clone(),
                pos: self.root.pos_of(&path),
                path,
                message,
            })
            .collect();
        errors.sort_by_key(|e| (e.pos.line, e.pos.col));
        ConfigErrors(errors)
    }
}

/// Names become label values and file names: 1 to 64 of `[A-Za-z0-9_.-]`.
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
    fn names_must_be_label_safe() {
        let mut p = Problems::default();
        check_name("api-health_1.v2", &Path::default(), &mut p);
        assert!(p.is_empty());
        check_name("has space", &Path::default(), &mut p);
        check_name("", &Path::default(), &mut p);
        assert_eq!(p.0.len(), 2);
    }

    fn parse(text: &str) -> Result<Document, ConfigErrors> {
        Document::parse("t.yaml", text, &|k| (k == "TOKEN").then(|| "s3cret".into()))
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let doc = parse("probes:\n  - name: a\n    tcp: {address: '127.0.0.1:1'}\n").unwrap();
        assert_eq!(doc.config.listen.port(), 9479);
        assert_eq!(doc.config.defaults.interval, Dur::secs(15));
        assert_eq!(doc.config.probes[0].name, "a");
    }

    #[test]
    fn empty_file_is_an_empty_config() {
        let doc = parse("").unwrap();
        assert!(doc.config.probes.is_empty());
    }

    #[test]
    fn unknown_field_is_located() {
        let e = parse("probes:\n  - name: a\n    http:\n      urll: x\n").unwrap_err();
        assert_eq!(e.0.len(), 1);
        let s = e.to_string();
        assert!(
            s.starts_with("t.yaml:4:7: probes[0].http.urll: unknown field `urll`"),
            "{s}"
        );
    }

    #[test]
    fn bad_duration_is_located() {
        let e = parse("probes:\n  - name: a\n    interval: 10q\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("t.yaml:3:15: probes[0].interval:"), "{s}");
        assert!(s.contains("unknown unit"), "{s}");
    }

    #[test]
    fn every_missing_env_var_is_reported() {
        let text =
            "probes:\n  - name: a\n    http:\n      url: ${URL}\n      headers: {X: '${NOPE}'}\n";
        let e = parse(text).unwrap_err();
        assert_eq!(e.0.len(), 2);
        assert_eq!(e.0[0].path.to_string(), "probes[0].http.url");
        assert_eq!(e.0[0].pos.line, 4);
        assert!(e.0[1].message.contains("`NOPE`"));
    }

    #[test]
    fn substitutions_are_remembered() {
        let doc = parse(
            "probes:\n  - name: a\n    http: {url: 'http://x/', headers: {A: 'Bearer ${TOKEN}'}}\n",
        )
        .unwrap();
        assert_eq!(doc.substitutions[0].value, "s3cret");
        assert_eq!(
            doc.config.probes[0].http.as_ref().unwrap().headers["A"],
            "Bearer s3cret"
        );
    }

    #[test]
    fn bad_listen_address_is_located() {
        let e = parse("listen: nowhere\n").unwrap_err();
        assert!(e.to_string().starts_with("t.yaml:1:9: listen:"), "{e}");
    }
}
