//! Readings from `/proc/PID/*`: what one process uses, with the slow
//! readings (PSS/USS, the fd limit) refreshed less often.

use std::time::{Duration, Instant};

use procfs::process::{LimitValue, Process, Stat};

/// One process's readings. Fields that need ptrace access to a process of
/// another user (`io`, `fd`, `smaps_rollup`) are `None` when unreadable.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reading {
    pub(crate) start_ticks: u64,
    pub(crate) rss: u64,
    pub(crate) vms: u64,
    pub(crate) pss: Option<u64>,
    pub(crate) uss: Option<u64>,
    pub(crate) user_seconds: f64,
    pub(crate) system_seconds: f64,
    pub(crate) threads: i64,
    pub(crate) fds: Option<u64>,
    pub(crate) fd_limit: Option<u64>,
    pub(crate) read_bytes: Option<u64>,
    pub(crate) write_bytes: Option<u64>,
    pub(crate) voluntary: Option<u64>,
    pub(crate) involuntary: Option<u64>,
}

/// Values that change slowly and cost more to read: PSS/USS walk the page
/// tables, the fd limit parses a long file. Refreshed at most every
/// [`SLOW_EVERY`] per process.
#[derive(Clone, Debug)]
pub(super) struct Slow {
    start_ticks: u64,
    at: Instant,
    pss: Option<u64>,
    uss: Option<u64>,
    fd_limit: Option<u64>,
}

const SLOW_EVERY: Duration = Duration::from_secs(30);

impl Slow {
    fn read(p: &Process, start_ticks: u64) -> Slow {
        let (pss, uss) = smaps_rollup(p.pid());
        let fd_limit = p
            .limits()
            .ok()
            .and_then(|l| match l.max_open_files.soft_limit {
                LimitValue::Value(v) => Some(v),
                LimitValue::Unlimited => None,
            });
        Slow {
            start_ticks,
            at: Instant::now(),
            pss,
            uss,
            fd_limit,
        }
    }

    fn fresh_for(&self, start_ticks: u64) -> bool {
        self.start_ticks == start_ticks && self.at.elapsed() < SLOW_EVERY
    }
}

impl Reading {
    pub(super) fn read_with(pid: i32, stat: Stat, slow: &mut Option<Slow>) -> Option<Reading> {
        let p = Process::new(pid).ok()?;
        let tps = procfs::ticks_per_second() as f64;
        let (voluntary, involuntary) = switches(pid);
        let io = p.io().ok();
        if !slow.as_ref().is_some_and(|s| s.fresh_for(stat.starttime)) {
            *slow = Some(Slow::read(&p, stat.starttime));
        }
        let s = slow.as_ref().expect("just filled");
        Some(Reading {
            start_ticks: stat.starttime,
            rss: stat.rss * procfs::page_size(),
            vms: stat.vsize,
            pss: s.pss,
            uss: s.uss,
            user_seconds: stat.utime as f64 / tps,
            system_seconds: stat.stime as f64 / tps,
            threads: stat.num_threads,
            fds: p.fd_count().ok().map(|n| n as u64),
            fd_limit: s.fd_limit,
            read_bytes: io.as_ref().map(|i| i.read_bytes),
            write_bytes: io.as_ref().map(|i| i.write_bytes),
            voluntary,
            involuntary,
        })
    }
}

/// Voluntary and involuntary context switches from `/proc/PID/status`, read
/// by hand: the two lines are all we need of it.
fn switches(pid: i32) -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (None, None);
    };
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
    };
    (
        get("voluntary_ctxt_switches:"),
        get("nonvoluntary_ctxt_switches:"),
    )
}

/// PSS and USS (private clean + private dirty) from `/proc/PID/smaps_rollup`.
fn smaps_rollup(pid: i32) -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
        return (None, None);
    };
    let kb = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|v| v * 1024)
    };
    let uss = match (kb("Private_Clean:"), kb("Private_Dirty:")) {
        (Some(c), Some(d)) => Some(c + d),
        _ => None,
    };
    (kb("Pss:"), uss)
}

/// Converts a start time in ticks since boot to Unix seconds.
pub(crate) fn start_unix_seconds(start_ticks: u64) -> f64 {
    let boot = procfs::boot_time_secs().unwrap_or(0) as f64;
    boot + start_ticks as f64 / procfs::ticks_per_second() as f64
}

/// Ticks since boot, from `/proc/uptime`.
pub(crate) fn uptime_ticks() -> u64 {
    let secs = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    (secs * procfs::ticks_per_second() as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id() as i32;
        let stat = Process::new(pid).unwrap().stat().unwrap();
        let r = Reading::read_with(pid, stat, &mut None).unwrap();
        assert!(r.rss > 0 && r.vms >= r.rss);
        assert!(r.threads >= 1);
        assert!(r.fds.unwrap() >= 3);
        assert!(r.start_ticks > 0);
    }
}
