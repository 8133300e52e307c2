//! Shared metric plumbing: the bucket layout, the float metric types, the
//! shared label sets, build info, and the two text encodings of a registry.
//! Each component registers its own families; this module owns none of them
//! except `sidewatch_build_info`.

pub(crate) mod cumulative;
pub(crate) mod labels;
mod text;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use text::{encode_openmetrics, encode_prometheus, find_sample};
pub(crate) use text::{openmetrics_to_prometheus, without_exemplar};

/// Implements `Display`, comparison with a `&str`, and prometheus-client's
/// `EncodeLabelValue` for enums with an `as_str`, so the text of each value
/// comes from one match per enum.
macro_rules! str_label {
    ($($t:ty),+) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
        impl prometheus_client::encoding::EncodeLabelValue for $t {
            fn encode(
                &self,
                e: &mut prometheus_client::encoding::LabelValueEncoder,
            ) -> Result<(), std::fmt::Error> {
                prometheus_client::encoding::EncodeLabelValue::encode(&self.as_str(), e)
            }
        }
    )+};
}
pub(crate) use str_label;

/// Declares a closed set of label values from one `Variant => "text"` row
/// each: the enum, `ALL` in the order written, `as_str`, and through
/// [`str_label!`] its `Display`, `&str` comparison and label encoding.
/// Derives and docs are written at the call site.
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order declared.
            pub(crate) const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        $crate::telemetry::str_label!($name);
    };
}
pub(crate) use label_enum;

/// Declares a component's families as a struct and gives it
/// `register(r) -> Self`, which creates each family and registers it in `r`
/// under its short name and HELP text, in the order written: one row a field,
/// `field: Type = init => "name", "help",`. `= init` builds the field
/// (histogram families); without it the field is `Default`. A row without
/// `=> "name", "help"` is state, not a family.
macro_rules! families {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident: $ty:ty $(= $init:expr)? $(=> $metric:literal, $help:literal)?,
            )*
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($(#[$fmeta])* $field: $ty,)*
        }

        impl $name {
            $vis fn register(r: &mut prometheus_client::registry::Registry) -> $name {
                let m = $name {
                    $($field: $crate::telemetry::families!(@init $($init)?),)*
                };
                $($(r.register($metric, $help, m.$field.clone());)?)*
                m
            }
        }
    };
    (@init) => { Default::default() };
    (@init $init:expr) => { $init };
}
pub(crate) use families;

/// A family of latency histograms (see [`LATENCY_BUCKETS`]).
pub(crate) type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// An empty family of latency histograms.
pub(crate) fn histograms<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
    Family::new_with_constructor(latency_histogram)
}

/// A gauge of `f64` values (seconds, ratios, timestamps), stored as bits in
/// an `AtomicU64`.
pub(crate) type FloatGauge = Gauge<f64, AtomicU64>;

/// A counter of `f64` increments (CPU seconds).
pub(crate) type FloatCounter = Counter<f64, AtomicU64>;

/// Latency buckets from 100µs to 30s on a 1-2-5 series, so the seeds'
/// thresholds (20, 50, 100, 200, 500 ms, 1 s, 2 s) fall on bucket edges and
/// `histogram_quantile` needs no interpolation across them.
pub const LATENCY_BUCKETS: [f64; 19] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    10.0, 20.0, 30.0, 60.0,
];

pub(crate) fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
    rustc: String,
}

/// The prefix of every exported family name. A composition root creates its
/// registry with it and hands each component a sub-registry with the
/// component's prefix (`probe`, `load`, ...); components register short names.
///
/// prometheus-client joins the parts with `_`: `sidewatch` + `probe` +
/// `runs` is `sidewatch_probe_runs`, and appends `_total` to a counter's
/// samples itself, so counters are registered without it. Units are part of
/// the short names (`duration_seconds`) rather than given to
/// `register_with_unit`, which would add `# UNIT` lines to the OpenMetrics
/// text.
pub const PREFIX: &str = "sidewatch";

/// Registers `build_info` in `root` (`sidewatch_build_info`), a constant 1
/// labelled with the version, the git revision and the rustc version, the
/// last two set by `build.rs` ("unknown" when it could not tell).
///
/// A registry encodes its own families before those of its sub-registries,
/// so this is the one family to register on the root itself: it comes first
/// either way, and every other family stays in registration order.
pub(crate) fn register_build_info(root: &mut Registry) {
    let family = Family::<BuildLabels, Gauge>::default();
    family
        .get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: env!("SIDEWATCH_REVISION").to_string(),
            rustc: env!("SIDEWATCH_RUSTC").to_string(),
        })
        .set(1);
    root.register(
        "build_info",
        "A constant 1, labelled with the sidewatch version, the git revision and the rustc that built it",
        family,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naming rule every component relies on: prefixes joined with `_`,
    /// `_total` added to counters by the encoder, and a registry's own
    /// families before its sub-registries'.
    #[test]
    fn sub_registry_prefixes_join_into_the_exported_names() {
        let mut root = Registry::with_prefix(PREFIX);
        let runs: Counter = Counter::default();
        root.sub_registry_with_prefix("probe")
            .register("runs", "Runs", runs.clone());
        register_build_info(&mut root);
        let text = encode_prometheus(&root);
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        assert_eq!(
            types,
            [
                "# TYPE sidewatch_build_info gauge",
                "# TYPE sidewatch_probe_runs_total counter"
            ]
        );
        assert!(text.contains("\nsidewatch_probe_runs_total 0\n"));
    }

    /// The output of a command run in the crate's directory, or None.
    fn output_of(program: &str, args: &[&str]) -> Option<String> {
        let out = std::process::Command::new(program)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `sidewatch_build_info` names the git revision this was built from
    /// and the rustc that built it, as `git` and `rustc -V` tell them now.
    #[test]
    fn build_info_names_the_revision_and_the_rustc() {
        let mut root = Registry::with_prefix(PREFIX);
        register_build_info(&mut root);
        let text = encode_prometheus(&root);
        let rustc = output_of("rustc", &["-V"]).expect("rustc -V runs");
        let rustc = rustc.split_whitespace().nth(1).expect("rustc VERSION …");
        // Built from a git checkout the test runs in; from a tarball, git
        // finds no repository and the revision is "unknown".
        let revision = output_of("git", &["rev-parse", "HEAD"]).unwrap_or("unknown".into());
        let want = format!(
            "sidewatch_build_info{{version=\"{}\",revision=\"{revision}\",rustc=\"{rustc}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&want), "want {want} in:\n{text}");
    }
}
