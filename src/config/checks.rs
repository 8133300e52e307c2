//! Checks: scenarios, schedules, baselines, the result store and the
//! control API. Compiled by the check domain.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::problems::BuildCx;
use super::{Dur, LoadConfig};

/// A named check. Give at most one scenario (`soak`, `spike`, `breakpoint`,
/// `curve`, `leak`); without one, the check runs `load` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckConfig {
    /// Unique name, the `check` label and the store's directory for its
    /// runs: 1 to 64 letters, digits, `_`, `-` or `.`, not starting with `.`.
    pub(crate) name: String,
    /// Cron schedule in UTC, 5 fields (`0 2 * * *`) or 6 with seconds. Without
    /// one, the check runs only on request (API or `sidewatch check`).
    pub(crate) schedule: Option<String>,
    /// Hard bound on one run; the run is cancelled (verdict `aborted`) after
    /// it. Default: the scenario's own length plus 10 minutes.
    pub(crate) max_duration: Option<Dur>,
    /// When the schedule fires while another check runs: `skip` (default;
    /// counted in `sidewatch_check_skipped_total`) or `queue` (wait).
    #[serde(default)]
    pub(crate) overlap: Overlap,
    /// The load to drive. With a scenario, `rate` (or `concurrency`) is the
    /// base and the scenario sets the timeline. A `leak` check may omit it
    /// and only observe.
    pub(crate) load: Option<LoadConfig>,
    /// Constant load for a long time, judged window by window for drift.
    pub(crate) soak: Option<SoakConfig>,
    /// Base rate, a burst of `factor` times it, then the base again.
    pub(crate) spike: Option<SpikeConfig>,
    /// Rate stepped up until a break rule holds.
    pub(crate) breakpoint: Option<BreakpointConfig>,
    /// A list of rate levels, each measured on its own.
    pub(crate) curve: Option<CurveConfig>,
    /// Watch the service's memory for a sustained upward trend.
    pub(crate) leak: Option<LeakConfig>,
    /// Conditions the run must meet. Load rules as in docs/load.md
    /// (`p95 < 50ms`, `error_rate < 1% over 30s`) and, when the service's
    /// processes are sampled, memory rules: `rss_growth < 10MB/min`,
    /// `rss_increase < 500MB`, `rss_max < 4000MB`.
    #[serde(default)]
    pub(crate) thresholds: Vec<String>,
    /// Conditions that stop the run early, e.g. `error_rate > 5% for 10s`.
    #[serde(default)]
    pub(crate) abort: Vec<String>,
    /// Compare each run with the accepted baseline (needs `store`).
    pub(crate) baseline: Option<BaselineConfig>,
}

impl CheckConfig {
    /// How many scenario sections are set (valid: 0 or 1).
    pub(crate) fn scenarios(&self) -> usize {
        [
            self.soak.is_some(),
            self.spike.is_some(),
            self.breakpoint.is_some(),
            self.curve.is_some(),
            self.leak.is_some(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count()
    }
}

/// What a scheduled check does when another check is running.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    #[default]
    Skip,
    Queue,
}

/// A soak: the base load for `duration`, cut into windows.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SoakConfig {
    /// How long to hold the load, e.g. `1h`, `24h`.
    pub(crate) duration: Dur,
    /// Window length for drift and per-window error rates. Default `1m`.
    #[serde(default = "default_minute")]
    pub(crate) window: Dur,
    /// p95 in the last windows may exceed p95 in the first windows by at
    /// most this much (and only a statistically significant excess counts).
    /// Default `10%`.
    #[serde(default = "default_ten_percent")]
    pub(crate) drift: String,
    /// ...and by at least this much in absolute terms, so sub-millisecond
    /// jitter on a fast service is not drift. Default `1ms`.
    #[serde(default = "default_millisecond")]
    pub(crate) drift_min: Dur,
    /// Windows at each end compared for drift. Default: a quarter of the
    /// windows, at least 3.
    pub(crate) compare: Option<u32>,
    /// Every window's error rate must stay below this. Default `1%`.
    #[serde(default = "default_one_percent")]
    pub(crate) max_window_error_rate: String,
}

