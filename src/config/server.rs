//! The HTTP listener's limits (`listen`: `/metrics`, health, the status page,
//! the control API), so no client can make the sidecar the reason its pod
//! suffers.

use schemars::JsonSchema;
use serde::Deserialize;

use super::problems::BuildCx;
use super::Dur;

/// Limits of the HTTP listener. Read at start; a reload keeps them, like
/// `listen`. Prometheus' own web server caps connections by blocking
/// `accept` (`--web.max-connections`), which leaves a scraper waiting behind
/// idle clients; here a new connection over the cap closes the least
/// recently active one instead (an idle keep-alive, a slow client, a stalled
/// reader), so `/metrics` keeps answering.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerConfig {
    /// Most client connections open at once. A new connection over it
    /// closes the least recently active one
    /// (`sidewatch_metrics_connections_evicted_total`). Default 128.
    #[serde(default = "default_max_connections")]
    pub(crate) max_connections: usize,
    /// How long a client may take to send a request's headers. The wait for
    /// the next request on a keep-alive connection counts too, so this is
    /// also the keep-alive idle limit. Default 10s.
    #[serde(default = "default_read_header_timeout")]
    pub(crate) read_header_timeout: Dur,
    /// How long writing a response may make no progress (a client that
    /// stops reading) before the connection is closed. Default 10s.
    #[serde(default = "default_write_timeout")]
    pub(crate) write_timeout: Dur,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: default_max_connections(),
            read_header_timeout: default_read_header_timeout(),
            write_timeout: default_write_timeout(),
        }
    }
}

/// Connections open at once; ~12 KB each at most, so the cap bounds the
/// listener's memory near 1.5 MB.
fn default_max_connections() -> usize {
    128
}
fn default_read_header_timeout() -> Dur {
    Dur::secs(10)
}
fn default_write_timeout() -> Dur {
    Dur::secs(10)
}

impl ServerConfig {
    /// Reports out-of-range values.
    pub(crate) fn check(&self, cx: &mut BuildCx) {
        if !(1..=65_536).contains(&self.max_connections) {
            cx.problem_at("max_connections", "must be between 1 and 65536");
        }
        for (key, d) in [
            ("read_header_timeout", self.read_header_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if d.0.is_zero() {
                cx.problem_at(key, "must be more than 0");
            }
        }
    }
}
