//! The kernel reports totals (CPU ticks, bytes read); Prometheus counters only
//! go up by increments. [`Deltas`] turns successive totals into increments,
//! treating a smaller total as a restart of the source.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub(crate) struct Deltas(HashMap<String, f64>);

impl Deltas {
    /// The growth of `key`'s total since the last reading. The first reading
    /// counts whole, so a counter starts at the source's total.
    pub(crate) fn delta(&mut self, key: &str, total: f64) -> f64 {
        let last = self.0.insert(key.to_string(), total);
        match last {
            Some(prev) if total >= prev => total - prev,
            _ => total,
        }
    }

    /// Forgets a source that is gone.
    pub(crate) fn forget(&mut self, key: &str) {
        self.0.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reading_counts_whole_then_growth_then_restart() {
        let mut d = Deltas::default();
        assert_eq!(d.delta("a", 10.0), 10.0);
        assert_eq!(d.delta("a", 15.0), 5.0);
        assert_eq!(d.delta("a", 3.0), 3.0);
        assert_eq!(d.delta("b", 1.0), 1.0);
    }
}
