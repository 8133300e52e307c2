//! The load engine: open- and closed-model executors on one pacing loop
//! ([`engine`]), exact arrival schedules ([`arrival`]), latency corrected for
//! coordinated omission in HdrHistograms ([`histogram`]), thresholds and abort
//! rules ([`thresholds`]); `plan.rs` compiles a `load:` section into what to
//! send, a [`Workload`], and when, a [`Profile`](arrival::Profile); `run.rs`
//! is the coordinator that drives a workload through a profile, merges the
//! shards' per-second reports, evaluates rules, and builds the result.

pub(crate) mod arrival;
pub(crate) mod client;
pub(crate) mod engine;
pub(crate) mod histogram;
pub mod metrics;
mod plan;
mod run;
pub(crate) mod thresholds;
mod timer;

pub(crate) use plan::{Guardrails, LoadPlan, LoadSection, Workload};
pub use run::{
    run, run_observed, EntryResult, LoadResult, Observer, Point, Progress, Quiet, Verdict,
};
