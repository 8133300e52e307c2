//! Ways out for what sidewatch measures: the HTTP server (`/metrics`,
//! `/healthz`, `/readyz`, and a status page) and OTLP push.

pub mod api;
pub mod otlp;
pub mod server;
