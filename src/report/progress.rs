//! Live progress for long runs: a bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::load::{Point, Progress};
use crate::units::human_duration;

/// A progress bar on a TTY (rate, errors, p95 so far), else a line every 5 s.
pub(crate) enum Live {
    Bar(ProgressBar),
    Lines { every: u32 },
}

impl Live {
    pub(crate) fn new(label: &str, total_secs: u32) -> Live {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(u64::from(total_secs));
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len}s {msg}")
                .expect("valid template")
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            Live::Bar(bar)
        } else {
            Live::Lines { every: 5 }
        }
    }
}

fn line(p: &Point) -> String {
    let err = if p.requests == 0 {
        0.0
    } else {
        p.errors as f64 * 100.0 / p.requests as f64
    };
    format!(
        "rate {:.0}/s  errors {err:.2}%  dropped {}  p95 {}",
        p.rate,
        p.dropped,
        human_duration(std::time::Duration::from_secs_f64(p.p95_seconds))
    )
}

impl Progress for Live {
    fn second(&mut self, elapsed: u32, total: u32, p: &Point) {
        match self {
            Live::Bar(bar) => {
                // A check runs several phases through one bar.
                if bar.is_finished() {
                    bar.reset();
                }
                bar.set_length(u64::from(total));
                bar.set_position(u64::from(elapsed.min(total)));
                bar.set_message(line(p));
            }
            Live::Lines { every } => {
                if elapsed % *every == 0 || elapsed == total {
                    eprintln!("[{elapsed:>4}s/{total}s] {}", line(p));
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Live::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
