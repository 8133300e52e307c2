//! prometheus-client writes OpenMetrics only. Prometheus and `promtool check
//! metrics` also want the classic text format (0.0.4), which differs in a few
//! mechanical ways; this module derives it from the OpenMetrics text.

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

pub fn encode_openmetrics(registry: &Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    encode(&mut out, registry).expect("writing to a String cannot fail");
    out
}

/// The value of the first sample of `name` whose labels include every pair in
/// `labels`, from Prometheus or OpenMetrics text.
pub fn find_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            (metric == name && all)
                .then(|| value.parse().ok())
                .flatten()
        })
}

pub fn encode_prometheus(registry: &Registry) -> String {
    openmetrics_to_prometheus(&encode_openmetrics(registry))
}

/// The differences handled: counters are typed under their `_total` name, no
/// `# UNIT` or `# EOF` lines, no exemplars, and `info` becomes a gauge named
/// `<name>_info`.
pub(crate) fn openmetrics_to_prometheus(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<&str> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_string(), "untyped"),
                k => (name.to_string(), k),
            };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name} {}\n", text.replace("\\\"", "\"")));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else if !line.starts_with('#') {
            let sample = without_exemplar(line);
            out.push_str(sample);
            out.push('\n');
        }
    }
    out
}

/// A sample line without its OpenMetrics exemplar (` # {…} value`). The
/// marker is looked for outside quoted label values only: a label value from
/// outside (a PostgreSQL row, a threshold's text) may itself hold ` # `.
pub(crate) fn without_exemplar(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ' ' if !quoted && line[i..].starts_with(" # ") => return &line[..i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;

    #[test]
    fn counters_are_typed_under_their_total_name() {
        let mut r = Registry::default();
        let c: Counter = Counter::default();
        c.inc();
        r.register("jobs", "Jobs done", c);
        let g: Gauge = Gauge::default();
        r.register("queue_depth", "Items waiting", g);
        let text = encode_prometheus(&r);
        assert_eq!(
            text,
            "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 1\n\
             # HELP queue_depth Items waiting.\n# TYPE queue_depth gauge\nqueue_depth 0\n"
        );
    }

    /// Label values from outside (a PostgreSQL row, a threshold's text) may
    /// hold anything; the sample must survive whole, escaped.
    #[test]
    fn hostile_label_values_survive_the_conversion() {
        use prometheus_client::metrics::family::Family;
        let mut r = Registry::default();
        let f: Family<Vec<(String, String)>, Gauge> = Family::default();
        r.register("rows", "Rows", f.clone());
        let hostile = "a # b \"q\" \\ {x} \n}=\u{fffd}";
        f.get_or_create(&vec![("row".into(), hostile.into())])
            .set(7);
        let text = encode_prometheus(&r);
        let sample = text.lines().find(|l| l.starts_with("rows{")).unwrap();
        assert_eq!(
            sample,
            "rows{row=\"a # b \\\"q\\\" \\\\ {x} \\n}=\u{fffd}\"} 7"
        );
    }

    #[test]
    fn exemplars_units_and_eof_are_dropped() {
        let om = "# HELP a_seconds A.\n# TYPE a_seconds histogram\n# UNIT a_seconds seconds\n\
                  a_seconds_bucket{le=\"1.0\"} 1 # {id=\"x\"} 0.5\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus(om),
            "# HELP a_seconds A.\n# TYPE a_seconds histogram\na_seconds_bucket{le=\"1.0\"} 1\n"
        );
    }
}
