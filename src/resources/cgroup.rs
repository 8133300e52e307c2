//! The container's cgroup: memory use and limit, OOM kills, CPU use,
//! throttling and quota. cgroup v2 is read where its controllers are
//! enabled; hosts that still mount only v1 controllers (some CI and older
//! nodes) are read from the v1 files, normalised to the same series.

use std::path::{Path as FsPath, PathBuf};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::telemetry::cumulative::Deltas;
use crate::telemetry::{FloatCounter, FloatGauge};

/// Where the cgroup's files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    V2(PathBuf),
    V1 {
        memory: Option<PathBuf>,
        cpu: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
    },
}

/// One reading, in base units. `None`: not available on this host.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Reading {
    pub(crate) memory_usage: Option<u64>,
    /// `None` when unlimited.
    pub(crate) memory_limit: Option<u64>,
    pub(crate) oom_kills: Option<u64>,
    pub(crate) cpu_usage_seconds: Option<f64>,
    pub(crate) periods: Option<u64>,
    pub(crate) throttled_periods: Option<u64>,
    pub(crate) throttled_seconds: Option<f64>,
    /// `None` when unlimited.
    pub(crate) cpu_limit_cores: Option<f64>,
}

impl Layout {
    /// Finds this process's cgroup, or uses `path` as a v2 directory.
    pub(crate) fn discover(path: Option<&FsPath>) -> Option<Layout> {
        if let Some(p) = path {
            return Some(Layout::V2(p.to_path_buf()));
        }
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        Self::discover_in(&own, FsPath::new("/sys/fs/cgroup"))
    }

    fn discover_in(own: &str, root: &FsPath) -> Option<Layout> {
        let entry = |controller: &str| {
            own.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrls, rel) = (parts.next()?, parts.next()?, parts.next()?);
                ctrls
                    .split(',')
                    .any(|c| c == controller)
                    .then(|| rel.to_string())
            })
        };
        if let Some(rel) = own.lines().find_map(|l| l.strip_prefix("0::")) {
            for base in [root.to_path_buf(), root.join("unified")] {
                // In a cgroup namespace the recorded path may not exist
                // under the mount: the mount is already our cgroup.
                let dir = nested(&base, rel);
                if dir.join("memory.current").exists() || dir.join("cpu.max").exists() {
                    return Some(Layout::V2(dir));
                }
            }
        }
        let v1 = |controller: &str, mount: &str| {
            let base = root.join(mount);
            base.exists()
                .then(|| nested(&base, &entry(controller).unwrap_or_default()))
        };
        let layout = Layout::V1 {
            memory: v1("memory", "memory"),
            cpu: v1("cpu", "cpu"),
            cpuacct: v1("cpuacct", "cpuacct"),
        };
        match &layout {
            Layout::V1 {
                memory: None,
                cpu: None,
                cpuacct: None,
            } => None,
            _ => Some(layout),
        }
    }

    pub(crate) fn read(&self) -> Reading {
        match self {
            Layout::V2(dir) => read_v2(dir),
            Layout::V1 {
                memory,
                cpu,
                cpuacct,
            } => read_v1(memory.as_deref(), cpu.as_deref(), cpuacct.as_deref()),
        }
    }
}

fn nested(base: &FsPath, rel: &str) -> PathBuf {
    let dir = base.join(rel.trim_start_matches('/'));
    if dir.exists() {
        dir
    } else {
        base.to_path_buf()
    }
}