/// A spike: `before` at the base rate, `hold` at `factor` × base, then
/// `after` at the base rate again, watching recovery.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpikeConfig {
    /// Multiplier of the base rate during the spike, e.g. `10`.
    pub(crate) factor: f64,
    /// Time at the base rate before the spike. Default `1m`.
    #[serde(default = "default_minute")]
    pub(crate) before: Dur,
    /// Length of the spike. Default `1m`.
    #[serde(default = "default_minute")]
    pub(crate) hold: Dur,
    /// Time at the base rate after the spike. Default `5m`.
    #[serde(default = "default_five_minutes")]
    pub(crate) after: Dur,
    /// Window for recovery tracking. Default `10s`.
    #[serde(default = "default_ten_seconds")]
    pub(crate) window: Dur,
    /// Error rate during the spike must stay below this. Default `10%`.
    #[serde(default = "default_ten_percent")]
    pub(crate) max_error_rate: String,
    /// p95 during the spike must stay below this, if set.
    pub(crate) max_p95: Option<Dur>,
    /// Recovered means a window's p95 is within this of the pre-spike p95
    /// (or within 1 ms of it) and its error rate within 1 point, for two
    /// windows in a row. Default `20%`.
    #[serde(default = "default_twenty_percent")]
    pub(crate) tolerance: String,
    /// Recovery must take less than this. Default `300s`.
    #[serde(default = "default_five_minutes")]
    pub(crate) max_recovery: Dur,
}

/// A breakpoint (stress) search: rate steps until a break rule holds.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BreakpointConfig {
    /// Explicit rate steps, e.g. `[500/s, 1000/s, 2000/s]`. Without them the
    /// steps are geometric from the load's `rate` by `factor` up to `max`.
    #[serde(default)]
    pub(crate) steps: Vec<String>,
    /// Geometric step factor. Default `2` (doubling).
    #[serde(default = "default_factor")]
    pub(crate) factor: f64,
    /// Highest rate to try (geometric steps). Default: `limits.max_rate`.
    pub(crate) max: Option<String>,
    /// Time at each step. Default `1m`.
    #[serde(default = "default_minute")]
    pub(crate) step: Dur,
    /// A step breaks when any of these holds over the step, e.g.
    /// `error_rate > 5%`, `p95 > 500ms`, `dropped > 1%`. Default
    /// `error_rate > 5%` and `dropped > 1%`.
    #[serde(default, rename = "break")]
    pub(crate) break_on: Vec<String>,
    /// After the break, the load drops to the first step's rate for at
    /// most this long to time the recovery. Default `5m`.
    #[serde(default = "default_five_minutes")]
    pub(crate) recovery: Dur,
    /// Window for recovery tracking. Default `10s`.
    #[serde(default = "default_ten_seconds")]
    pub(crate) window: Dur,
    /// Recovered means a window's p95 is within this of the first step's
    /// p95 (or within 1 ms of it) and its error rate within 1 point, for two
    /// windows in a row. Default `20%`.
    #[serde(default = "default_twenty_percent")]
    pub(crate) tolerance: String,
}

/// A load curve: each level held for `step`, measured on its own.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CurveConfig {
    /// Rate levels, e.g. `[1000/s, 2500/s, 5000/s, 7500/s, 10000/s]`.
    pub(crate) levels: Vec<String>,
    /// Time at each level. Default `1m`.
    #[serde(default = "default_minute")]
    pub(crate) step: Dur,
    /// The start of each level left out of its figures, so the change of
    /// rate does not colour them. Default `5s`.
    #[serde(default = "default_five_seconds")]
    pub(crate) settle: Dur,
}

/// A memory-leak check on the service's resident memory.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeakConfig {
    /// How long to watch (and drive `load`, if given).
    pub(crate) duration: Dur,
    /// Samples from the start (and after a restart) left out. Default `5m`.
    #[serde(default = "default_five_minutes")]
    pub(crate) warmup: Dur,
    /// The trend is fitted to each window's minimum RSS, which removes
    /// garbage-collector sawtooth. Default `30s`.
    #[serde(default = "default_thirty_seconds")]
    pub(crate) window: Dur,
    /// Time between RSS samples. Default `1s`.
    #[serde(default = "default_second")]
    pub(crate) sample_interval: Dur,
    /// The `service.processes` label to watch. Default: the first.
    pub(crate) process: Option<String>,
    /// Practical floor: a significant slope below this is not a leak.
    /// Default `10MB/min` (sizes: B, kB, MB, GB decimal; KiB, MiB, GiB).
    #[serde(default = "default_min_slope")]
    pub(crate) min_slope: String,
    /// One-time jumps larger than this are level shifts, not growth.
    /// Default `16MiB`.
    #[serde(default = "default_min_step")]
    pub(crate) min_step: String,
    /// Significance level of the Mann–Kendall test. Default `0.05`.
    #[serde(default = "default_alpha")]
    pub(crate) alpha: f64,
}

