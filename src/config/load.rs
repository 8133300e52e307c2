//! The `limits:` section and a load profile (`load:` of a check, or `sidewatch load`).

use schemars::JsonSchema;
use serde::Deserialize;

use super::*;

/// Guardrails for load runs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsConfig {
    /// No load profile may exceed this arrival rate (per sidewatch, after
    /// sharding). Default `20000/s`.
    #[serde(default = "default_max_rate")]
    pub(crate) max_rate: String,
    /// Hosts load may target besides loopback and the hosts the config's
    /// probes already talk to. Anything else is refused before the run.
    #[serde(default)]
    pub(crate) allow_hosts: Vec<String>,
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
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoadConfig {
    /// Constant arrival rate, e.g. `200/s`; with `stages`, the start rate;
    /// with a scenario, its base rate.
    pub(crate) rate: Option<String>,
    /// Constant number of users; with `stages`, the start count.
    pub(crate) concurrency: Option<u32>,
    /// Stages, each ramping linearly from the previous target:
    /// `1m:100/s,30s:1000/s,1m:100/s` (open) or `30s:50,5m:50` (closed).
    pub(crate) stages: Option<String>,
    /// Length of a constant run. Not used with `stages` or a scenario
    /// (the scenario sets the timeline).
    pub(crate) duration: Option<Dur>,
    /// Most connections. Open model: a request that finds none free is
    /// counted as dropped. Closed model: the most users (more are refused
    /// when the config is checked). Default 1000.
    #[serde(default = "default_max_connections")]
    pub(crate) max_connections: usize,
    /// Bound on one request. Default `10s`.
    #[serde(default = "default_request_timeout")]
    pub(crate) timeout: Dur,
    /// Engine threads, each with its own connections and share of the rate.
    /// Default 1.
    #[serde(default = "default_threads")]
    pub(crate) threads: usize,
    /// Weighted requests.
    pub(crate) mix: Vec<MixEntry>,
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
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MixEntry {
    /// The `entry` label. Default: `entry0`, `entry1`, ...
    pub(crate) name: Option<String>,
    /// Relative weight. Default 1.
    #[serde(default = "default_weight")]
    pub(crate) weight: u32,
    /// The request: the same fields as an HTTP probe (`expect.status` applies;
    /// body and JSON expectations do not).
    pub(crate) http: HttpConfig,
}

fn default_weight() -> u32 {
    1
}
