//! OTLP push: every interval, a snapshot of the whole registry is encoded and
//! queued; the queue is sent in order. When the receiver is down the newest
//! `max_queue` snapshots wait, older ones are dropped and counted, and
//! retries back off from 1 s up to the interval. Memory stays bounded
//! however long the receiver is away.

pub(crate) mod convert;
mod transport;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use prost::Message;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::{BuildCx, OtlpConfig, OtlpProtocol};
use crate::net::tls;
use crate::telemetry::labels::{NoLabels, ReasonLabels, ResultLabels, RunResult};
use crate::telemetry::{encode_openmetrics, FloatGauge};
use transport::{Failure, Target};

/// Compiled OTLP settings.
#[derive(Debug)]
pub struct OtlpPlan {
    target: Target,
    interval: Duration,
    max_queue: usize,
    resource: Vec<(String, String)>,
}

impl OtlpPlan {
    pub(crate) fn build(cfg: &OtlpConfig, cx: &mut BuildCx) -> Option<OtlpPlan> {
        cx.checked(|cx| {
            let url = match Url::parse(&cfg.endpoint) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                    Some(u)
                }
                Ok(_) => {
                    cx.problem_at("endpoint", "must be an http:// or https:// URL with a host");
                    None
                }
                Err(e) => {
                    cx.problem_at("endpoint", format!("invalid URL: {e}"));
                    None
                }
            };
            for secret in url.iter().flat_map(crate::redact::url_secrets) {
                cx.redactor.add(&secret);
            }
            let mut headers = HeaderMap::new();
            for (k, v) in &cfg.headers {
                cx.redactor.add(v);
                match (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    (Ok(name), Ok(mut value)) => {
                        value.set_sensitive(true);
                        headers.insert(name, value);
                    }
                    _ => cx.key("headers").problem_at(k, "not a valid header"),
                }
            }
            let alpn: &[&[u8]] = match cfg.protocol {
                OtlpProtocol::Grpc => &[b"h2"],
                OtlpProtocol::HttpProtobuf => &[b"http/1.1"],
            };
            let tls = tls::client_config(&cfg.tls, alpn)
                .map_err(|e| cx.key("tls").problem_at("ca_file", e))
                .ok();
            if cfg.max_queue == 0 {
                cx.problem_at("max_queue", "must be at least 1");
            }
            if cfg.interval.0 < Duration::from_millis(100) {
                cx.problem_at("interval", "must be at least 100ms");
            }
            Some(OtlpPlan {
                target: Target {
                    url: url?,
                    protocol: cfg.protocol,
                    headers,
                    timeout: cfg.timeout.0,
                    tls: tls?,
                },
                interval: cfg.interval.0,
                max_queue: cfg.max_queue,
                resource: resource_attributes(cfg.service_name.as_deref(), &|k| {
                    std::env::var(k).ok()
                }),
            })
        })
    }
}

/// Resource attributes by the OTel semantic conventions, from the Kubernetes
/// downward API environment (`POD_NAME`, `POD_NAMESPACE`, `NODE_NAME`) and
/// `OTEL_RESOURCE_ATTRIBUTES`, which the explicit ones override.
fn resource_attributes(
    service: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let mut attrs: Vec<(String, String)> = env("OTEL_RESOURCE_ATTRIBUTES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut set = |k: &str, v: String| {
        attrs.retain(|(key, _)| key != k);
        attrs.push((k.to_string(), v));
    };
    let name = service
        .map(str::to_string)
        .or_else(|| env("OTEL_SERVICE_NAME"));
    set("service.name", name.unwrap_or_else(|| "sidewatch".into()));
    set("service.version", env!("CARGO_PKG_VERSION").into());
    let pod = env("POD_NAME");
    set(
        "service.instance.id",
        pod.clone()
            .or_else(|| env("HOSTNAME"))
            .unwrap_or_else(hostname),
    );
    for (key, var) in [
        ("k8s.pod.name", "POD_NAME"),
        ("k8s.namespace.name", "POD_NAMESPACE"),
        ("k8s.node.name", "NODE_NAME"),
    ] {
        if let Some(v) = env(var) {
            set(key, v);
        }
    }
    attrs
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(0);
    if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".into()
    }
}

crate::telemetry::families! {
    /// The exporter's own families.
    #[derive(Debug)]
    pub(crate) struct OtlpMetrics {
        exports: Family<ResultLabels<NoLabels>, Counter> => "exports", "OTLP export attempts, by result",
        failures: Family<ReasonLabels<NoLabels, Failure>, Counter> => "export_failures", "Failed OTLP export attempts, by reason",
        dropped: Counter => "dropped_batches", "Snapshots dropped without being delivered: queue full, or refused by the receiver",
        queue: Gauge => "queue_batches", "Snapshots waiting to be sent",
        last_success: FloatGauge => "last_success_timestamp_seconds", "Unix time of the last delivered export",
    }
}

impl OtlpMetrics {
    fn init(&self) {
        for result in RunResult::ALL {
            let _ = self.exports.get_or_create(&export(result));
        }
        for reason in Failure::ALL {
            let _ = self.failures.get_or_create(&failure(reason));
        }
    }

    fn delivered(&self) {
        self.exports
            .get_or_create(&export(RunResult::Success))
            .inc();
        self.last_success.set(unix_nanos() as f64 / 1e9);
    }

    fn failed(&self, reason: Failure) {
        self.exports
            .get_or_create(&export(RunResult::Failure))
            .inc();
        self.failures.get_or_create(&failure(reason)).inc();
    }
}

fn export(result: RunResult) -> ResultLabels<NoLabels> {
    ResultLabels {
        of: NoLabels,
        result,
    }
}

