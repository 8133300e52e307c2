//! Live load-run series, registered by the load component, updated once a
//! second by the coordinator (never from the send path).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use super::engine::EntryStats;
use crate::net::Reason;
use crate::telemetry::labels::{CheckLabels, ReasonLabels, ResultLabels, RunResult};
use crate::telemetry::{histograms, FloatGauge, Histograms};

/// A mix entry of a check's load.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EntryLabels {
    check: String,
    entry: String,
}

crate::telemetry::families! {
    #[derive(Debug)]
    pub struct LoadMetrics {
        requests: Family<ResultLabels<EntryLabels>, Counter> => "requests", "Load requests completed, by mix entry and result",
        errors: Family<ReasonLabels<EntryLabels, Reason>, Counter> => "errors", "Failed load requests, by mix entry and bounded reason",
        latency: Histograms<EntryLabels> = histograms() => "latency_seconds", "Load request latency from the intended start time (corrected for coordinated omission)",
        service: Histograms<EntryLabels> = histograms() => "service_time_seconds", "Load request latency from the actual send",
        dropped: Family<CheckLabels, Counter> => "dropped", "Requests the engine could not start on time because the connection cap was reached",
        target: Family<CheckLabels, FloatGauge> => "target_rate", "Target arrival rate in requests per second (open model) or active users (closed model) right now",
        active: Family<CheckLabels, Gauge> => "active", "1 while a load run of the check is in progress",
        users: Family<CheckLabels, Gauge> => "in_flight", "Requests in flight in the load run",
    }
}

impl LoadMetrics {
    pub(crate) fn start(&self, check: &str) {
        let l = CheckLabels::new(check);
        self.active.get_or_create(&l).set(1);
        let _ = self.dropped.get_or_create(&l);
    }

    pub(crate) fn finish(&self, check: &str) {
        let l = CheckLabels::new(check);
        self.active.get_or_create(&l).set(0);
        self.target.get_or_create(&l).set(0.0);
        self.users.get_or_create(&l).set(0);
    }

    /// Adds one second of counts.
    pub(crate) fn second(
        &self,
        check: &str,
        names: &[String],
        entries: &[EntryStats],
        target: f64,
        in_flight: usize,
    ) {
        let cl = CheckLabels::new(check);
        self.target.get_or_create(&cl).set(target);
        self.users.get_or_create(&cl).set(in_flight as i64);
        for (name, e) in names.iter().zip(entries) {
            let el = EntryLabels {
                check: check.into(),
                entry: name.clone(),
            };
            let errors = e.errors();
            let res = |result| ResultLabels {
                of: el.clone(),
                result,
            };
            self.requests
                .get_or_create(&res(RunResult::Success))
                .inc_by(e.requests - errors);
            self.requests
                .get_or_create(&res(RunResult::Failure))
                .inc_by(errors);
            for (i, n) in e.errors.iter().enumerate().filter(|(_, n)| **n > 0) {
                let l = ReasonLabels {
                    of: el.clone(),
                    reason: Reason::ALL[i],
                };
                self.errors.get_or_create(&l).inc_by(*n);
            }
            self.dropped.get_or_create(&cl).inc_by(e.dropped);
            observe(&self.latency.get_or_create(&el), e.latency.recorded());
            observe(&self.service.get_or_create(&el), e.service.recorded());
        }
    }
}

fn observe(h: &Histogram, values: impl Iterator<Item = (f64, u64)>) {
    for (v, n) in values {
        for _ in 0..n {
            h.observe(v);
        }
    }
}
