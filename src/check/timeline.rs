//! What a check keeps of its load: fixed windows (for drift, recovery and
//! the baseline test) and named segments (a spike, a breakpoint step, a
//! curve level), built from the engine's merged seconds.

use crate::check::result::Window;
use crate::load::engine::EntryStats;
use crate::load::thresholds::Stats;
use crate::load::Observer;

/// A window over `seconds` seconds from `start`, of `s`; `target_sum` is
/// the sum of the per-second target rates.
fn window(start: f64, seconds: f64, target_sum: f64, s: &EntryStats) -> Window {
    Window {
        start,
        seconds,
        target_rate: target_sum / seconds,
        rate: s.requests as f64 / seconds,
        requests: s.requests,
        errors: s.errors(),
        dropped: s.dropped,
        error_rate: ratio(s.errors(), s.requests),
        p50: s.latency.quantile(0.50),
        p95: s.latency.quantile(0.95),
        p99: s.latency.quantile(0.99),
    }
}

pub(crate) fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// A named stretch of a run, `[from, to)` in seconds of its phase.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub(crate) from: u32,
    pub(crate) to: u32,
    pub(crate) stats: EntryStats,
    pub(crate) seconds: u32,
}

impl Segment {
    pub(crate) fn new(from: u32, to: u32) -> Segment {
        Segment {
            from,
            to,
            stats: EntryStats::new(false),
            seconds: 0,
        }
    }

    /// The segment as thresholds see it.
    pub(crate) fn rule_stats(&self) -> Stats<'_> {
        Stats {
            requests: self.stats.requests,
            errors: self.stats.errors(),
            dropped: self.stats.dropped,
            seconds: f64::from(self.seconds.max(1)),
            latency: &self.stats.latency,
        }
    }
}

/// What a collector reports as it goes; returning true ends the run.
pub(crate) enum Event<'a> {
    Window(&'a Window),
    Segment(&'a Segment),
}

type Stop = Box<dyn FnMut(Event) -> bool + Send>;

/// Cuts a phase into windows and segments; an [`Observer`] for the engine.
pub(crate) struct Collector {
    offset: f64,
    window: u32,
    open: Option<(u32, EntryStats, f64, u32)>,
    pub(crate) windows: Vec<Window>,
    pub(crate) segments: Vec<Segment>,
    stop: Option<Stop>,
}

impl Collector {
    /// A phase starting `offset` seconds into the check, in `window`-second windows.
    pub(crate) fn new(offset: f64, window: u32, segments: Vec<Segment>) -> Collector {
        Collector {
            offset,
            window: window.max(1),
            open: None,
            windows: Vec::new(),
            segments,
            stop: None,
        }
    }

    /// Ends the run when `f` says so.
    pub(crate) fn stop_when(mut self, f: impl FnMut(Event) -> bool + Send + 'static) -> Collector {
        self.stop = Some(Box::new(f));
        self
    }

    /// Closes a last partial window if it is at least half a window long.
    pub(crate) fn finish(&mut self) {
        if let Some((start, stats, target, secs)) = self.open.take() {
            if secs * 2 >= self.window {
                let w = window(
                    self.offset + f64::from(start),
                    f64::from(secs),
                    target,
                    &stats,
                );
                self.windows.push(w);
            }
        }
    }

    fn emit(&mut self, e: Event) -> bool {
        self.stop.as_mut().is_some_and(|f| f(e))
    }
}

impl Observer for Collector {
    fn second(&mut self, index: u32, target: f64, all: &EntryStats) -> bool {
        let mut stop = false;
        let w = self.window;
        let open = self
            .open
            .get_or_insert_with(|| (index - index % w, EntryStats::new(false), 0.0, 0));
        open.1.add(all);
        open.2 += target;
        open.3 += 1;
        if index % w == w - 1 {
            let (start, stats, target, secs) = self.open.take().expect("just filled");
            let win = window(
                self.offset + f64::from(start),
                f64::from(secs),
                target,
                &stats,
            );
            stop |= self.emit(Event::Window(&win));
            self.windows.push(win);
        }
        for i in 0..self.segments.len() {
            let seg = &mut self.segments[i];
            if (seg.from..seg.to).contains(&index) {
                seg.stats.add(all);
                seg.seconds += 1;
                if index + 1 == seg.to {
                    let seg = self.segments[i].clone();
                    stop |= self.emit(Event::Segment(&seg));
                }
            }
        }
        stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(requests: u64, errors: u64, micros: u64) -> EntryStats {
        let mut s = EntryStats::new(false);
        s.requests = requests;
        s.errors[0] = errors;
        for _ in 0..requests {
            s.latency.record(micros);
        }
        s
    }

    #[test]
    fn windows_and_segments_add_up() {
        let mut c = Collector::new(10.0, 4, vec![Segment::new(1, 4)]);
        for i in 0..5 {
            assert!(!c.second(i, 100.0, &second(100, i as u64, 1000 * (i as u64 + 1))));
        }
        c.finish();
        assert_eq!(
            c.windows.len(),
            1,
            "a last window under half long is dropped"
        );
        assert_eq!(c.windows[0].start, 10.0);
        assert_eq!(c.windows[0].requests, 400);
        assert_eq!(c.windows[0].errors, 6);
        assert_eq!(c.windows[0].rate, 100.0);
        assert_eq!(c.windows[0].target_rate, 100.0);
        let seg = &c.segments[0];
        assert_eq!((seg.stats.requests, seg.seconds), (300, 3));
    }

    #[test]
    fn a_stop_rule_ends_the_run() {
        let mut c = Collector::new(0.0, 1, vec![Segment::new(0, 2)])
            .stop_when(|e| matches!(e, Event::Segment(s) if s.stats.errors() > 0));
        assert!(!c.second(0, 1.0, &second(10, 0, 5)));
        assert!(c.second(1, 1.0, &second(10, 1, 5)));
    }
}
