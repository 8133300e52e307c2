//! Thresholds and abort rules.
//!
//! ```text
//! rule    := metric [ "[" entry "]" ] op value [ "over" DURATION ] [ "for" DURATION ]
//! metric  := p50 | p90 | p95 | p99 | p999 | max | mean   (value: a duration, 50ms)
//!          | error_rate | dropped                         (value: 1% or 0.01)
//!          | rate                                        (value: 5000/s)
//! op      := < | <= | > | >=
//! ```
//!
//! A threshold states what must hold: `p95 < 50ms` over the whole run, and
//! with `over 30s` also over every sliding 30 s window during the run. An
//! abort rule states what must not go on: `error_rate > 5% for 10s` fires when
//! the per-second value has met the condition for 10 consecutive seconds
//! (without `for`, at the first such second).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::histogram::Hist;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Metric {
    Quantile(f64),
    Max,
    Mean,
    ErrorRate,
    Dropped,
    Rate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        }
    }
}

/// A parsed rule.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rule {
    pub(crate) expr: String,
    pub(crate) metric: Metric,
    pub(crate) entry: Option<String>,
    pub(crate) op: Op,
    /// Seconds, a ratio, or requests per second, by metric.
    pub(crate) value: f64,
    pub(crate) over: Option<Duration>,
    pub(crate) hold: Option<Duration>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

/// What a rule is evaluated on: a whole run, a window, or one second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stats<'a> {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) dropped: u64,
    pub(crate) seconds: f64,
    pub(crate) latency: &'a Hist,
}

impl Metric {
    fn parse(s: &str) -> Result<Metric, String> {
        Ok(match s {
            "p50" => Metric::Quantile(0.50),
            "p90" => Metric::Quantile(0.90),
            "p95" => Metric::Quantile(0.95),
            "p99" => Metric::Quantile(0.99),
            "p999" => Metric::Quantile(0.999),
            "max" => Metric::Max,
            "mean" | "avg" => Metric::Mean,
            "error_rate" => Metric::ErrorRate,
            "dropped" => Metric::Dropped,
            "rate" => Metric::Rate,
            other => {
                return Err(format!(
                "unknown metric `{other}` (p50 p90 p95 p99 p999 max mean error_rate dropped rate)"
            ))
            }
        })
    }

    /// The value on `s`; `None` when there is nothing to judge: no
    /// completed request for latency and error rate, no request at all for
    /// drops, no time for rate. An empty histogram is not a latency of 0.
    fn value(self, s: &Stats) -> Option<f64> {
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        match self {
            _ if self.is_latency() && s.requests == 0 => None,
            Metric::Quantile(q) => Some(s.latency.quantile(q)),
            Metric::Max => Some(s.latency.max()),
            Metric::Mean => Some(s.latency.mean()),
            Metric::ErrorRate => ratio(s.errors, s.requests),
            Metric::Dropped => ratio(s.dropped, s.requests + s.dropped),
            Metric::Rate => (s.seconds > 0.0).then(|| s.requests as f64 / s.seconds),
        }
    }

    fn is_latency(self) -> bool {
        matches!(self, Metric::Quantile(_) | Metric::Max | Metric::Mean)
    }

    /// Renders an observed value in the rule's own units; `no data` when
    /// there was nothing to judge.
    pub(crate) fn show(self, v: Option<f64>) -> String {
        let Some(v) = v else {
            return NO_DATA.to_string();
        };
        match self {
            m if m.is_latency() => {
                crate::units::human_duration(Duration::from_secs_f64(v.max(0.0)))
            }
            Metric::Rate => format!("{v:.1}/s"),
            _ => format!("{:.3}%", v * 100.0),
        }
    }
}

