//! Latency recording in HdrHistograms: fixed memory however long the run,
//! microsecond resolution, three significant digits for the whole run and two
//! for per-second windows.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub(crate) struct Hist(Histogram<u64>);

impl Hist {
    /// Three significant digits: for whole-run results.
    pub(crate) fn precise() -> Hist {
        Hist(Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, 3).expect("valid bounds"))
    }

    /// Two significant digits: for per-second windows, which are many.
    pub(crate) fn coarse() -> Hist {
        Hist(Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, 2).expect("valid bounds"))
    }

    pub(crate) fn record(&mut self, micros: u64) {
        self.0.saturating_record(micros.max(LOWEST_US));
    }

    pub(crate) fn add(&mut self, other: &Hist) {
        // Same bounds on both sides, so this cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// The value at quantile `q` (0..=1) in seconds; 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(q) as f64 / 1e6
    }

    pub(crate) fn max(&self) -> f64 {
        self.0.max() as f64 / 1e6
    }

    pub(crate) fn mean(&self) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.mean() / 1e6
        }
    }

    /// (value in seconds, count) for every distinct recorded value.
    pub(crate) fn recorded(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to() as f64 / 1e6, v.count_at_value()))
    }

    pub(crate) fn summary(&self) -> Summary {
        Summary {
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p95: self.quantile(0.95),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max(),
            mean: self.mean(),
        }
    }
}

/// Latency percentiles in seconds, as the JSON result reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Hist::precise();
        for ms in 1..=1000u64 {
            h.record(ms * 1000);
        }
        let s = h.summary();
        assert!((s.p50 - 0.5).abs() < 0.001, "{s:?}");
        assert!((s.p99 - 0.99).abs() < 0.001, "{s:?}");
        assert!((s.max - 1.0).abs() < 0.001);
        assert!((s.mean - 0.5005).abs() < 0.001);
    }

    #[test]
    fn merging_and_empty() {
        let mut a = Hist::coarse();
        assert_eq!(a.quantile(0.5), 0.0);
        let mut b = Hist::coarse();
        b.record(2_000);
        a.add(&b);
        assert_eq!(a.quantile(0.5), b.quantile(0.5));
        assert!(a.quantile(0.5) > 0.0);
    }
}
