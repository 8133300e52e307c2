//! Label sets and label values that several components share, so a label
//! means the same and is spelled the same wherever it is exported.
//!
//! Free-form values from the config (check, entry, process group names)
//! are `String` fields; values from a closed set are enums.

use std::fmt;

use prometheus_client::encoding::{
    EncodeLabelKey, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder,
};

/// `check`: the configured check a series belongs to.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CheckLabels {
    pub(crate) check: String,
}

impl CheckLabels {
    pub(crate) fn new(check: &str) -> CheckLabels {
        CheckLabels {
            check: check.to_string(),
        }
    }
}

/// `process`: the label of a process group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProcessLabels {
    pub(crate) process: String,
}

impl ProcessLabels {
    pub(crate) fn new(process: &str) -> ProcessLabels {
        ProcessLabels {
            process: process.to_string(),
        }
    }
}

/// No labels of its own: the subject of a family that only has `result` or
/// `reason`.
#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq)]
pub(crate) struct NoLabels;

impl EncodeLabelSet for NoLabels {
    fn encode(&self, _: &mut LabelSetEncoder) -> fmt::Result {
        Ok(())
    }
}

super::label_enum! {
    /// The `result` label: how a run, a request or an export ended.
    #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
    pub(crate) enum RunResult {
        Success => "success",
        Failure => "failure",
    }
}

impl RunResult {
    pub(crate) fn of(ok: bool) -> RunResult {
        if ok {
            RunResult::Success
        } else {
            RunResult::Failure
        }
    }
}

/// The labels of `of`, then `result`.
///
/// Generic over the subject (a probe, a load entry, nothing), which the
/// derive macro does not support, hence the hand-written encoding.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct ResultLabels<L> {
    pub(crate) of: L,
    pub(crate) result: RunResult,
}

impl<L: EncodeLabelSet> EncodeLabelSet for ResultLabels<L> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        self.of.encode(encoder)?;
        label(encoder, "result", &self.result)
    }
}

/// The labels of `of`, then `reason`: a bounded failure reason `R`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct ReasonLabels<L, R> {
    pub(crate) of: L,
    pub(crate) reason: R,
}

impl<L: EncodeLabelSet, R: EncodeLabelValue> EncodeLabelSet for ReasonLabels<L, R> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        self.of.encode(encoder)?;
        label(encoder, "reason", &self.reason)
    }
}

/// Appends one `key="value"` pair, as the derived encoders do per field.
fn label(encoder: &mut LabelSetEncoder, key: &str, value: &impl EncodeLabelValue) -> fmt::Result {
    let mut label = encoder.encode_label();
    let mut key_encoder = label.encode_label_key()?;
    EncodeLabelKey::encode(&key, &mut key_encoder)?;
    let mut value_encoder = key_encoder.encode_label_value()?;
    value.encode(&mut value_encoder)?;
    value_encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::registry::Registry;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Subject {
        probe: String,
        kind: String,
    }

    #[test]
    fn result_and_reason_follow_the_subject_labels() {
        let mut r = Registry::default();
        let results = Family::<ResultLabels<Subject>, Counter>::default();
        let reasons = Family::<ReasonLabels<NoLabels, RunResult>, Counter>::default();
        r.register("runs", "Runs", results.clone());
        r.register("failures", "Failures", reasons.clone());
        let of = Subject {
            probe: "p".into(),
            kind: "http".into(),
        };
        results
            .get_or_create(&ResultLabels {
                of,
                result: RunResult::of(false),
            })
            .inc();
        reasons
            .get_or_create(&ReasonLabels {
                of: NoLabels,
                reason: RunResult::Success,
            })
            .inc();
        let text = crate::telemetry::encode_prometheus(&r);
        assert!(text.contains("runs_total{probe=\"p\",kind=\"http\",result=\"failure\"} 1\n"));
        assert!(text.contains("failures_total{reason=\"success\"} 1\n"));
    }
}
