//! The probe metric families. Their names fall under three prefixes, each a
//! sub-registry the composition root hands over: `probe_` for every kind,
//! `query_` for PostgreSQL value queries and `kafka_` for Kafka stream
//! health. [`ProbeMetrics`] joins the three.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::{Kind, Outcome, Probe};
use crate::net::{Phase, Reason};
use crate::telemetry::labels::{ReasonLabels, ResultLabels, RunResult};
use crate::telemetry::{histograms, FloatGauge, Histograms};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProbeLabels {
    pub(crate) probe: String,
    pub(crate) kind: Kind,
}

type RunLabels = ResultLabels<ProbeLabels>;
type FailureLabels = ReasonLabels<ProbeLabels, Reason>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    probe: String,
    kind: Kind,
    phase: Phase,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ValueLabels {
    probe: String,
    column: String,
    row: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    probe: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    probe: String,
}

crate::telemetry::families! {
    /// The families every probe kind exports, under `probe_`.
    #[derive(Debug)]
    pub(crate) struct ProbeFamilies {
        success: Family<ProbeLabels, Gauge> => "success", "Whether the last run of the probe succeeded (1) or failed (0)",
        runs: Family<RunLabels, Counter> => "runs", "Probe runs, by result",
        failures: Family<FailureLabels, Counter> => "failures", "Failed probe runs, by bounded failure reason",
        duration: Histograms<ProbeLabels> = histograms() => "duration_seconds", "Total time of a probe run, failed runs included",
        phase: Histograms<PhaseLabels> = histograms() => "phase_duration_seconds", "Time spent in each measured phase of a probe run",
        tls_expiry: Family<ProbeLabels, FloatGauge> => "tls_cert_expiry_timestamp_seconds", "Unix time at which the leaf certificate last presented to the probe expires",
        http_status: Family<ProbeLabels, Gauge> => "http_status_code", "HTTP status code of the last response the probe received",
        last_run: Family<ProbeLabels, FloatGauge> => "last_run_timestamp_seconds", "Unix time at which the last run of the probe started",
    }
}

impl ProbeFamilies {
    fn init(&self, probe: &Probe) {
        for result in RunResult::ALL {
            let _ = self.runs.get_or_create(&run_labels(probe, result));
        }
        for reason in probe.kind.reasons() {
            let _ = self.failures.get_or_create(&failure_labels(probe, reason));
        }
    }

    fn record(&self, probe: &Probe, outcome: &Outcome) {
        let labels = labels(probe);
        let ok = outcome.success();
        self.success.get_or_create(&labels).set(i64::from(ok));
        self.runs
            .get_or_create(&run_labels(probe, RunResult::of(ok)))
            .inc();
        if let Some(reason) = outcome.reason() {
            self.failures
                .get_or_create(&failure_labels(probe, reason))
                .inc();
        }
        self.duration
            .get_or_create(&labels)
            .observe(outcome.total.as_secs_f64());
        for &phase in probe.kind.phases() {
            if let Some(d) = outcome.recorder.phase(phase) {
                self.phase
                    .get_or_create(&phase_labels(probe, phase))
                    .observe(d.as_secs_f64());
            }
        }
        // Both describe this run's final response, as blackbox_exporter's
        // do: no response is status 0, no TLS connection no expiry series,
        // so a refused probe never shows the last good run's "200".
        match outcome.recorder.timings.tls_not_after {
            Some(t) => {
                self.tls_expiry.get_or_create(&labels).set(unix_seconds(t));
            }
            None => {
                self.tls_expiry.remove(&labels);
            }
        }
        if probe.kind == Kind::Http {
            let code = outcome.recorder.http_status.unwrap_or(0);
            self.http_status.get_or_create(&labels).set(i64::from(code));
        }
        self.last_run
            .get_or_create(&labels)
            .set(unix_seconds(outcome.started));
    }

    fn remove(&self, name: &str, kind: Kind) {
        let l = ProbeLabels {
            probe: name.to_string(),
            kind,
        };
        for f in [&self.success, &self.http_status] {
            f.remove(&l);
        }
        for f in [&self.tls_expiry, &self.last_run] {
            f.remove(&l);
        }
        self.duration.remove(&l);
        for result in RunResult::ALL {
            self.runs.remove(&RunLabels {
                of: l.clone(),
                result,
            });
        }
        for reason in Reason::ALL {
            self.failures.remove(&FailureLabels {
                of: l.clone(),
                reason,
            });
        }
        for &phase in kind.phases() {
            self.phase.remove(&PhaseLabels {
                probe: l.probe.clone(),
                kind,
                phase,
            });
        }
    }
}