fn file(dir: &FsPath, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

fn number(dir: &FsPath, name: &str) -> Option<u64> {
    file(dir, name)?.trim().parse().ok()
}

/// A value from a `key value` file such as cpu.stat.
fn keyed(dir: &FsPath, name: &str, key: &str) -> Option<u64> {
    file(dir, name)?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

fn read_v2(dir: &FsPath) -> Reading {
    let memory_limit = file(dir, "memory.max").and_then(|s| s.trim().parse().ok());
    let cpu_limit_cores = file(dir, "cpu.max").and_then(|s| {
        let mut it = s.split_whitespace();
        let quota: f64 = it.next()?.parse().ok()?;
        let period: f64 = it.next()?.parse().ok()?;
        (period > 0.0).then(|| quota / period)
    });
    Reading {
        memory_usage: number(dir, "memory.current"),
        memory_limit,
        oom_kills: keyed(dir, "memory.events", "oom_kill"),
        cpu_usage_seconds: keyed(dir, "cpu.stat", "usage_usec").map(|u| u as f64 / 1e6),
        periods: keyed(dir, "cpu.stat", "nr_periods"),
        throttled_periods: keyed(dir, "cpu.stat", "nr_throttled"),
        throttled_seconds: keyed(dir, "cpu.stat", "throttled_usec").map(|u| u as f64 / 1e6),
        cpu_limit_cores,
    }
}

/// v1 reports "no limit" as a page-rounded i64::MAX.
const V1_UNLIMITED: u64 = 1 << 62;

fn read_v1(memory: Option<&FsPath>, cpu: Option<&FsPath>, cpuacct: Option<&FsPath>) -> Reading {
    let mut r = Reading::default();
    if let Some(m) = memory {
        r.memory_usage = number(m, "memory.usage_in_bytes");
        r.memory_limit = number(m, "memory.limit_in_bytes").filter(|l| *l < V1_UNLIMITED);
        r.oom_kills = keyed(m, "memory.oom_control", "oom_kill");
    }
    if let Some(c) = cpu {
        r.periods = keyed(c, "cpu.stat", "nr_periods");
        r.throttled_periods = keyed(c, "cpu.stat", "nr_throttled");
        r.throttled_seconds = keyed(c, "cpu.stat", "throttled_time").map(|ns| ns as f64 / 1e9);
        let quota = file(c, "cpu.cfs_quota_us").and_then(|s| s.trim().parse::<i64>().ok());
        let period = number(c, "cpu.cfs_period_us");
        if let (Some(q), Some(p)) = (quota, period) {
            r.cpu_limit_cores = (q > 0 && p > 0).then(|| q as f64 / p as f64);
        }
    }
    if let Some(a) = cpuacct.or(cpu) {
        r.cpu_usage_seconds = number(a, "cpuacct.usage").map(|ns| ns as f64 / 1e9);
    }
    r
}

crate::telemetry::families! {
    #[derive(Debug)]
    pub struct CgroupMetrics {
        mem_usage: Gauge => "memory_usage_bytes", "Memory charged to the container's cgroup (memory.current)",
        mem_limit: FloatGauge => "memory_limit_bytes", "The cgroup's memory limit (memory.max); +Inf when unlimited",
        oom_kills: Counter => "oom_kills", "Processes the OOM killer ended in the cgroup (memory.events oom_kill)",
        cpu_usage: FloatCounter => "cpu_usage_seconds", "CPU time used by the cgroup (cpu.stat usage_usec)",
        periods: Counter => "cpu_periods", "CFS enforcement periods elapsed (cpu.stat nr_periods)",
        throttled_periods: Counter => "cpu_throttled_periods", "CFS periods in which the cgroup was throttled (cpu.stat nr_throttled)",
        throttled: FloatCounter => "cpu_throttled_seconds", "Time the cgroup was throttled (cpu.stat throttled_usec)",
        cpu_limit: FloatGauge => "cpu_limit_cores", "CPU quota in cores (cpu.max quota / period); +Inf when unlimited",
    }
}

/// A cgroup and the totals seen at the previous sample.
#[derive(Debug)]
pub(crate) struct Cgroup {
    pub(crate) layout: Layout,
    deltas: Deltas,
}

impl Cgroup {
    pub(crate) fn new(layout: Layout) -> Cgroup {
        Cgroup {
            layout,
            deltas: Deltas::default(),
        }
    }

    pub(crate) fn sample(&mut self, m: &CgroupMetrics) {
        let r = self.layout.read();
        if let Some(v) = r.memory_usage {
            m.mem_usage.set(v as i64);
        }
        // No limit is an infinite one: usage / limit reads 0, not a division by 0.
        m.mem_limit
            .set(r.memory_limit.map_or(f64::INFINITY, |v| v as f64));
        m.cpu_limit.set(r.cpu_limit_cores.unwrap_or(f64::INFINITY));
        let mut count = |c: &Counter, key: &str, v: Option<u64>| {
            if let Some(v) = v {
                c.inc_by(self.deltas.delta(key, v as f64) as u64);
            }
        };
        count(&m.oom_kills, "oom", r.oom_kills);
        count(&m.periods, "periods", r.periods);
        count(
            &m.throttled_periods,
            "throttled_periods",
            r.throttled_periods,
        );
        if let Some(v) = r.cpu_usage_seconds {
            m.cpu_usage.inc_by(self.deltas.delta("cpu", v));
        }
        if let Some(v) = r.throttled_seconds {
            m.throttled.inc_by(self.deltas.delta("throttled", v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &FsPath, name: &str, body: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), body).unwrap();
    }

    #[test]
    fn reads_v2_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(p, "memory.current", "1048576\n");
        write(p, "memory.max", "max\n");
        write(
            p,
            "memory.events",
            "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n",
        );
        write(p, "cpu.stat", "usage_usec 2500000\nuser_usec 1\nsystem_usec 1\nnr_periods 10\nnr_throttled 3\nthrottled_usec 400000\n");
        write(p, "cpu.max", "50000 100000\n");
        let r = Layout::V2(p.to_path_buf()).read();
        assert_eq!(r.memory_usage, Some(1_048_576));
        assert_eq!(r.memory_limit, None);
        assert_eq!(r.oom_kills, Some(1));
        assert_eq!(r.cpu_usage_seconds, Some(2.5));
        assert_eq!((r.periods, r.throttled_periods), (Some(10), Some(3)));
        assert_eq!(r.throttled_seconds, Some(0.4));
        assert_eq!(r.cpu_limit_cores, Some(0.5));
        write(p, "cpu.max", "max 100000\n");
        assert_eq!(Layout::V2(p.to_path_buf()).read().cpu_limit_cores, None);
    }

    #[test]
    fn discovers_v2_in_a_namespace_and_v1_on_hybrid_hosts() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "memory.current", "1\n");
        let found = Layout::discover_in("0::/\n", d.path());
        assert_eq!(found, Some(Layout::V2(d.path().to_path_buf())));

        let h = tempfile::tempdir().unwrap();
        write(&h.path().join("memory"), "memory.usage_in_bytes", "5\n");
        write(&h.path().join("unified"), "cgroup.controllers", "");
        let own = "4:memory:/gone/elsewhere\n0::/\n";
        let Some(Layout::V1 {
            memory: Some(m), ..
        }) = Layout::discover_in(own, h.path())
        else {
            panic!("expected v1 memory");
        };
        assert_eq!(m, h.path().join("memory"));
    }
}