impl Rule {
    pub(crate) fn parse(expr: &str) -> Result<Rule, String> {
        let words: Vec<&str> = expr.split_whitespace().collect();
        let [lhs, op, value, rest @ ..] = words.as_slice() else {
            return Err(format!(
                "`{expr}`: expected METRIC OP VALUE, e.g. `p95 < 50ms`"
            ));
        };
        let (name, entry) = match lhs.split_once('[') {
            Some((m, e)) => (
                m,
                Some(e.strip_suffix(']').ok_or("unclosed `[`")?.to_string()),
            ),
            None => (*lhs, None),
        };
        let metric = Metric::parse(name)?;
        let op = match *op {
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            other => return Err(format!("`{other}` is not a comparison (<, <=, >, >=)")),
        };
        let value = parse_value(metric, value)?;
        // `nan` never compares; a negative or infinite ratio makes the rule
        // hold always or never.
        if !(value.is_finite() && value >= 0.0) {
            return Err(format!(
                "`{expr}`: the value must be a finite, non-negative number"
            ));
        }
        let (mut over, mut hold) = (None, None);
        let mut it = rest.iter();
        while let Some(word) = it.next() {
            let d = it
                .next()
                .ok_or_else(|| format!("`{word}` needs a duration"))?;
            let d = crate::units::parse_duration(d)?;
            match *word {
                "over" => over = Some(d),
                "for" => hold = Some(d),
                other => {
                    return Err(format!(
                        "unexpected `{other}` (use `over 30s` or `for 10s`)"
                    ))
                }
            }
        }
        Ok(Rule {
            expr: expr.trim().to_string(),
            metric,
            entry,
            op,
            value,
            over,
            hold,
        })
    }

    /// Multiplies `over` and `for` by `factor` (`--time-scale`), to at
    /// least a second.
    pub(crate) fn stretched(mut self, factor: f64) -> Rule {
        let f = |d: Duration| d.mul_f64(factor).max(Duration::from_secs(1));
        self.over = self.over.map(f);
        self.hold = self.hold.map(f);
        self
    }

    /// The observed value and whether the condition holds; with no data
    /// (`None`) it never does.
    pub(crate) fn check(&self, s: &Stats) -> (bool, Option<f64>) {
        let v = self.metric.value(s);
        (v.is_some_and(|v| self.op.holds(v, self.value)), v)
    }
}

fn parse_value(metric: Metric, s: &str) -> Result<f64, String> {
    match metric {
        m if m.is_latency() => crate::units::parse_duration(s).map(|d| d.as_secs_f64()),
        Metric::Rate => crate::units::parse_rate(s),
        _ => match s.strip_suffix('%') {
            Some(p) => p
                .parse::<f64>()
                .map(|v| v / 100.0)
                .map_err(|_| format!("`{s}` is not a percentage")),
            None => s
                .parse::<f64>()
                .map_err(|_| format!("`{s}` is not a ratio (use 1% or 0.01)")),
        },
    }
}

/// What a threshold shows when no request completed in the run or in one
/// of its windows: it fails, as nothing shows the condition held.
pub(crate) const NO_DATA: &str = "no data";

/// A threshold's verdict, as reported.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ThresholdResult {
    pub(crate) expr: String,
    pub passed: bool,
    /// The whole-run value, or for a windowed threshold the worst window;
    /// 0 with `observed_text` `no data` when there was nothing to judge.
    pub(crate) observed: f64,
    pub observed_text: String,
}

/// Tracks a threshold across the run: every window evaluation and the end.
#[derive(Debug)]
pub(crate) struct Tracker {
    pub(crate) rule: Rule,
    /// The first failed window's value (`None` inside: it had no data).
    failed_window: Option<Option<f64>>,
}

impl Tracker {
    pub(crate) fn new(rule: Rule) -> Tracker {
        Tracker {
            rule,
            failed_window: None,
        }
    }

    /// A window evaluation during the run.
    pub(crate) fn window(&mut self, s: &Stats) {
        let (ok, v) = self.rule.check(s);
        if !ok && self.failed_window.is_none() {
            self.failed_window = Some(v);
        }
    }

    pub(crate) fn finish(&self, whole: &Stats) -> ThresholdResult {
        let (ok, v) = self.rule.check(whole);
        let observed = self.failed_window.unwrap_or(v);
        ThresholdResult {
            expr: self.rule.expr.clone(),
            passed: ok && self.failed_window.is_none(),
            observed: observed.unwrap_or(0.0),
            observed_text: self.rule.metric.show(observed),
        }
    }
}

/// Tracks an abort rule second by second.
#[derive(Debug)]
pub(crate) struct Abort {
    pub(crate) rule: Rule,
    streak: u32,
}

impl Abort {
    pub(crate) fn new(rule: Rule) -> Abort {
        Abort { rule, streak: 0 }
    }

    /// Feeds one second; true when the rule fires.
    pub(crate) fn second(&mut self, s: &Stats) -> bool {
        if s.requests == 0 && s.dropped == 0 {
            return false;
        }
        let (met, _) = self.rule.check(s);
        self.streak = if met { self.streak + 1 } else { 0 };
        let need = self.rule.hold.map_or(1, |d| d.as_secs().max(1) as u32);
        self.streak >= need
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(h: &Hist, requests: u64, errors: u64, dropped: u64) -> Stats<'_> {
        Stats {
            requests,
            errors,
            dropped,
            seconds: 10.0,
            latency: h,
        }
    }