crate::telemetry::families! {
    /// The numeric columns of PostgreSQL value queries, under `query_`.
    #[derive(Debug)]
    pub(crate) struct QueryFamilies {
        values: Family<ValueLabels, FloatGauge> => "value", "A numeric result column of a PostgreSQL probe's value query, by column and row",
        /// The (column, row) pairs each probe exported last, to drop rows that vanish.
        value_rows: Mutex<HashMap<String, Vec<ValueLabels>>>,
    }
}

impl QueryFamilies {
    fn record(&self, probe: &Probe, outcome: &Outcome) {
        if probe.kind != Kind::Postgres {
            return;
        }
        if outcome.result.is_err() {
            // A failed run has no values: keeping the last ones would show
            // a database that is down as healthy.
            self.remove(&probe.name);
            return;
        }
        let now: Vec<ValueLabels> = outcome
            .recorder
            .values
            .iter()
            .map(|v| {
                let l = ValueLabels {
                    probe: probe.name.clone(),
                    column: v.column.clone(),
                    row: v.row.clone(),
                };
                self.values.get_or_create(&l).set(v.value);
                l
            })
            .collect();
        let mut rows = self.value_rows.lock().expect("value rows lock");
        for gone in rows
            .get(&probe.name)
            .into_iter()
            .flatten()
            .filter(|l| !now.contains(l))
        {
            self.values.remove(gone);
        }
        rows.insert(probe.name.clone(), now);
    }

    fn remove(&self, name: &str) {
        for v in self
            .value_rows
            .lock()
            .expect("value rows lock")
            .remove(name)
            .into_iter()
            .flatten()
        {
            self.values.remove(&v);
        }
    }
}

crate::telemetry::families! {
    /// Kafka stream health, under `kafka_`.
    #[derive(Debug)]
    pub(crate) struct KafkaFamilies {
        lost: Family<NameLabels, Counter> => "messages_lost", "Probe messages produced but not consumed back within the probe's timeout",
        duplicated: Family<NameLabels, Counter> => "messages_duplicated", "Probe messages consumed more than once",
        out_of_order: Family<NameLabels, Counter> => "messages_out_of_order", "Probe messages consumed after one with a higher sequence number",
        lag: Family<PartitionLabels, Gauge> => "consumer_lag", "Messages between the probe consumer's position and the partition's high watermark",
        /// Partitions with a lag series, per probe, to remove with the probe.
        lag_series: Mutex<HashMap<String, Vec<PartitionLabels>>>,
    }
}

impl KafkaFamilies {
    fn counters(&self) -> [&Family<NameLabels, Counter>; 3] {
        [&self.lost, &self.duplicated, &self.out_of_order]
    }

    fn init(&self, probe: &Probe) {
        if probe.kind == Kind::Kafka {
            let l = NameLabels {
                probe: probe.name.clone(),
            };
            for f in self.counters() {
                let _ = f.get_or_create(&l);
            }
        }
    }

    fn record(&self, probe: &Probe, outcome: &Outcome) {
        let Some(k) = &outcome.recorder.kafka else {
            return;
        };
        let l = NameLabels {
            probe: probe.name.clone(),
        };
        self.lost.get_or_create(&l).inc_by(k.lost);
        self.duplicated.get_or_create(&l).inc_by(k.duplicates);
        self.out_of_order.get_or_create(&l).inc_by(k.out_of_order);
        if let Some((partition, lag)) = k.lag {
            let pl = PartitionLabels {
                probe: probe.name.clone(),
                partition: partition.to_string(),
            };
            self.lag.get_or_create(&pl).set(lag);
            let mut owned = self.lag_series.lock().expect("lag series lock");
            let list = owned.entry(probe.name.clone()).or_default();
            if !list.contains(&pl) {
                list.push(pl);
            }
        }
    }

    fn remove(&self, name: &str) {
        let n = NameLabels {
            probe: name.to_string(),
        };
        for f in self.counters() {
            f.remove(&n);
        }
        let lag = self
            .lag_series
            .lock()
            .expect("lag series lock")
            .remove(name);
        for l in lag.into_iter().flatten() {
            self.lag.remove(&l);
        }
    }
}

/// Every probe family, updated after each run.
#[derive(Debug)]
pub struct ProbeMetrics {
    probe: ProbeFamilies,
    query: QueryFamilies,
    kafka: KafkaFamilies,
}

impl ProbeMetrics {
    /// Joins the three groups, each registered in its own sub-registry.
    pub(crate) fn new(
        probe: ProbeFamilies,
        query: QueryFamilies,
        kafka: KafkaFamilies,
    ) -> ProbeMetrics {
        ProbeMetrics {
            probe,
            query,
            kafka,
        }
    }

