//! From the registry's OpenMetrics exposition to an OTLP
//! `ExportMetricsServiceRequest`.
//!
//! The registry stays the one source of truth: rather than instrument every
//! component twice (prometheus-client and the OTel SDK, whose data types
//! cannot be built from outside it), each export reads the same text
//! `/metrics` serves and maps families one to one: counters to cumulative
//! monotonic sums, gauges to gauges, histograms to cumulative explicit-bucket
//! histograms with the same bounds.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// One metric family parsed from OpenMetrics text.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Family {
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) kind: String,
    pub(crate) samples: Vec<Sample>,
}

/// One sample: the suffix after the family name (`_total`, `_bucket`, ...),
/// its labels, and its value as written.
#[derive(Debug, PartialEq)]
pub(crate) struct Sample {
    pub(crate) suffix: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: String,
}

/// Parses the exposition prometheus-client writes.
pub(crate) fn parse(text: &str) -> Vec<Family> {
    let mut families: Vec<Family> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.push(Family {
                name: name.to_string(),
                help: help.trim_end_matches('.').to_string(),
                ..Family::default()
            });
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            match families.last_mut() {
                Some(f) if f.name == name => f.kind = kind.to_string(),
                _ => families.push(Family {
                    name: name.to_string(),
                    kind: kind.to_string(),
                    ..Family::default()
                }),
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            if let (Some(f), Some(s)) = (families.last_mut(), parse_sample(line)) {
                if let Some(suffix) = s.0.strip_prefix(f.name.as_str()) {
                    f.samples.push(Sample {
                        suffix: suffix.to_string(),
                        labels: s.1,
                        value: s.2,
                    });
                }
            }
        }
    }
    families
}

type Labels = Vec<(String, String)>;

fn parse_sample(line: &str) -> Option<(String, Labels, String)> {
    let line = crate::telemetry::without_exemplar(line);
    let (series, value) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            // `get`: a `}` before the `{` makes no range.
            let labels = parse_labels(line.get(open + 1..close)?)?;
            let value = line[close + 1..].split_whitespace().next()?;
            ((line[..open].to_string(), labels), value)
        }
        None => {
            let mut parts = line.split_whitespace();
            ((parts.next()?.to_string(), Vec::new()), parts.next()?)
        }
    };
    Some((series.0, series.1, value.to_string()))
}

fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        out.push((name.trim_start_matches(',').to_string(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(out)
}

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn attrs(labels: &[(String, String)]) -> Vec<KeyValue> {
    labels.iter().map(|(k, v)| attr(k, v)).collect()
}

fn unit(name: &str) -> &'static str {
    if name.ends_with("_seconds") {
        "s"
    } else if name.ends_with("_bytes") {
        "By"
    } else if name.ends_with("_ratio") {
        "1"
    } else {
        ""
    }
}

/// Timestamps for one export: the start of the cumulative series and now.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Times {
    pub(crate) start_unix_nano: u64,
    pub(crate) now_unix_nano: u64,
}

fn number(s: &Sample, t: Times) -> NumberDataPoint {
    let value = match s.value.parse::<i64>() {
        Ok(i) => number_data_point::Value::AsInt(i),
        Err(_) => number_data_point::Value::AsDouble(parse_f64(&s.value)),
    };
    NumberDataPoint {
        attributes: attrs(&s.labels),
        start_time_unix_nano: t.start_unix_nano,
        time_unix_nano: t.now_unix_nano,
        value: Some(value),
        ..Default::default()
    }
}

fn parse_f64(s: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().unwrap_or(f64::NAN),
    }
}

fn histogram_points(f: &Family, t: Times) -> Vec<HistogramDataPoint> {
    // Points keyed (and ordered) by their labels without `le`.
    let mut points: BTreeMap<Labels, HistogramDataPoint> = BTreeMap::new();
    let mut cumulative: BTreeMap<Labels, Vec<(f64, u64)>> = BTreeMap::new();
    for s in &f.samples {
        let key: Vec<_> = s
            .labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect();
        let p = points
            .entry(key.clone())
            .or_insert_with(|| HistogramDataPoint {
                attributes: attrs(&key),
                start_time_unix_nano: t.start_unix_nano,
                time_unix_nano: t.now_unix_nano,
                ..Default::default()
            });
        match s.suffix.as_str() {
            "_count" => p.count = parse_f64(&s.value) as u64,
            "_sum" => p.sum = Some(parse_f64(&s.value)),
            "_bucket" => {
                let le = s
                    .labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .map_or("+Inf", |(_, v)| v);
                cumulative
                    .entry(key)
                    .or_default()
                    .push((parse_f64(le), parse_f64(&s.value) as u64));
            }
            _ => {}
        }
    }
    for (key, mut buckets) in cumulative {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let p = points.get_mut(&key).expect("bucket belongs to a point");
        let mut prev = 0;
        for (le, c) in buckets {
            if le.is_finite() {
                p.explicit_bounds.push(le);
            }
            p.bucket_counts.push(c.saturating_sub(prev));
            prev = c;
        }
    }
    points.into_values().collect()
}

