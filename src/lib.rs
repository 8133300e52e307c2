//! sidewatch: a sidecar that probes the service next to it and exports what it
//! sees as Prometheus series.
//!
//! Data flow: [`config`] parses and locates → [`plan`] compiles (no sockets) →
//! [`app`] wires [`scheduler`] (probe loops over [`probes`]) and
//! [`resources`] (the sampler) to [`export`] (the HTTP server and OTLP push)
//! through the families in [`telemetry`]. [`load`] is the load engine behind
//! `sidewatch load`; [`report`] renders tables, summaries and progress.

pub mod app;
pub mod check;
pub mod cli;
pub mod config;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod load;
pub mod net;
pub mod otlp;
pub mod plan;
pub mod probes;
pub mod push;
pub mod redact;
pub mod report;
pub mod resources;
pub mod scheduler;
pub mod server;
pub mod stats;
pub mod telemetry;
pub mod units;
