//! Pushgateway delivery: when a one-shot run (`sidewatch check`,
//! `sidewatch load`) ends, its whole registry, as Prometheus text, replaces
//! the group `/metrics/job/JOB/check/CHECK[/LABEL/VALUE...]` with an HTTP
//! PUT, the way the Pushgateway documents batch jobs (the gateway adds
//! `push_time_seconds`). A failed push is retried with backoff until
//! `retry_for` has passed; each attempt re-renders the registry, so the
//! delivered body counts the attempts that failed before it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rustls::ClientConfig;
use tokio::time::Instant;
use url::Url;

use crate::config::{BuildCx, PushConfig};
use crate::net::{dial, tls, Timings};
use crate::telemetry::labels::{NoLabels, ReasonLabels, ResultLabels, RunResult};
use crate::telemetry::{encode_prometheus, PREFIX};

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Compiled `push:` settings.
pub struct PushPlan {
    url: Url,
    job: String,
    grouping: Vec<(String, String)>,
    /// `Authorization`, marked sensitive so it is never printed.
    auth: Option<HeaderValue>,
    timeout: Duration,
    retry_for: Duration,
    tls: Arc<ClientConfig>,
}

impl PushPlan {
    /// `url` (from `--pushgateway`) wins over `push.pushgateway`; with
    /// neither there is nothing to push to.
    pub(crate) fn build(cfg: &PushConfig, url: Option<&str>, cx: &mut BuildCx) -> Option<PushPlan> {
        let url = url.or(cfg.pushgateway.as_deref())?;
        cx.checked(|cx| {
            let url = parse_url(url, cx);
            let job = cfg.job.clone().unwrap_or_else(|| PREFIX.to_string());
            check_value("job", &job, cx);
            for (k, v) in &cfg.grouping {
                let mut g = cx.key("grouping");
                if !label_name(k) || matches!(k.as_str(), "job" | "check" | "shard") {
                    g.problem_at(k, "must be a label name other than job, check or shard");
                }
                check_value(k, v, &mut g);
            }
            let auth = auth_header(cfg, cx);
            let tls = tls::client_config(&cfg.tls, &[b"http/1.1"])
                .map_err(|e| cx.key("tls").problem_at("ca_file", e))
                .ok();
            Some(PushPlan {
                url: url?,
                job,
                grouping: cfg.grouping.clone().into_iter().collect(),
                auth,
                timeout: cfg.timeout.map_or(Duration::from_secs(5), |d| d.0),
                retry_for: cfg.retry_for.map_or(Duration::from_secs(30), |d| d.0),
                tls: tls?,
            })
        })
    }

    /// How long a failed push is retried.
    pub(crate) fn retry_for(&self) -> Duration {
        self.retry_for
    }

    /// The gateway, for messages: no password, no query.
    pub(crate) fn display(&self) -> String {
        crate::redact::mask_url(&self.url)
    }
}

/// By hand, so that a password in the URL is never printed.
impl std::fmt::Debug for PushPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushPlan")
            .field("url", &self.display())
            .field("job", &self.job)
            .field("grouping", &self.grouping)
            .field("auth", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

fn parse_url(text: &str, cx: &mut BuildCx) -> Option<Url> {
    match Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            for secret in crate::redact::url_secrets(&u) {
                cx.redactor.add(&secret);
            }
            Some(u)
        }
        Ok(_) => {
            cx.problem_at(
                "pushgateway",
                "must be an http:// or https:// URL with a host",
            );
            None
        }
        Err(e) => {
            cx.problem_at("pushgateway", format!("invalid URL: {e}"));
            None
        }
    }
}

fn label_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with("__")
}

fn check_value(key: &str, value: &str, cx: &mut BuildCx) {
    if value.is_empty() || value.contains('/') {
        cx.problem_at(key, "must be non-empty and contain no `/`");
    }
}