fn failure(reason: Failure) -> ReasonLabels<NoLabels, Failure> {
    ReasonLabels {
        of: NoLabels,
        reason,
    }
}

/// A running exporter.
#[derive(Debug)]
pub(crate) struct Exporter {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<bool>,
}

impl Exporter {
    pub(crate) fn start(
        plan: OtlpPlan,
        registry: Arc<Registry>,
        metrics: Arc<OtlpMetrics>,
    ) -> Exporter {
        Exporter::start_with(plan, registry, metrics, Duration::from_secs(2))
    }

    /// Starts an exporter whose last snapshot, at [`stop`](Self::stop), is
    /// retried for up to `final_flush` (a one-shot run's verdict matters
    /// more than the sidecar's quick exit).
    pub(crate) fn start_with(
        plan: OtlpPlan,
        registry: Arc<Registry>,
        metrics: Arc<OtlpMetrics>,
        final_flush: Duration,
    ) -> Exporter {
        metrics.init();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(plan, registry, metrics, cancel.clone(), final_flush));
        Exporter { cancel, task }
    }

    /// Sends a last snapshot; true if everything queued was delivered.
    pub(crate) async fn stop(self) -> bool {
        self.cancel.cancel();
        self.task.await.unwrap_or(false)
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

struct Queue {
    batches: VecDeque<Bytes>,
    max: usize,
    backoff: Duration,
    retry_at: Option<Instant>,
}

async fn run(
    plan: OtlpPlan,
    registry: Arc<Registry>,
    m: Arc<OtlpMetrics>,
    cancel: CancellationToken,
    final_flush: Duration,
) -> bool {
    let start = unix_nanos();
    let mut q = Queue {
        batches: VecDeque::new(),
        max: plan.max_queue,
        backoff: Duration::from_secs(1),
        retry_at: None,
    };
    let mut ticker = tokio::time::interval(plan.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        let retry = q.retry_at;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => enqueue(&mut q, &plan, &registry, start, &m),
            _ = async { tokio::time::sleep_until(retry.expect("guarded")).await }, if retry.is_some() => {}
        }
        // A send in flight is given up on shutdown (its batch stays queued
        // for the last, bounded, flush below).
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = flush(&mut q, &plan, &m) => {}
        }
    }
    // One last snapshot on shutdown, so the final values are not lost; bounded
    // so a dead receiver cannot hold up the exit.
    enqueue(&mut q, &plan, &registry, start, &m);
    let give_up = Instant::now() + final_flush;
    let mut rejected = false;
    let _ = tokio::time::timeout_at(give_up, async {
        q.retry_at = None;
        loop {
            // A rejected last snapshot leaves the queue too, undelivered.
            rejected |= flush(&mut q, &plan, &m).await;
            match q.retry_at {
                Some(at) if !q.batches.is_empty() => tokio::time::sleep_until(at).await,
                _ => break,
            }
        }
    })
    .await;
    q.batches.is_empty() && !rejected
}

fn enqueue(q: &mut Queue, plan: &OtlpPlan, registry: &Registry, start: u64, m: &OtlpMetrics) {
    let times = convert::Times {
        start_unix_nano: start,
        now_unix_nano: unix_nanos(),
    };
    let req = convert::request(&encode_openmetrics(registry), &plan.resource, times);
    if q.batches.len() >= q.max {
        q.batches.pop_front();
        m.dropped.inc();
    }
    q.batches.push_back(Bytes::from(req.encode_to_vec()));
    m.queue.set(q.batches.len() as i64);
}

/// Sends what is queued; whether the receiver rejected (and so dropped) the
/// newest batch.
async fn flush(q: &mut Queue, plan: &OtlpPlan, m: &OtlpMetrics) -> bool {
    let mut rejected = false;
    if q.retry_at.is_some_and(|t| Instant::now() < t) {
        return rejected;
    }
    while let Some(batch) = q.batches.front().cloned() {
        match plan.target.send(batch).await {
            Ok(()) => {
                q.batches.pop_front();
                q.backoff = Duration::from_secs(1);
                q.retry_at = None;
                m.delivered();
            }
            Err(reason) => {
                m.failed(reason);
                if reason == Failure::Rejected {
                    q.batches.pop_front();
                    m.dropped.inc();
                    // The newest batch, the one that matters on the way out.
                    rejected = q.batches.is_empty();
                    continue;
                }
                tracing::debug!(reason = reason.as_str(), "otlp export failed; will retry");
                q.retry_at = Some(Instant::now() + q.backoff);
                q.backoff = (q.backoff * 2).min(plan.interval.max(Duration::from_secs(1)));
                break;
            }
        }
    }
    m.queue.set(q.batches.len() as i64);
    rejected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_attributes_follow_the_conventions() {
        let env = |k: &str| match k {
            "POD_NAME" => Some("api-7d9f".to_string()),
            "POD_NAMESPACE" => Some("shop".to_string()),
            "OTEL_RESOURCE_ATTRIBUTES" => {
                Some("deployment.environment=prod, service.name=ignored".to_string())
            }
            _ => None,
        };
        let attrs = resource_attributes(Some("checkout-sidewatch"), &env);
        let get = |k: &str| {
            attrs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("service.name"), Some("checkout-sidewatch"));
        assert_eq!(get("service.instance.id"), Some("api-7d9f"));
        assert_eq!(get("k8s.pod.name"), Some("api-7d9f"));
        assert_eq!(get("k8s.namespace.name"), Some("shop"));
        assert_eq!(get("deployment.environment"), Some("prod"));
        assert_eq!(attrs.iter().filter(|(k, _)| k == "service.name").count(), 1);
    }
}
