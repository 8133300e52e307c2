//! Process groups: selection (pid file, comm, cmdline regex, all in the pod)
//! re-resolved on every sample, readings from `/proc/PID/*`, and per-group
//! series summed over the matched processes.
//!
//! Group counters (CPU, IO, context switches) grow by each member's growth
//! since the last sample, so a member that exits does not make a counter go
//! down, and a member that starts between samples counts from its start.

use std::collections::HashMap;
use std::path::PathBuf;

use procfs::process::{LimitValue, Process, Stat};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use regex::Regex;
use std::time::{Duration, Instant};

use crate::config::{Path, Problems, ProcessSelector};
use crate::telemetry::labels::ProcessLabels;
use crate::telemetry::{FloatCounter, FloatGauge};

/// The `process` label of sidewatch's own group.
pub const SELF_LABEL: &str = "sidewatch";

#[derive(Clone, Debug)]
enum How {
    PidFile(PathBuf),
    Comm(String),
    Cmdline(Regex),
    AllInPod,
    Myself,
}

/// A compiled selector.
#[derive(Clone, Debug)]
pub struct Selector {
    pub label: String,
    how: How,
}

impl Selector {
    pub fn build(cfg: &ProcessSelector, path: &Path, problems: &mut Problems) -> Option<Selector> {
        let label_ok = !cfg.label.is_empty()
            && cfg.label.len() <= 64
            && cfg
                .label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if !label_ok {
            problems.push(
                &path.key("label"),
                "must be 1 to 64 letters, digits, `_`, `-` or `.`",
            );
        }
        if cfg.label == SELF_LABEL {
            problems.push(
                &path.key("label"),
                "`sidewatch` is reserved for sidewatch's own process",
            );
        }
        let set = [
            cfg.pid_file.is_some(),
            cfg.comm.is_some(),
            cfg.cmdline.is_some(),
            cfg.all_in_pod,
        ];
        if set.iter().filter(|b| **b).count() != 1 {
            problems.push(
                path,
                "set exactly one of `pid_file`, `comm`, `cmdline` or `all_in_pod: true`",
            );
            return None;
        }
        let how = if let Some(p) = &cfg.pid_file {
            How::PidFile(p.clone())
        } else if let Some(c) = &cfg.comm {
            if c.len() > 15 {
                problems.push(
                    &path.key("comm"),
                    "the kernel keeps at most 15 characters of a process name",
                );
            }
            How::Comm(c.clone())
        } else if let Some(re) = &cfg.cmdline {
            match Regex::new(re) {
                Ok(r) => How::Cmdline(r),
                Err(e) => {
                    problems.push(&path.key("cmdline"), format!("invalid regex: {e}"));
                    return None;
                }
            }
        } else {
            How::AllInPod
        };
        label_ok.then_some(Selector {
            label: cfg.label.clone(),
            how,
        })
    }

    /// sidewatch's own process.
    pub fn myself() -> Selector {
        Selector {
            label: SELF_LABEL.into(),
            how: How::Myself,
        }
    }

    /// The group's total RSS and CPU seconds, its newest start time and its
    /// size, read now; for checks, which watch one group closely.
    pub fn totals(&self) -> Totals {
        let scan = Scan::take(&[self]);
        let mut t = Totals::default();
        for r in scan.select(&self.how).into_iter().filter_map(|pid| {
            let stat = scan.stat(pid)?;
            Reading::read_with(pid, stat, &mut None)
        }) {
            t.rss += r.rss;
            t.cpu_seconds += r.user_seconds + r.system_seconds;
            t.newest_start = t.newest_start.max(r.start_ticks);
            t.processes += 1;
        }
        t
    }

    fn needs_scan(&self) -> bool {
        matches!(self.how, How::Comm(_) | How::Cmdline(_) | How::AllInPod)
    }
}

/// A group's totals at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub rss: u64,
    pub cpu_seconds: f64,
    /// Start time (clock ticks after boot) of the newest member.
    pub newest_start: u64,
    pub processes: u32,
}

/// The processes present at one sample, read once for every selector; their
/// `stat` is kept so matched processes are not read twice.
pub struct Scan {
    me: i32,
    procs: Vec<(i32, String, Option<String>)>,
    stats: HashMap<i32, Stat>,
}

impl Scan {
    /// Lists processes with their names; command lines only if asked for.
    pub fn take(selectors: &[&Selector]) -> Scan {
        let me = std::process::id() as i32;
        let mut procs = Vec::new();
        let mut stats = HashMap::new();
        if selectors.iter().any(|s| s.needs_scan()) {
            let want_cmdline = selectors.iter().any(|s| matches!(s.how, How::Cmdline(_)));
            if let Ok(all) = procfs::process::all_processes() {
                for p in all.flatten() {
                    let Ok(stat) = p.stat() else { continue };
                    let cmdline = want_cmdline
                        .then(|| p.cmdline().ok().map(|a| a.join(" ")))
                        .flatten();
                    procs.push((p.pid(), stat.comm.clone(), cmdline));
                    stats.insert(p.pid(), stat);
                }
            }
        }
        Scan { me, procs, stats }
    }

