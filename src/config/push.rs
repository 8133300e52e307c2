//! The `push:` section: where a one-shot run (`sidewatch check`,
//! `sidewatch load`) delivers its series when it ends.

use schemars::JsonSchema;
use serde::Deserialize;

use super::*;

/// Delivery of a one-shot run's series to a Prometheus Pushgateway when
/// `sidewatch check` or `sidewatch load` ends, so a CronJob's verdict
/// outlives its pod. The run's series replace the group
/// `/metrics/job/JOB/check/CHECK` (HTTP PUT, as the Pushgateway documents
/// for batch jobs; it adds `push_time_seconds`). Scrape the Pushgateway
/// with `honor_labels: true`. `--pushgateway URL` sets or overrides
/// `pushgateway`. (The `otlp:` section, if present, is flushed at the end
/// of a one-shot run as well.)
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushConfig {
    /// Base URL of the Pushgateway, e.g. `http://pushgateway:9091`.
    pub(crate) pushgateway: Option<String>,
    /// The `job` label of the group. Default `sidewatch`.
    pub(crate) job: Option<String>,
    /// More grouping labels (e.g. `namespace: shop`); every pushed series
    /// carries them. Names are label names; values must not contain `/`.
    #[serde(default)]
    pub(crate) grouping: BTreeMap<String, String>,
    /// Bound on one push request. Default `5s`.
    pub(crate) timeout: Option<Dur>,
    /// How long a failed push is retried (1 s, 2 s, 4 s, ... apart) before
    /// the run gives up on it. Default `30s`. The failure is logged and
    /// counted (`sidewatch_push_failures_total`); it changes the exit code
    /// only with `--push-required` (exit 4).
    pub(crate) retry_for: Option<Dur>,
    /// HTTP basic auth for the Pushgateway (`--web.config.file`).
    pub(crate) basic_auth: Option<BasicAuth>,
    /// A bearer token for a proxy in front of the Pushgateway (a secret:
    /// use `${VAR}`).
    pub(crate) bearer_token: Option<String>,
    /// TLS settings for an `https://` Pushgateway.
    #[serde(default)]
    pub(crate) tls: TlsConfig,
}

/// A user name and password.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BasicAuth {
    /// User name.
    pub(crate) username: String,
    /// Password (a secret: use `${VAR}`).
    pub(crate) password: String,
}
