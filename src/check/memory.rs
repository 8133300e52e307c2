//! Memory thresholds on the watched service process:
//! `rss_growth < 10MB/min` (the Theil–Sen slope of the lower envelope),
//! `rss_increase < 500MB` (lowest RSS at the end minus at the start, after
//! warm-up) and `rss_max < 4000MB` (the peak sample).

use serde::{Deserialize, Serialize};

use crate::check::leak::{analyse, LeakParams};
use crate::check::result::{Details, Finding, LeakReport, MemPoint};
use crate::config::BuildCx;
use crate::resources::process::Selector;
use crate::units::{bytes, show_bytes, show_slope, slope};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MemMetric {
    Growth,
    Increase,
    Max,
}

/// A parsed memory threshold: `metric < value` (only upper bounds).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MemRule {
    pub(crate) expr: String,
    pub(crate) metric: MemMetric,
    pub(crate) limit: f64,
    pub(crate) inclusive: bool,
}

impl MemRule {
    pub(crate) fn is_memory(expr: &str) -> bool {
        expr.trim_start().starts_with("rss_")
    }

    pub(crate) fn parse(expr: &str) -> Result<MemRule, String> {
        let words: Vec<&str> = expr.split_whitespace().collect();
        let [metric, op, value] = words.as_slice() else {
            return Err(format!("`{expr}`: expected e.g. `rss_growth < 10MB/min`"));
        };
        let metric = match *metric {
            "rss_growth" => MemMetric::Growth,
            "rss_increase" => MemMetric::Increase,
            "rss_max" => MemMetric::Max,
            other => {
                return Err(format!(
                    "unknown memory metric `{other}` (rss_growth, rss_increase, rss_max)"
                ))
            }
        };
        let inclusive = match *op {
            "<" => false,
            "<=" => true,
            other => {
                return Err(format!(
                    "`{other}`: memory thresholds are upper bounds (< or <=)"
                ))
            }
        };
        let limit = match metric {
            MemMetric::Growth => slope(value)?,
            _ => bytes(value)?,
        };
        Ok(MemRule {
            expr: expr.trim().to_string(),
            metric,
            limit,
            inclusive,
        })
    }

    fn holds(&self, v: f64) -> bool {
        if self.inclusive {
            v <= self.limit
        } else {
            v < self.limit
        }
    }

    fn show(&self, v: f64) -> String {
        match self.metric {
            MemMetric::Growth => show_slope(v),
            _ => show_bytes(v),
        }
    }
}

/// Parses the memory thresholds `(index, expr)` of a check; `cx` is the
/// check's.
pub(crate) fn build(
    exprs: &[(usize, &String)],
    selectors: &[Selector],
    cx: &mut BuildCx,
) -> Vec<MemRule> {
    let mut out = Vec::new();
    let mut thresholds = cx.key("thresholds");
    for (i, e) in exprs {
        let mut cx = thresholds.index(*i);
        match MemRule::parse(e) {
            Ok(_) if selectors.is_empty() => {
                cx.problem("memory thresholds watch the service: add `service.processes`")
            }
            Ok(r) => out.push(r),
            Err(err) => cx.problem(err),
        }
    }
    out
}

/// The leak analysis a scenario already made, or one with defaults
/// scaled to the run (warm-up a fifth of it, 20 windows at most 30 s).
fn trend(samples: &[MemPoint], details: &Details) -> LeakReport {
    if let Some(r) = details.leak() {
        return r.clone();
    }
    let span = samples.last().map_or(0.0, |p| p.t) - samples.first().map_or(0.0, |p| p.t);
    let params = LeakParams {
        warmup: (span / 5.0).min(300.0),
        window: (span / 20.0).clamp(0.1, 30.0),
        min_slope: 0.0,
        min_step: 16.0 * 1024.0 * 1024.0,
        alpha: 0.05,
    };
    analyse(samples, &params, "")
}

/// One finding per memory threshold. With no samples a rule fails: it
/// could not be checked.
pub(crate) fn judge(rules: &[MemRule], samples: &[MemPoint], details: &Details) -> Vec<Finding> {
    if rules.is_empty() {
        return Vec::new();
    }
    let seen = samples.iter().any(|p| p.processes > 0);
    let t = trend(samples, details);
    rules
        .iter()
        .map(|r| {
            let v = match r.metric {
                MemMetric::Growth if t.windows >= crate::check::leak::MIN_WINDOWS => {
                    Some(t.slope_bytes_per_second)
                }
                MemMetric::Increase if t.windows >= 2 => Some(t.growth_bytes),
                MemMetric::Max if seen => Some(t.max_rss_bytes),
                _ => None,
            };
            match v {
                Some(v) => Finding::new(&r.expr, r.holds(v), r.show(v), r.expr.clone()),
                None => Finding::new(
                    &r.expr,
                    false,
                    "not enough samples of the service".into(),
                    r.expr.clone(),
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_judges() {
        let r = MemRule::parse("rss_growth < 10MB/min").unwrap();
        assert_eq!(r.metric, MemMetric::Growth);
        assert!((r.limit - 1e7 / 60.0).abs() < 1e-9);
        assert!(MemRule::parse("rss_max > 1GB").is_err());
        assert!(MemRule::parse("rss_peak < 1GB").is_err());
        let pts: Vec<MemPoint> = (0..100)
            .map(|i| MemPoint {
                t: f64::from(i),
                rss: 1e8 + f64::from(i) * 1e6,
                processes: 1,
                start: 1,
                ..MemPoint::default()
            })
            .collect();
        let rules = [
            MemRule::parse("rss_max < 150MB").unwrap(),
            MemRule::parse("rss_max < 250MB").unwrap(),
            MemRule::parse("rss_growth < 10MB/min").unwrap(),
        ];
        let f = judge(&rules, &pts, &Details::Load);
        assert!(!f[0].passed && f[1].passed, "{f:?}");
        assert!(!f[2].passed, "60 MB/min grows faster than 10: {f:?}");
        let none = judge(&rules[..1], &[], &Details::Load);
        assert!(!none[0].passed);
    }
}