    /// The process's `stat` from the scan, or read now.
    fn stat(&self, pid: i32) -> Option<Stat> {
        match self.stats.get(&pid) {
            Some(s) => Some(s.clone()),
            None => Process::new(pid).ok()?.stat().ok(),
        }
    }

    fn select(&self, how: &How) -> Vec<i32> {
        match how {
            How::Myself => vec![self.me],
            How::PidFile(path) => std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .filter(|pid| Process::new(*pid).is_ok())
                .into_iter()
                .collect(),
            How::Comm(name) => self.filter(|_, comm, _| comm == name),
            How::Cmdline(re) => self.filter(|_, _, cmd| cmd.is_some_and(|c| re.is_match(c))),
            How::AllInPod => self.filter(|pid, comm, _| pid != self.me && comm != "pause"),
        }
    }

    fn filter(&self, f: impl Fn(i32, &str, Option<&str>) -> bool) -> Vec<i32> {
        self.procs
            .iter()
            .filter(|(pid, comm, cmd)| f(*pid, comm, cmd.as_deref()))
            .map(|(pid, _, _)| *pid)
            .collect()
    }
}

/// One process's readings. Fields that need ptrace access to a process of
/// another user (`io`, `fd`, `smaps_rollup`) are `None` when unreadable.
#[derive(Clone, Debug, Default)]
pub struct Reading {
    pub start_ticks: u64,
    pub rss: u64,
    pub vms: u64,
    pub pss: Option<u64>,
    pub uss: Option<u64>,
    pub user_seconds: f64,
    pub system_seconds: f64,
    pub threads: i64,
    pub fds: Option<u64>,
    pub fd_limit: Option<u64>,
    pub read_bytes: Option<u64>,
    pub write_bytes: Option<u64>,
    pub voluntary: Option<u64>,
    pub involuntary: Option<u64>,
}

/// Values that change slowly and cost more to read: PSS/USS walk the page
/// tables, the fd limit parses a long file. Refreshed at most every
/// [`SLOW_EVERY`] per process.
#[derive(Clone, Debug)]
struct Slow {
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
    /// Reads a process; `None` if it is gone.
    pub fn read(pid: i32) -> Option<Reading> {
        let stat = Process::new(pid).ok()?.stat().ok()?;
        Reading::read_with(pid, stat, &mut None)
    }

    fn read_with(pid: i32, stat: Stat, slow: &mut Option<Slow>) -> Option<Reading> {
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

/// The `mode` of CPU time.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum CpuMode {
    User,
    System,
}

impl CpuMode {
    const ALL: [CpuMode; 2] = [CpuMode::User, CpuMode::System];

    fn as_str(self) -> &'static str {
        match self {
            CpuMode::User => "user",
            CpuMode::System => "system",
        }
    }
}

/// The `mode` of a context switch.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum SwitchMode {
    Voluntary,
    Involuntary,
}

impl SwitchMode {
    const ALL: [SwitchMode; 2] = [SwitchMode::Voluntary, SwitchMode::Involuntary];

    fn as_str(self) -> &'static str {
        match self {
            SwitchMode::Voluntary => "voluntary",
            SwitchMode::Involuntary => "involuntary",
        }
    }
}