    /// Creates the counters of a new probe at zero, so rates exist from the start.
    pub(crate) fn init(&self, probe: &Probe) {
        self.probe.init(probe);
        self.kafka.init(probe);
    }

    pub(crate) fn record(&self, probe: &Probe, outcome: &Outcome) {
        self.probe.record(probe, outcome);
        self.query.record(probe, outcome);
        self.kafka.record(probe, outcome);
    }

    /// Drops every series of a probe that is no longer configured.
    pub(crate) fn remove(&self, name: &str, kind: Kind) {
        self.probe.remove(name, kind);
        self.query.remove(name);
        self.kafka.remove(name);
    }
}

fn labels(p: &Probe) -> ProbeLabels {
    ProbeLabels {
        probe: p.name.clone(),
        kind: p.kind,
    }
}

fn run_labels(p: &Probe, result: RunResult) -> RunLabels {
    RunLabels {
        of: labels(p),
        result,
    }
}

fn failure_labels(p: &Probe, reason: Reason) -> FailureLabels {
    FailureLabels {
        of: labels(p),
        reason,
    }
}

fn phase_labels(p: &Probe, phase: Phase) -> PhaseLabels {
    PhaseLabels {
        probe: p.name.clone(),
        kind: p.kind,
        phase,
    }
}

pub(crate) fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_client::registry::Registry;

    use super::*;
    use crate::config::Document;
    use crate::net::Failure;
    use crate::plan::Plan;
    use crate::probes::{QueryValue, Recorder};
    use crate::telemetry::encode_prometheus;

    fn probes() -> Vec<std::sync::Arc<Probe>> {
        let yaml = "probes:
  - name: web
    http: {url: 'https://127.0.0.1:1/'}
  - name: db
    postgres:
      dsn: 'host=127.0.0.1 port=1 user=u dbname=d'
      query: SELECT 1 AS pct
      values: {columns: [pct]}
";
        let doc = Document::parse("c", yaml, &|_| None).unwrap();
        Plan::from_document(doc).unwrap().probes
    }

    fn outcome(result: Result<(), Failure>, recorder: Recorder) -> Outcome {
        Outcome {
            started: SystemTime::now(),
            total: Duration::from_millis(3),
            result,
            recorder,
        }
    }

    fn sample<'a>(text: &'a str, family: &str, probe: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(family) && l.contains(&format!("probe=\"{probe}\"")))
            .and_then(|l| l.rsplit(' ').next())
    }

    #[test]
    fn a_failed_run_leaves_no_stale_status_expiry_or_query_value() {
        let mut registry = Registry::default();
        let metrics = ProbeMetrics::new(
            ProbeFamilies::register(registry.sub_registry_with_prefix("probe")),
            QueryFamilies::register(registry.sub_registry_with_prefix("query")),
            KafkaFamilies::register(registry.sub_registry_with_prefix("kafka")),
        );
        let probes = probes();
        let (web, db) = (&probes[0], &probes[1]);
        let mut seen = Recorder {
            http_status: Some(200),
            ..Recorder::default()
        };
        seen.timings.tls_not_after = Some(SystemTime::now() + Duration::from_secs(86_400));
        metrics.record(web, &outcome(Ok(()), seen));
        let mut rows = Recorder::default();
        rows.values.push(QueryValue {
            column: "pct".into(),
            row: String::new(),
            value: 42.0,
        });
        metrics.record(db, &outcome(Ok(()), rows));
        let text = encode_prometheus(&registry);
        assert_eq!(sample(&text, "probe_http_status_code", "web"), Some("200"));
        assert!(
            sample(&text, "probe_tls_cert_expiry", "web").is_some(),
            "{text}"
        );
        assert_eq!(sample(&text, "query_value", "db"), Some("42.0"), "{text}");

        // Refused: no response, no certificate, no query result.
        let refused = || {
            Err(Failure::new(
                Reason::Refused,
                "connect: refused".to_string(),
            ))
        };
        metrics.record(web, &outcome(refused(), Recorder::default()));
        metrics.record(db, &outcome(refused(), Recorder::default()));
        let text = encode_prometheus(&registry);
        assert_eq!(
            sample(&text, "probe_http_status_code", "web"),
            Some("0"),
            "{text}"
        );
        assert_eq!(
            sample(&text, "probe_tls_cert_expiry", "web"),
            None,
            "{text}"
        );
        assert_eq!(sample(&text, "query_value", "db"), None, "{text}");
    }
}
