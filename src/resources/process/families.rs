//! The per-group metric families (`process_` names, by `process` label) and
//! how a group's member readings become their values.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::delta::Growth;
use super::read::{start_unix_seconds, Reading};
use crate::telemetry::labels::ProcessLabels;
use crate::telemetry::{FloatCounter, FloatGauge};

crate::telemetry::label_enum! {
    /// The `mode` of CPU time.
    #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
    enum CpuMode {
        User => "user",
        System => "system",
    }
}

crate::telemetry::label_enum! {
    /// The `mode` of a context switch.
    #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
    enum SwitchMode {
        Voluntary => "voluntary",
        Involuntary => "involuntary",
    }
}

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

crate::telemetry::families! {
    /// The per-group families.
    #[derive(Debug)]
    pub struct ProcessMetrics {
        up: Family<ProcessLabels, Gauge> => "up", "1 if at least one process matches the group's selector, else 0",
        count: Family<ProcessLabels, Gauge> => "num_procs", "Number of processes matched by the group's selector",
        rss: Family<ProcessLabels, Gauge> => "resident_memory_bytes", "Resident set size, summed over the group",
        pss: Family<ProcessLabels, Gauge> => "proportional_memory_bytes", "Proportional set size (PSS), summed over the group, where smaps_rollup is readable",
        uss: Family<ProcessLabels, Gauge> => "unique_memory_bytes", "Unique set size (private clean + dirty), summed over the group, where smaps_rollup is readable",
        vms: Family<ProcessLabels, Gauge> => "virtual_memory_bytes", "Virtual memory size, summed over the group",
        cpu: Family<CpuLabels, FloatCounter> => "cpu_seconds", "CPU time used by the group, by mode (user, system)",
        fds: Family<ProcessLabels, Gauge> => "open_fds", "Open file descriptors, summed over the group",
        max_fds: Family<ProcessLabels, Gauge> => "max_fds", "The lowest soft limit on open file descriptors among the group's processes",
        fd_ratio: Family<ProcessLabels, FloatGauge> => "fd_usage_ratio", "The highest open-fds-to-limit ratio among the group's processes",
        threads: Family<ProcessLabels, Gauge> => "threads", "Threads, summed over the group",
        io_read: Family<ProcessLabels, Counter> => "io_read_bytes", "Bytes the group read from storage",
        io_write: Family<ProcessLabels, Counter> => "io_write_bytes", "Bytes the group wrote to storage",
        switches: Family<SwitchLabels, Counter> => "context_switches", "Context switches of the group, by mode (voluntary, involuntary)",
        start: Family<ProcessLabels, FloatGauge> => "start_time_seconds", "Unix time at which the newest process of the group started; a restart moves it",
    }
}

impl ProcessMetrics {
    /// Sets a group's gauges from its members' readings: `up` and the
    /// process count always, the rest as sums (or the worst member) over the
    /// members, or none when nothing matched.
    pub(super) fn set_gauges(&self, l: &ProcessLabels, rs: &[(i32, Reading)]) {
        self.up.get_or_create(l).set(i64::from(!rs.is_empty()));
        self.count.get_or_create(l).set(rs.len() as i64);
        if rs.is_empty() {
            self.clear_gauges(l);
        } else {
            self.set_sums(l, rs);
        }
    }

    fn set_sums(&self, l: &ProcessLabels, rs: &[(i32, Reading)]) {
        let sum = |f: fn(&Reading) -> u64| rs.iter().map(|(_, r)| f(r)).sum::<u64>() as i64;
        let sum_opt = |f: fn(&Reading) -> Option<u64>| -> Option<i64> {
            rs.iter()
                .map(|(_, r)| f(r))
                .sum::<Option<u64>>()
                .map(|v| v as i64)
        };
        self.rss.get_or_create(l).set(sum(|r| r.rss));
        self.vms.get_or_create(l).set(sum(|r| r.vms));
        self.threads
            .get_or_create(l)
            .set(rs.iter().map(|(_, r)| r.threads).sum());
        set_or_remove(&self.pss, l, sum_opt(|r| r.pss));
        set_or_remove(&self.uss, l, sum_opt(|r| r.uss));
        set_or_remove(&self.fds, l, sum_opt(|r| r.fds));
        set_or_remove(
            &self.max_fds,
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
                self.fd_ratio.get_or_create(l).set(x);
            }
            None => {
                self.fd_ratio.remove(l);
            }
        }
        let newest = rs.iter().map(|(_, r)| r.start_ticks).max().unwrap_or(0);
        self.start.get_or_create(l).set(start_unix_seconds(newest));
    }

    /// Adds one member's growth to the group's counters.
    pub(super) fn grow(&self, l: &ProcessLabels, g: &Growth) {
        let cpu = |mode| CpuLabels {
            process: l.process.clone(),
            mode,
        };
        let switch = |mode| SwitchLabels {
            process: l.process.clone(),
            mode,
        };
        let cpu_seconds = [
            (CpuMode::User, g.user_seconds),
            (CpuMode::System, g.system_seconds),
        ];
        for (mode, v) in cpu_seconds {
            self.cpu.get_or_create(&cpu(mode)).inc_by(v);
        }
        self.io_read.get_or_create(l).inc_by(g.read_bytes);
        self.io_write.get_or_create(l).inc_by(g.write_bytes);
        let switches = [
            (SwitchMode::Voluntary, g.voluntary),
            (SwitchMode::Involuntary, g.involuntary),
        ];
        for (mode, n) in switches {
            self.switches.get_or_create(&switch(mode)).inc_by(n);
        }
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
    pub(crate) fn remove(&self, label: &str) {
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