/// Regression tolerances against the accepted baseline. A metric regresses
/// only when it is worse by more than its tolerance **and** a Mann–Whitney
/// test over the per-window values says the difference is significant.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BaselineConfig {
    /// p95 latency may rise by this much. Default `+10%`.
    #[serde(default = "default_latency_tolerance")]
    pub(crate) latency: String,
    /// ...and by at least this much in absolute terms. Default `1ms`.
    #[serde(default = "default_millisecond")]
    pub(crate) latency_min: Dur,
    /// Achieved throughput may fall by this much. Default `-5%`.
    #[serde(default = "default_throughput_tolerance")]
    pub(crate) throughput: String,
    /// The service's peak RSS may rise by this much. Default `+20%`.
    #[serde(default = "default_memory_tolerance")]
    pub(crate) memory: String,
    /// Error rate may rise by this many points. Default `+1%`.
    #[serde(default = "default_one_percent_up")]
    pub(crate) error_rate: String,
    /// Significance level of the per-window test. Default `0.05`.
    #[serde(default = "default_alpha")]
    pub(crate) alpha: f64,
    /// Accept a passing run as the new baseline automatically. Default false.
    #[serde(default)]
    pub(crate) auto_accept: bool,
}

/// Where results and baselines live.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreConfig {
    /// Directory for run results and the index; created if missing.
    pub(crate) dir: PathBuf,
    /// Runs kept per check (accepted baselines are always kept). Default 50.
    #[serde(default = "default_keep")]
    pub(crate) keep: usize,
}

/// The control API: `GET /api/v1/checks`, `POST /api/v1/checks/NAME/run`,
/// `POST /api/v1/checks/NAME/cancel`, all with `Authorization: Bearer TOKEN`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiConfig {
    /// The bearer token; use `${SIDEWATCH_API_TOKEN}`. The API is off when
    /// the token is empty. Surrounding whitespace is trimmed (a header value
    /// cannot carry it); otherwise at least 16 printable ASCII characters
    /// without spaces (`openssl rand -hex 16` gives 32).
    pub(crate) token: String,
}

/// The shortest API token accepted: a guessable token opens the API, and a
/// very short one is below the redactor's floor, so it would never be masked.
const MIN_TOKEN_CHARS: usize = 16;

impl ApiConfig {
    /// The token, trimmed; `None` when it is empty (the API is off) or bad
    /// (reported, never echoed).
    pub(crate) fn build(&self, cx: &mut BuildCx) -> Option<String> {
        let token = self.token.trim();
        if token.is_empty() {
            return None;
        }
        cx.redactor.add(token);
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            cx.problem_at(
                "token",
                "the token must be printable ASCII without spaces (a header value)",
            );
            return None;
        }
        if token.len() < MIN_TOKEN_CHARS {
            cx.problem_at(
                "token",
                format!(
                    "the token has {} characters; use at least {MIN_TOKEN_CHARS} (openssl rand -hex 16)",
                    token.len()
                ),
            );
            return None;
        }
        Some(token.to_string())
    }
}

fn default_millisecond() -> Dur {
    Dur(std::time::Duration::from_millis(1))
}
fn default_second() -> Dur {
    Dur::secs(1)
}
fn default_five_seconds() -> Dur {
    Dur::secs(5)
}
fn default_ten_seconds() -> Dur {
    Dur::secs(10)
}
fn default_thirty_seconds() -> Dur {
    Dur::secs(30)
}
fn default_minute() -> Dur {
    Dur::secs(60)
}
fn default_five_minutes() -> Dur {
    Dur::secs(300)
}
fn default_one_percent() -> String {
    "1%".into()
}
fn default_ten_percent() -> String {
    "10%".into()
}
fn default_twenty_percent() -> String {
    "20%".into()
}
fn default_factor() -> f64 {
    2.0
}
fn default_min_slope() -> String {
    "10MB/min".into()
}
fn default_min_step() -> String {
    "16MiB".into()
}
fn default_alpha() -> f64 {
    0.05
}
fn default_latency_tolerance() -> String {
    "+10%".into()
}
fn default_throughput_tolerance() -> String {
    "-5%".into()
}
fn default_memory_tolerance() -> String {
    "+20%".into()
}
fn default_one_percent_up() -> String {
    "+1%".into()
}
fn default_keep() -> usize {
    50
}
