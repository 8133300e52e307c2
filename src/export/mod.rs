//! Ways out for what sidewatch measures: the HTTP server (`/metrics`,
//! `/healthz`, `/readyz`, and a status page).

pub mod server;
