//! Group deltas: a group's counters (CPU, IO, context switches) grow by each
//! member's growth since the last sample, so a member that exits does not
//! make a counter go down, and a member that starts between samples counts
//! from its start.

use std::collections::HashMap;

use super::families::ProcessMetrics;
use super::read::{Reading, Slow};
use super::select::{Scan, Selector};
use crate::telemetry::labels::ProcessLabels;

/// What one member added to its group's counters since the last sample.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Growth {
    pub(crate) user_seconds: f64,
    pub(crate) system_seconds: f64,
    pub(crate) read_bytes: u64,
    pub(crate) write_bytes: u64,
    pub(crate) voluntary: u64,
    pub(crate) involuntary: u64,
}

impl Growth {
    /// From `before` to `now`; a total that went down (unreadable now)
    /// counts as no growth.
    fn between(now: &Reading, before: &Reading) -> Growth {
        let grow = |now: Option<u64>, before: Option<u64>| {
            now.unwrap_or(0).saturating_sub(before.unwrap_or(0))
        };
        Growth {
            user_seconds: (now.user_seconds - before.user_seconds).max(0.0),
            system_seconds: (now.system_seconds - before.system_seconds).max(0.0),
            read_bytes: grow(now.read_bytes, before.read_bytes),
            write_bytes: grow(now.write_bytes, before.write_bytes),
            voluntary: grow(now.voluntary, before.voluntary),
            involuntary: grow(now.involuntary, before.involuntary),
        }
    }
}

/// What a group remembers of a member between samples.
#[derive(Debug)]
struct Known {
    start_ticks: u64,
    reading: Reading,
}

/// A selector with its members' last readings.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) selector: Selector,
    known: HashMap<i32, Known>,
    slow: HashMap<i32, Slow>,
    /// Uptime (in ticks) at the previous sample; `None` before the first.
    last_ticks: Option<u64>,
}

impl Group {
    pub(crate) fn new(selector: Selector) -> Group {
        Group {
            selector,
            known: HashMap::new(),
            slow: HashMap::new(),
            last_ticks: None,
        }
    }

    pub(crate) fn sample(&mut self, scan: &Scan, now_ticks: u64, m: &ProcessMetrics) {
        let l = ProcessLabels::new(&self.selector.label);
        let readings = self.read(scan);
        m.set_gauges(&l, &readings);
        self.advance_counters(&readings, now_ticks, &l, m);
    }

    /// Reads the members the selector matches now, keeping each one's slow
    /// readings for the next sample.
    fn read(&mut self, scan: &Scan) -> Vec<(i32, Reading)> {
        let mut slow = std::mem::take(&mut self.slow);
        scan.members(&self.selector)
            .into_iter()
            .filter_map(|pid| {
                let mut cached = slow.remove(&pid);
                let r = Reading::read_with(pid, scan.stat(pid)?, &mut cached)?;
                self.slow.extend(cached.map(|c| (pid, c)));
                Some((pid, r))
            })
            .collect()
    }

    fn advance_counters(
        &mut self,
        rs: &[(i32, Reading)],
        now_ticks: u64,
        l: &ProcessLabels,
        m: &ProcessMetrics,
    ) {
        let zero = Reading::default();
        let mut next = HashMap::with_capacity(rs.len());
        for (pid, r) in rs {
            let prev = match self.known.get(pid) {
                Some(k) if k.start_ticks == r.start_ticks => &k.reading,
                // New since the last sample (or the very first sample): count
                // everything it used. Seen late (e.g. selection changed): baseline.
                _ if self.last_ticks.is_none_or(|t| r.start_ticks >= t) => &zero,
                _ => r,
            };
            m.grow(l, &Growth::between(r, prev));
            next.insert(
                *pid,
                Known {
                    start_ticks: r.start_ticks,
                    reading: r.clone(),
                },
            );
        }
        self.known = next;
        self.last_ticks = Some(now_ticks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_never_goes_negative() {
        let before = Reading {
            user_seconds: 2.0,
            read_bytes: Some(100),
            voluntary: Some(5),
            ..Reading::default()
        };
        let now = Reading {
            user_seconds: 3.5,
            read_bytes: None,
            voluntary: Some(7),
            ..Reading::default()
        };
        let g = Growth::between(&now, &before);
        assert_eq!(g.user_seconds, 1.5);
        assert_eq!(g.read_bytes, 0);
        assert_eq!(g.voluntary, 2);
        assert_eq!(Growth::between(&before, &now).user_seconds, 0.0);
    }
}
