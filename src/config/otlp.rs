//! The `otlp:` section: the push exporter.

use schemars::JsonSchema;
use serde::Deserialize;

use super::*;

/// OTLP metrics export. Histograms keep their buckets; counters are
/// cumulative monotonic sums.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OtlpConfig {
    /// Base URL of the receiver, e.g. `http://otel-collector:4318` for
    /// `http/protobuf` (`/v1/metrics` is appended unless the URL has a path)
    /// or `http://otel-collector:4317` for `grpc`.
    pub(crate) endpoint: String,
    /// `http/protobuf` (default) or `grpc`.
    #[serde(default)]
    pub(crate) protocol: OtlpProtocol,
    /// Time between exports. Default `15s`.
    #[serde(default = "default_otlp_interval")]
    pub(crate) interval: Dur,
    /// Bound on one export request. Default `10s`.
    #[serde(default = "default_otlp_timeout")]
    pub(crate) timeout: Dur,
    /// Extra request headers (e.g. an API key; values are secrets).
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// Most snapshots held while the endpoint is down; the oldest is dropped
    /// first. Default 20.
    #[serde(default = "default_otlp_queue")]
    pub(crate) max_queue: usize,
    /// `service.name` resource attribute. Default `sidewatch`.
    pub(crate) service_name: Option<String>,
    /// TLS settings for `https://` endpoints.
    #[serde(default)]
    pub(crate) tls: TlsConfig,
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub(crate) enum OtlpProtocol {
    /// Protobuf over HTTP POST.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// gRPC (HTTP/2).
    #[serde(rename = "grpc")]
    Grpc,
}