crate::telemetry::str_label!(CpuMode, SwitchMode);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CpuLabels {
    process: String,
    mode: CpuMode,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SwitchLabels {
    process: String,
    mode: SwitchMode,
}

/// The per-group families.
#[derive(Debug, Default)]
pub struct ProcessMetrics {
    up: Family<ProcessLabels, Gauge>,
    count: Family<ProcessLabels, Gauge>,
    rss: Family<ProcessLabels, Gauge>,
    pss: Family<ProcessLabels, Gauge>,
    uss: Family<ProcessLabels, Gauge>,
    vms: Family<ProcessLabels, Gauge>,
    cpu: Family<CpuLabels, FloatCounter>,
    fds: Family<ProcessLabels, Gauge>,
    max_fds: Family<ProcessLabels, Gauge>,
    fd_ratio: Family<ProcessLabels, FloatGauge>,
    threads: Family<ProcessLabels, Gauge>,
    io_read: Family<ProcessLabels, Counter>,
    io_write: Family<ProcessLabels, Counter>,
    switches: Family<SwitchLabels, Counter>,
    start: Family<ProcessLabels, FloatGauge>,
}

impl ProcessMetrics {
    pub fn register(r: &mut Registry) -> ProcessMetrics {
        let m = ProcessMetrics::default();
        r.register(
            "up",
            "1 if at least one process matches the group's selector, else 0",
            m.up.clone(),
        );
        r.register(
            "num_procs",
            "Number of processes matched by the group's selector",
            m.count.clone(),
        );
        r.register(
            "resident_memory_bytes",
            "Resident set size, summed over the group",
            m.rss.clone(),
        );
        r.register(
            "proportional_memory_bytes",
            "Proportional set size (PSS), summed over the group, where smaps_rollup is readable",
            m.pss.clone(),
        );
        r.register("unique_memory_bytes", "Unique set size (private clean + dirty), summed over the group, where smaps_rollup is readable", m.uss.clone());
        r.register(
            "virtual_memory_bytes",
            "Virtual memory size, summed over the group",
            m.vms.clone(),
        );
        r.register(
            "cpu_seconds",
            "CPU time used by the group, by mode (user, system)",
            m.cpu.clone(),
        );
        r.register(
            "open_fds",
            "Open file descriptors, summed over the group",
            m.fds.clone(),
        );
        r.register(
            "max_fds",
            "The lowest soft limit on open file descriptors among the group's processes",
            m.max_fds.clone(),
        );
        r.register(
            "fd_usage_ratio",
            "The highest open-fds-to-limit ratio among the group's processes",
            m.fd_ratio.clone(),
        );
        r.register(
            "threads",
            "Threads, summed over the group",
            m.threads.clone(),
        );
        r.register(
            "io_read_bytes",
            "Bytes the group read from storage",
            m.io_read.clone(),
        );
        r.register(
            "io_write_bytes",
            "Bytes the group wrote to storage",
            m.io_write.clone(),
        );
        r.register(
            "context_switches",
            "Context switches of the group, by mode (voluntary, involuntary)",
            m.switches.clone(),
        );
        r.register(
            "start_time_seconds",
            "Unix time at which the newest process of the group started; a restart moves it",
            m.start.clone(),
        );
        m
    }

    /// Drops the gauges of a group that matched nothing, so stale values do
    /// not linger on dashboards; counters stay.
    fn clear_gauges(&self, l: &ProcessLabels) {
        for f in [
            &self.rss,
            &self.pss,
            &self.uss,
            &self.vms,
            &self.fds,
            &self.max_fds,
            &self.threads,
        ] {
            f.remove(l);
        }
        self.fd_ratio.remove(l);
        self.start.remove(l);
    }

    /// Removes every series of a group that is no longer configured.
    pub fn remove(&self, label: &str) {
        let l = ProcessLabels::new(label);
        self.clear_gauges(&l);
        self.up.remove(&l);
        self.count.remove(&l);
        self.io_read.remove(&l);
        self.io_write.remove(&l);
        for mode in CpuMode::ALL {
            self.cpu.remove(&CpuLabels {
                process: l.process.clone(),
                mode,
            });
        }
        for mode in SwitchMode::ALL {
            self.switches.remove(&SwitchLabels {
                process: l.process.clone(),
                mode,
            });
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
pub struct Group {
    pub selector: Selector,
    known: HashMap<i32, Known>,
    slow: HashMap<i32, Slow>,
    /// Uptime (in ticks) at the previous sample; `None` before the first.
    last_ticks: Option<u64>,
}

impl Group {
    pub fn new(selector: Selector) -> Group {
        Group {
            selector,
            known: HashMap::new(),
            slow: HashMap::new(),
            last_ticks: None,
        }
    }

    pub fn sample(&mut self, scan: &Scan, now_ticks: u64, m: &ProcessMetrics) {
        let l = ProcessLabels::new(&self.selector.label);
        let mut slow = std::mem::take(&mut self.slow);
        let readings: Vec<(i32, Reading)> = scan
            .select(&self.selector.how)
            .into_iter()
            .filter_map(|pid| {
                let mut cached = slow.remove(&pid);
                let r = Reading::read_with(pid, scan.stat(pid)?, &mut cached)?;
                self.slow.extend(cached.map(|c| (pid, c)));
                Some((pid, r))
            })
            .collect();
        m.up.get_or_create(&l).set(i64::from(!readings.is_empty()));
        m.count.get_or_create(&l).set(readings.len() as i64);
        if readings.is_empty() {
            m.clear_gauges(&l);
        } else {
            self.set_gauges(&readings, &l, m);
        }
        self.advance_counters(&readings, now_ticks, &l, m);
    }

    fn set_gauges(&self, rs: &[(i32, Reading)], l: &ProcessLabels, m: &ProcessMetrics) {
        let sum = |f: fn(&Reading) -> u64| rs.iter().map(|(_, r)| f(r)).sum::<u64>() as i64;
        let sum_opt = |f: fn(&Reading) -> Option<u64>| -> Option<i64> {
            rs.iter()
                .map(|(_, r)| f(r))
                .sum::<Option<u64>>()
                .map(|v| v as i64)
        };
        m.rss.get_or_create(l).set(sum(|r| r.rss));
        m.vms.get_or_create(l).set(sum(|r| r.vms));
        m.threads
            .get_or_create(l)
            .set(rs.iter().map(|(_, r)| r.threads).sum());
        set_or_remove(&m.pss, l, sum_opt(|r| r.pss));
        set_or_remove(&m.uss, l, sum_opt(|r| r.uss));
        set_or_remove(&m.fds, l, sum_opt(|r| r.fds));
        set_or_remove(
            &m.max_fds,
            l,
            rs.iter()
                .filter_map(|(_, r)| r.fd_limit)
                .min()
                .map(|v| v as i64),
        );
        let ratio = rs
            .iter()
            .filter_map(|(_, r)| Some(r.fds? as f64 / r.fd_limit.filter(|l| *l > 0)? as f64))
            .fold(None, |acc: Option<f64>, x| {
                Some(acc.map_or(x, |a| a.max(x)))
            });
        match ratio {
            Some(x) => {
                m.fd_ratio.get_or_create(l).set(x);
            }
            None => {
                m.fd_ratio.remove(l);
            }
        }
        let newest = rs.iter().map(|(_, r)| r.start_ticks).max().unwrap_or(0);
        m.start.get_or_create(l).set(start_unix_seconds(newest));
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
            let cpu = |mode| CpuLabels {
                process: l.process.clone(),
                mode,
            };
            let switch = |mode| SwitchLabels {
                process: l.process.clone(),
                mode,
            };
            m.cpu
                .get_or_create(&cpu(CpuMode::User))
                .inc_by((r.user_seconds - prev.user_seconds).max(0.0));
            m.cpu
                .get_or_create(&cpu(CpuMode::System))
                .inc_by((r.system_seconds - prev.system_seconds).max(0.0));
            let grow = |now: Option<u64>, before: Option<u64>| {
                now.unwrap_or(0).saturating_sub(before.unwrap_or(0))
            };
            m.io_read
                .get_or_create(l)
                .inc_by(grow(r.read_bytes, prev.read_bytes));
            m.io_write
                .get_or_create(l)
                .inc_by(grow(r.write_bytes, prev.write_bytes));
            m.switches
                .get_or_create(&switch(SwitchMode::Voluntary))
                .inc_by(grow(r.voluntary, prev.voluntary));
            m.switches
                .get_or_create(&switch(SwitchMode::Involuntary))
                .inc_by(grow(r.involuntary, prev.involuntary));
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

fn set_or_remove(f: &Family<ProcessLabels, Gauge>, l: &ProcessLabels, v: Option<i64>) {
    match v {
        Some(v) => {
            f.get_or_create(l).set(v);
        }
        None => {
            f.remove(l);
        }
    }
}

/// Converts a start time in ticks since boot to Unix seconds.
pub fn start_unix_seconds(start_ticks: u64) -> f64 {
    let boot = procfs::boot_time_secs().unwrap_or(0) as f64;
    boot + start_ticks as f64 / procfs::ticks_per_second() as f64
}

/// Ticks since boot, from `/proc/uptime`.
pub fn uptime_ticks() -> u64 {
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
        let r = Reading::read(std::process::id() as i32).unwrap();
        assert!(r.rss > 0 && r.vms >= r.rss);
        assert!(r.threads >= 1);
        assert!(r.fds.unwrap() >= 3);
        assert!(r.start_ticks > 0);
    }

    #[test]
    fn selectors_need_exactly_one_criterion() {
        let mut p = Problems::default();
        let cfg = ProcessSelector {
            label: "app".into(),
            pid_file: None,
            comm: None,
            cmdline: None,
            all_in_pod: false,
        };
        assert!(Selector::build(&cfg, &Path::default(), &mut p).is_none());
        let cfg = ProcessSelector {
            label: "sidewatch".into(),
            pid_file: None,
            comm: Some("x".into()),
            cmdline: None,
            all_in_pod: false,
        };
        assert!(Selector::build(&cfg, &Path::default(), &mut p).is_some());
        assert_eq!(p.0.len(), 2);
    }

    #[test]
    fn self_selection_finds_this_process() {
        let sel = Selector::myself();
        let scan = Scan::take(&[&sel]);
        assert_eq!(scan.select(&sel.how), vec![std::process::id() as i32]);
    }
}
