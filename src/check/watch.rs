//! A close watch on the service during a check: its RSS and CPU time every
//! `interval`, on a thread of its own so a busy load engine cannot delay
//! the samples the leak test depends on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::check::result::MemPoint;
use crate::resources::process::Selector;

#[derive(Debug)]
pub(crate) struct Watch {
    pub(crate) label: String,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<MemPoint>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    /// Starts sampling `selector`; times count from `epoch`.
    pub(crate) fn start(selector: Selector, interval: Duration, epoch: Instant) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let label = selector.label.clone();
        let (s, out) = (stop.clone(), samples.clone());
        let thread = std::thread::Builder::new()
            .name("sidewatch-watch".into())
            .spawn(move || {
                let mut next = Instant::now();
                while !s.load(Ordering::Relaxed) {
                    let t = selector.totals();
                    let p = MemPoint {
                        t: epoch.elapsed().as_secs_f64(),
                        rss: t.rss as f64,
                        cpu_seconds: t.cpu_seconds,
                        processes: t.processes,
                        start: t.newest_start,
                    };
                    out.lock().expect("watch lock").push(p);
                    next += interval;
                    // Sleep in short steps so stop() returns promptly.
                    while !s.load(Ordering::Relaxed) && Instant::now() < next {
                        let left = next.saturating_duration_since(Instant::now());
                        std::thread::sleep(left.min(Duration::from_millis(50)));
                    }
                }
            })
            .expect("spawn the watch thread");
        Watch {
            label,
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// The samples so far.
    pub(crate) fn samples(&self) -> Vec<MemPoint> {
        self.samples.lock().expect("watch lock").clone()
    }

    pub(crate) fn stop(mut self) -> Vec<MemPoint> {
        self.halt();
        self.samples()
    }

    /// Tells the thread to stop, without waiting for it: a read of /proc
    /// (or of a pid file) that hangs must not hold up an async worker. The
    /// thread ends by itself after its current sample.
    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.halt();
    }
}

/// CPU cores used and peak RSS between `from` and `to` (check seconds).
pub(crate) fn usage(points: &[MemPoint], from: f64, to: f64) -> (Option<f64>, Option<f64>) {
    let inside: Vec<&MemPoint> = points
        .iter()
        .filter(|p| p.t >= from && p.t <= to && p.processes > 0)
        .collect();
    let peak = inside
        .iter()
        .map(|p| p.rss)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let cores = match (inside.first(), inside.last()) {
        (Some(a), Some(b)) if b.t > a.t && a.start == b.start => {
            Some(((b.cpu_seconds - a.cpu_seconds) / (b.t - a.t)).max(0.0))
        }
        _ => None,
    };
    (cores, peak)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_over_a_range() {
        let p = |t: f64, rss: f64, cpu: f64| MemPoint {
            t,
            rss,
            cpu_seconds: cpu,
            processes: 1,
            start: 7,
        };
        let pts = [
            p(0.0, 10.0, 0.0),
            p(1.0, 30.0, 0.5),
            p(2.0, 20.0, 1.0),
            p(3.0, 90.0, 3.0),
        ];
        let (cores, peak) = usage(&pts, 0.5, 2.5);
        assert_eq!(cores, Some(0.5));
        assert_eq!(peak, Some(30.0));
        assert_eq!(usage(&pts, 5.0, 6.0), (None, None));
    }
}