    #[test]
    fn parses_the_grammar() {
        let r = Rule::parse("p95[api] < 50ms over 30s").unwrap();
        assert_eq!(r.metric, Metric::Quantile(0.95));
        assert_eq!(r.entry.as_deref(), Some("api"));
        assert_eq!(r.value, 0.05);
        assert_eq!(r.over, Some(Duration::from_secs(30)));
        let r = Rule::parse("error_rate > 5% for 10s").unwrap();
        assert_eq!(
            (r.op, r.value, r.hold),
            (Op::Gt, 0.05, Some(Duration::from_secs(10)))
        );
        assert_eq!(Rule::parse("rate >= 5000/s").unwrap().value, 5000.0);
        assert_eq!(Rule::parse("dropped < 0.001").unwrap().value, 0.001);
        for bad in [
            "p95 50ms",
            "p42 < 1s",
            "p95 ~ 1s",
            "p95 < 50",
            "rate > 5",
            "p95 < 1s during 5s",
            "p95[x < 1s",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ratio_must_be_a_finite_non_negative_number() {
        // Found by fuzzing: `nan` never compares, so the rule could never
        // hold; `-inf%` and negative ratios always (or never) do.
        for bad in [
            "error_rate < nan",
            "error_rate < NaN%",
            "dropped > -inf%",
            "error_rate < inf",
            "dropped < -1%",
            "error_rate > -0.5",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Rule::parse("error_rate < 0%").unwrap().value, 0.0);
    }

    #[test]
    fn thresholds_pass_and_fail() {
        let mut h = Hist::precise();
        for ms in 1..=100u64 {
            h.record(ms * 1000);
        }
        let s = stats(&h, 1000, 5, 1);
        assert!(Rule::parse("p95 < 100ms").unwrap().check(&s).0);
        assert!(!Rule::parse("p95 < 90ms").unwrap().check(&s).0);
        assert!(Rule::parse("error_rate < 1%").unwrap().check(&s).0);
        assert!(!Rule::parse("error_rate < 0.4%").unwrap().check(&s).0);
        assert!(Rule::parse("rate >= 100/s").unwrap().check(&s).0);
        assert!(!Rule::parse("rate >= 101/s").unwrap().check(&s).0);
        assert!(Rule::parse("dropped < 0.1%").unwrap().check(&s).0);
    }

    #[test]
    fn a_failed_window_fails_the_threshold_even_if_the_run_passes() {
        let h = Hist::precise();
        let mut t = Tracker::new(Rule::parse("error_rate < 1% over 10s").unwrap());
        t.window(&stats(&h, 100, 50, 0));
        let v = t.finish(&stats(&h, 100_000, 50, 0));
        assert!(!v.passed);
        assert_eq!(v.observed, 0.5);
    }

    #[test]
    fn no_completed_request_is_no_data_and_never_passes() {
        let h = Hist::precise();
        let empty = stats(&h, 0, 0, 0);
        for expr in [
            "p95 < 1s",
            "max < 1s",
            "mean < 1s",
            "error_rate < 1%",
            "dropped < 1%",
        ] {
            let r = Tracker::new(Rule::parse(expr).unwrap()).finish(&empty);
            assert!(!r.passed, "{expr} passed on no data");
            assert_eq!(r.observed_text, "no data", "{expr}");
        }
        // A window in which nothing completed fails a run that passes.
        let mut full = Hist::precise();
        full.record(1000);
        let mut t = Tracker::new(Rule::parse("p95 < 1s over 10s").unwrap());
        t.window(&stats(&h, 0, 0, 5));
        let r = t.finish(&stats(&full, 100, 0, 0));
        assert!(!r.passed, "{r:?}");
        assert_eq!(r.observed_text, "no data");
    }

    #[test]
    fn abort_needs_the_condition_for_the_whole_hold() {
        let h = Hist::precise();
        let mut a = Abort::new(Rule::parse("error_rate > 5% for 3s").unwrap());
        let bad = stats(&h, 100, 10, 0);
        let good = stats(&h, 100, 0, 0);
        assert!(!a.second(&bad));
        assert!(!a.second(&bad));
        assert!(!a.second(&good));
        assert!(!a.second(&bad));
        assert!(!a.second(&bad));
        assert!(a.second(&bad));
    }
}