/// Basic auth or a bearer token, as a sensitive header value; both secrets
/// go to the redactor.
fn auth_header(cfg: &PushConfig, cx: &mut BuildCx) -> Option<HeaderValue> {
    let text = match (&cfg.basic_auth, &cfg.bearer_token) {
        (Some(_), Some(_)) => {
            cx.problem("set basic_auth or bearer_token, not both");
            return None;
        }
        (Some(b), None) => {
            cx.redactor.add(&b.password);
            let pair = format!("{}:{}", b.username, b.password);
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            cx.redactor.add(&encoded);
            format!("Basic {encoded}")
        }
        (None, Some(t)) => {
            cx.redactor.add(t);
            format!("Bearer {t}")
        }
        (None, None) => return None,
    };
    match HeaderValue::from_str(&text) {
        Ok(mut v) => {
            v.set_sensitive(true);
            Some(v)
        }
        Err(_) => {
            cx.problem("credentials must be visible ASCII");
            None
        }
    }
}

crate::telemetry::label_enum! {
    /// Why a push failed; the `reason` label of `sidewatch_push_failures_total`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub(crate) enum PushFailure {
        /// No connection (DNS, refused, TLS).
        Unreachable => "unreachable",
        /// No answer within `timeout`.
        Timeout => "timeout",
        /// The gateway answered 5xx or 429; retried.
        Unavailable => "unavailable",
        /// The gateway refused the push (4xx: bad credentials, inconsistent
        /// series); not retried.
        Refused => "refused",
        /// The exchange broke mid-way.
        Protocol => "protocol",
    }
}

crate::telemetry::families! {
    /// The pusher's own families, registered in the run's registry so the
    /// pushed body, OTLP and `--listen` carry them.
    #[derive(Debug)]
    pub struct PushMetrics {
        requests: Family<ResultLabels<NoLabels>, Counter> => "requests", "Pushes of the run's series to the Pushgateway, by result",
        failures: Family<ReasonLabels<NoLabels, PushFailure>, Counter> => "failures", "Failed pushes to the Pushgateway, by reason",
    }
}

impl PushMetrics {
    /// Every result and reason at zero, so a push that never failed still
    /// shows its failure series.
    pub fn init(&self) {
        for result in RunResult::ALL {
            let _ = self.requests.get_or_create(&ResultLabels {
                of: NoLabels,
                result,
            });
        }
        for reason in PushFailure::ALL {
            let _ = self.failures.get_or_create(&ReasonLabels {
                of: NoLabels,
                reason,
            });
        }
    }

    fn counted(&self, outcome: Result<(), PushFailure>) {
        let result = RunResult::of(outcome.is_ok());
        self.requests
            .get_or_create(&ResultLabels {
                of: NoLabels,
                result,
            })
            .inc();
        if let Err(reason) = outcome {
            self.failures
                .get_or_create(&ReasonLabels {
                    of: NoLabels,
                    reason,
                })
                .inc();
        }
    }
}

/// Pushes `registry` as the group of `check` (plus `extra` grouping labels,
/// e.g. the shard), retrying until `retry_for` has passed. Returns the
/// number of attempts, or the last failure and the attempts made.
pub(crate) async fn deliver(
    plan: &PushPlan,
    check: &str,
    extra: &[(&str, String)],
    registry: &Registry,
    metrics: &PushMetrics,
) -> Result<u32, (PushFailure, u32)> {
    let path = group_path(plan, check, extra);
    let give_up = Instant::now() + plan.retry_for;
    let mut backoff = Duration::from_secs(1);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let body = Bytes::from(encode_prometheus(registry));
        let outcome = tokio::time::timeout(plan.timeout, put(plan, &path, body))
            .await
            .unwrap_or(Err(PushFailure::Timeout));
        metrics.counted(outcome);
        let reason = match outcome {
            Ok(()) => return Ok(attempts),
            Err(reason) => reason,
        };
        let retry_at = Instant::now() + backoff;
        if reason == PushFailure::Refused || retry_at > give_up {
            return Err((reason, attempts));
        }
        tracing::warn!(
            pushgateway = %plan.display(),
            reason = reason.as_str(),
            "push failed; retrying in {}",
            crate::units::human_duration(backoff)
        );
        tokio::time::sleep_until(retry_at).await;
        backoff *= 2;
    }
}

