//! Label values from outside sidewatch's control (a PostgreSQL `values.label`
//! row, a threshold's text) reach the exposition. Whatever they hold, the
//! scrape must stay valid: `promtool check metrics` must accept it, and the
//! value must read back whole.

mod common;

use common::promtool_check;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sidewatch::telemetry::{encode_prometheus, find_sample};

const HOSTILE: [&str; 7] = [
    r#"a "quoted" value"#,
    r"back\slash",
    "two\nlines",
    "hash # inside",
    "{braces} and = and ,",
    "replaced \u{fffd} invalid UTF-8",
    r#"all of it: " \ # {} "#,
];

#[test]
fn hostile_label_values_keep_the_scrape_valid() {
    let mut registry = Registry::default();
    let rows: Family<Vec<(String, String)>, Gauge> = Family::default();
    registry.register(
        "sidewatch_test_rows",
        "Rows with hostile labels",
        rows.clone(),
    );
    for (i, v) in HOSTILE.iter().enumerate() {
        rows.get_or_create(&vec![("row".to_string(), v.to_string())])
            .set(i as i64 + 1);
    }
    let text = encode_prometheus(&registry);
    let samples = text
        .lines()
        .filter(|l| l.starts_with("sidewatch_test_rows{"))
        .count();
    assert_eq!(samples, HOSTILE.len(), "every sample survives:\n{text}");
    // A value without characters that need escaping reads back by name.
    assert_eq!(
        find_sample(&text, "sidewatch_test_rows", &[("row", "hash # inside")]),
        Some(4.0),
        "{text}"
    );

    let (ok, msg) = promtool_check(&text);
    assert!(ok, "promtool rejected the exposition: {msg}\n{text}");
}
