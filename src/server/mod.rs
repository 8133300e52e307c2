//! The HTTP server on `--listen`. It shares nothing with the probe loops but
//! the metric families (briefly locked per series) and the status board, so
//! it keeps answering however many probes hang.

pub(crate) mod api;
mod listener;
pub(crate) mod runs;

pub(crate) use listener::serve;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::probes::metrics::{KafkaFamilies, ProbeFamilies, ProbeMetrics, QueryFamilies};
use crate::scheduler::{Board, Outcomes};
use crate::telemetry::{encode_openmetrics, encode_prometheus};
use crate::units::human_duration;

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

crate::telemetry::families! {
    /// The server's own metrics.
    #[derive(Debug, Default)]
    pub(crate) struct ServerMetrics {
        scrapes: Counter => "scrapes", "Requests served on /metrics",
        /// Client connections open now.
        connections: Gauge => "connections", "Client connections open on the listen address",
        /// Least recently active connections closed to make room under `max_connections`.
        evicted: Counter => "connections_evicted", "Least recently active connections closed to make room under server.max_connections",
    }
}

/// What the handlers read.
#[derive(Debug)]
pub(crate) struct ServerState {
    pub(crate) registry: Arc<Registry>,
    pub(crate) metrics: ServerMetrics,
    pub(crate) probes: Arc<Outcomes>,
    /// Checks, for the control API; `None` where there are none (`sidewatch load`).
    pub(crate) checks: Option<Arc<crate::check::runner::Checks>>,
    /// False until the probes are scheduled, and again while draining.
    pub(crate) ready: AtomicBool,
}

/// A server state without probes or checks, for a one-off run.
fn run_state(mut registry: Registry) -> ServerState {
    // No probe runs here, so the probe families stay empty and unexported;
    // the state wants them all the same. Same prefixes as the sidecar's.
    let probes = Arc::new(Outcomes::new(ProbeMetrics::new(
        ProbeFamilies::register(registry.sub_registry_with_prefix("probe")),
        QueryFamilies::register(registry.sub_registry_with_prefix("query")),
        KafkaFamilies::register(registry.sub_registry_with_prefix("kafka")),
    )));
    let metrics = ServerMetrics::register(registry.sub_registry_with_prefix("metrics"));
    ServerState {
        registry: Arc::new(registry),
        metrics,
        probes,
        checks: None,
        ready: true.into(),
    }
}

/// The `--listen` of a one-off run (`sidewatch load`, `sidewatch check`):
/// serves `registry` (the run's root, prefixed `sidewatch`) without probes or
/// the control API if an address is given; cancel the token to stop. The
/// registry comes back shared, for the run's push at the end.
pub(crate) async fn serve_run(
    listen: Option<std::net::SocketAddr>,
    registry: Registry,
) -> Result<(Arc<Registry>, Option<CancellationToken>), String> {
    let Some(addr) = listen else {
        return Ok((Arc::new(registry), None));
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let state = Arc::new(run_state(registry));
    let registry = state.registry.clone();
    let stop = CancellationToken::new();
    let limits = crate::config::ServerConfig::default();
    tokio::spawn(serve(listener, state, limits, stop.clone()));
    Ok((registry, Some(stop)))
}

/// One request. Stored runs are read off the workers, so they route here.
async fn handle(state: &ServerState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == "/runs" || path.starts_with("/runs/") {
        let (status, kind, body) = runs::handle(state.checks.clone(), req.method(), path).await;
        let mut response = respond(status, kind, body);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let retry = http::HeaderValue::from_static("1");
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, retry);
        }
        return response;
    }
    route(state, &req)
}

fn route(state: &ServerState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path().starts_with("/api/") {
        let answer = state
            .checks
            .as_ref()
            .and_then(|c| api::handle(c, req.method(), req.uri().path(), req.headers()));
        return match answer {
            Some((status, body)) => respond(status, "application/json", body),
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        };
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/metrics" => metrics(state, req),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.ready.load(Ordering::Relaxed) => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/" => html(index(&state.probes.board)),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn metrics(state: &ServerState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    state.metrics.scrapes.inc();
    let wants_openmetrics = req
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (body, content_type) = if wants_openmetrics {
        (encode_openmetrics(&state.registry), OPENMETRICS_TEXT)
    } else {
        (encode_prometheus(&state.registry), PROMETHEUS_TEXT)
    };
    respond(StatusCode::OK, content_type, body)
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.to_string())
}

fn html(body: String) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, "text/html; charset=utf-8", body)
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

fn index(board: &Board) -> String {
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=utf-8><title>sidewatch</title>\
         <style>body{font-family:sans-serif}td,th{padding:2px 10px;text-align:left}</style>\
         </head><body><h1>sidewatch</h1><p><a href=/metrics>/metrics</a> · \
         <a href=/healthz>/healthz</a> · <a href=/readyz>/readyz</a></p>\
         <table><tr><th>probe</th><th>kind</th><th>target</th><th>last</th><th>reason</th>\
         <th>took</th><th>runs</th><th>failures</th></tr>",
    );
    for (name, st) in board.snapshot() {
        let (last, reason, took) = match &st.last {
            None => ("pending", String::new(), String::new()),
            Some(l) => (
                if l.reason.is_none() { "ok" } else { "failed" },
                l.reason.map(|r| r.to_string()).unwrap_or_default(),
                human_duration(l.total),
            ),
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{last}</td><td>{reason}</td><td>{took}</td>\
             <td>{}</td><td>{}</td></tr>",
            escape(&name),
            st.kind,
            escape(&st.target),
            st.runs,
            st.failures
        );
    }
    s.push_str("</table></body></html>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