/// `/metrics/job/JOB/check/CHECK/...` under the gateway's base path. Values
/// are base64url-encoded (`label@base64/…`), which the Pushgateway accepts
/// for any value, so no character needs escaping.
fn group_path(plan: &PushPlan, check: &str, extra: &[(&str, String)]) -> String {
    let mut path = plan.url.path().trim_end_matches('/').to_string();
    path.push_str("/metrics");
    let labels = [("job", plan.job.as_str()), ("check", check)]
        .into_iter()
        .chain(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .chain(plan.grouping.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for (k, v) in labels {
        let encoded = base64::engine::general_purpose::URL_SAFE.encode(v);
        path.push_str(&format!("/{k}@base64/{encoded}"));
    }
    path
}

async fn put(plan: &PushPlan, path: &str, body: Bytes) -> Result<(), PushFailure> {
    let host = plan.url.host_str().unwrap_or_default();
    let port = plan.url.port_or_known_default().unwrap_or(80);
    let mut rec = Timings::default();
    let tcp = dial::dial(host, port, &mut rec)
        .await
        .map_err(|_| PushFailure::Unreachable)?;
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = Method::PUT;
    *req.uri_mut() = path.parse().map_err(|_| PushFailure::Protocol)?;
    let h = req.headers_mut();
    crate::net::collector_headers(h, &plan.url, TEXT_FORMAT);
    if let Some(a) = &plan.auth {
        h.insert(AUTHORIZATION, a.clone());
    }
    if plan.url.scheme() == "https" {
        let name = tls::server_name(host).map_err(|_| PushFailure::Unreachable)?;
        let stream = tls::handshake(&plan.tls, name, tcp, &mut rec)
            .await
            .map_err(|_| PushFailure::Unreachable)?;
        exchange(TokioIo::new(stream), req).await
    } else {
        exchange(TokioIo::new(tcp), req).await
    }
}

async fn exchange<T>(io: TokioIo<T>, req: Request<Full<Bytes>>) -> Result<(), PushFailure>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|_| PushFailure::Protocol)?;
    let conn = tokio::spawn(conn);
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|_| PushFailure::Protocol)?;
        let status = resp.status().as_u16();
        // Read (and drop) the small answer so the gateway is not cut off.
        let _ = resp.into_body().collect().await;
        match status {
            200..=299 => Ok(()),
            429 | 500..=599 => Err(PushFailure::Unavailable),
            _ => Err(PushFailure::Refused),
        }
    }
    .await;
    conn.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(cfg: &PushConfig, url: &str) -> (Option<PushPlan>, crate::redact::Redactor) {
        let mut problems = crate::config::Problems::default();
        let mut redactor = crate::redact::Redactor::default();
        let plan = PushPlan::build(
            cfg,
            Some(url),
            &mut BuildCx::new(&mut problems, &mut redactor),
        );
        (plan, redactor)
    }

    #[test]
    fn group_paths_encode_every_value() {
        let cfg = PushConfig {
            grouping: [("namespace".to_string(), "shop".to_string())].into(),
            ..PushConfig::default()
        };
        let plan = build(&cfg, "http://gw:9091/base/").0.unwrap();
        let path = group_path(&plan, "nightly", &[("shard", "2".into())]);
        assert_eq!(
            path,
            "/base/metrics/job@base64/c2lkZXdhdGNo/check@base64/bmlnaHRseQ==\
             /shard@base64/Mg==/namespace@base64/c2hvcA=="
        );
    }

    #[test]
    fn credentials_are_redacted_and_checked() {
        let cfg = PushConfig {
            bearer_token: Some("t0ken-s3cret".into()),
            grouping: [("job".to_string(), "x".to_string())].into(),
            ..PushConfig::default()
        };
        let (plan, r) = build(&cfg, "http://gw:9091");
        assert!(plan.is_none(), "`job` is not an extra grouping label");
        let cfg = PushConfig {
            bearer_token: Some("t0ken-s3cret".into()),
            ..PushConfig::default()
        };
        let plan = build(&cfg, "http://u:pa55word@gw:9091").0.unwrap();
        let shown = format!("{plan:?}");
        assert!(
            !shown.contains("pa55word") && !shown.contains("t0ken"),
            "{shown}"
        );
        assert_eq!(r.redact("Bearer t0ken-s3cret"), "Bearer ***");
    }
}