fn metric(f: &Family, t: Times) -> Option<Metric> {
    let samples = |suffix: &str| {
        f.samples
            .iter()
            .filter(|s| s.suffix == suffix)
            .map(|s| number(s, t))
            .collect()
    };
    let data = match f.kind.as_str() {
        "counter" => metric::Data::Sum(Sum {
            data_points: samples("_total"),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        "gauge" => metric::Data::Gauge(Gauge {
            data_points: samples(""),
        }),
        "histogram" => metric::Data::Histogram(Histogram {
            data_points: histogram_points(f, t),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
        _ => return None,
    };
    Some(Metric {
        name: f.name.clone(),
        description: f.help.clone(),
        unit: unit(&f.name).to_string(),
        data: Some(data),
        ..Default::default()
    })
}

/// Builds one export request from an OpenMetrics exposition.
pub(crate) fn request(
    exposition: &str,
    resource: &[(String, String)],
    t: Times,
) -> ExportMetricsServiceRequest {
    let metrics = parse(exposition)
        .iter()
        .filter_map(|f| metric(f, t))
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: attrs(resource),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "sidewatch".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_value_may_hold_an_exemplar_marker_quotes_and_braces() {
        let line = r#"rows{row="a # b \"q\" {x}",col="n"} 7 # {trace_id="t"} 1.0"#;
        let (name, labels, value) = parse_sample(line).unwrap();
        assert_eq!(name, "rows");
        assert_eq!(
            labels[0],
            ("row".to_string(), r#"a # b "q" {x}"#.to_string())
        );
        assert_eq!(labels[1], ("col".to_string(), "n".to_string()));
        assert_eq!(value, "7");
    }

    const TEXT: &str = "# HELP runs Runs.\n# TYPE runs counter\nruns_total{probe=\"a\",result=\"ok\"} 3\n\
# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n\
lat_seconds_sum{probe=\"a\"} 0.6\nlat_seconds_count{probe=\"a\"} 3\n\
lat_seconds_bucket{le=\"0.1\",probe=\"a\"} 1\nlat_seconds_bucket{le=\"0.5\",probe=\"a\"} 2\nlat_seconds_bucket{le=\"+Inf\",probe=\"a\"} 3\n\
# HELP up Up.\n# TYPE up gauge\nup{x=\"q\\\"uote\"} 0.5\n# EOF\n";

    #[test]
    fn malformed_samples_are_skipped_not_sliced_apart() {
        assert_eq!(parse_sample("x}y{ 1"), None);
        assert_eq!(
            parse_sample("é{a=\"ü\"} 2"),
            Some(("é".into(), vec![("a".into(), "ü".into())], "2".into()))
        );
    }

    fn t() -> Times {
        Times {
            start_unix_nano: 1,
            now_unix_nano: 2,
        }
    }

    #[test]
    fn parses_families_and_escaped_labels() {
        let f = parse(TEXT);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].samples[0].suffix, "_total");
        assert_eq!(
            f[2].samples[0].labels,
            vec![("x".to_string(), "q\"uote".to_string())]
        );
    }

    #[test]
    fn maps_kinds_and_keeps_histogram_buckets() {
        let req = request(TEXT, &[("service.name".into(), "sidewatch".into())], t());
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!()
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsInt(3))
        );
        let Some(metric::Data::Histogram(h)) = &metrics[1].data else {
            panic!()
        };
        let p = &h.data_points[0];
        assert_eq!(p.explicit_bounds, vec![0.1, 0.5]);
        assert_eq!(p.bucket_counts, vec![1, 1, 1]);
        assert_eq!((p.count, p.sum), (3, Some(0.6)));
        assert_eq!(metrics[1].unit, "s");
        let Some(metric::Data::Gauge(g)) = &metrics[2].data else {
            panic!()
        };
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsDouble(0.5))
        );
    }
}
