//! The load engine: open- and closed-model executors on one pacing loop
//! ([`engine`]), exact arrival schedules ([`arrival`]), latency corrected for
//! coordinated omission in HdrHistograms ([`histogram`]), thresholds and abort
//! rules ([`thresholds`]); `plan.rs` compiles a `load:` section into what to
//! send, a [`Workload`], and when, a [`Profile`](arrival::Profile); `run.rs`
//! is the coordinator that drives a workload through a profile, merges the
//! shards' per-second reports, evaluates rules, and builds the result.

pub mod arrival;
pub mod client;
pub mod engine;
pub mod histogram;
pub mod metrics;
mod plan;
mod run;
pub mod thresholds;
mod timer;

pub use plan::{Guardrails, LoadPlan, LoadSection, Workload};
pub use run::{
    run, run_observed, EntryResult, LoadResult, Observer, Point, Progress, Quiet, Verdict,
};
