//! Host readings: CPU utilisation and load, memory and swap (procfs), disk and
//! network byte counters per device (filtered, capped), and filesystem size
//! and free space for configured mount points (statvfs).

use std::ffi::CString;

use procfs::{Current, CurrentSI, KernelStats, LoadAverage, Meminfo};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use regex::Regex;

use crate::config::{BuildCx, LabelFilter, ResourcesConfig};
use crate::telemetry::cumulative::Deltas;
use crate::telemetry::FloatGauge;

/// Most devices or interfaces exported, whatever the filters allow.
pub(crate) const MAX_DEVICES: usize = 32;

const DEFAULT_DISK_EXCLUDE: &str = r"^(loop|ram|zram|sr|dm-)\d*";
const DEFAULT_IFACE_EXCLUDE: &str = r"^(lo|veth|cali|cni|flannel|docker|br-|virbr|tun|tap|ifb)";

/// A compiled include/exclude pair.
#[derive(Debug)]
pub(crate) struct Filter {
    include: Option<Regex>,
    exclude: Regex,
}

impl Filter {
    pub(crate) fn build(
        cfg: &LabelFilter,
        default_exclude: &str,
        cx: &mut BuildCx,
    ) -> Option<Filter> {
        let mut compile = |src: &str, key: &str| match Regex::new(src) {
            Ok(r) => Some(r),
            Err(e) => {
                cx.problem_at(key, format!("invalid regex: {e}"));
                None
            }
        };
        let include = match &cfg.include {
            Some(s) => Some(compile(s, "include")?),
            None => None,
        };
        let exclude = compile(cfg.exclude.as_deref().unwrap_or(default_exclude), "exclude")?;
        Some(Filter { include, exclude })
    }

    fn keeps(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|r| r.is_match(name)) && !self.exclude.is_match(name)
    }
}

/// Compiled host settings.
#[derive(Debug)]
pub(crate) struct HostSettings {
    pub(crate) filesystems: Vec<String>,
    pub(crate) disks: Filter,
    pub(crate) interfaces: Filter,
}

impl HostSettings {
    pub(crate) fn build(cfg: &ResourcesConfig, cx: &mut BuildCx) -> Option<HostSettings> {
        for (i, fs) in cfg.filesystems.iter().enumerate() {
            if !fs.starts_with('/') {
                cx.key("filesystems")
                    .index(i)
                    .problem("must be an absolute mount point");
            }
        }
        let disks = Filter::build(&cfg.disks, DEFAULT_DISK_EXCLUDE, &mut cx.key("disks"));
        let interfaces = Filter::build(
            &cfg.interfaces,
            DEFAULT_IFACE_EXCLUDE,
            &mut cx.key("interfaces"),
        );
        Some(HostSettings {
            filesystems: cfg.filesystems.clone(),
            disks: disks?,
            interfaces: interfaces?,
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabels {
    device: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IfaceLabels {
    interface: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MountLabels {
    mountpoint: String,
}

crate::telemetry::families! {
    #[derive(Debug)]
    pub struct HostMetrics {
        cpu_ratio: FloatGauge => "cpu_utilization_ratio", "Share of all CPU time not idle or waiting on IO over the last resource interval (0 to 1)",
        cpus: Gauge => "cpus", "Number of CPUs the host reports",
        load1: FloatGauge => "load1", "1-minute load average",
        load5: FloatGauge => "load5", "5-minute load average",
        load15: FloatGauge => "load15", "15-minute load average",
        mem_total: Gauge => "memory_total_bytes", "Total usable memory (MemTotal)",
        mem_available: Gauge => "memory_available_bytes", "Memory available for new work without swapping (MemAvailable)",
        mem_used: Gauge => "memory_used_bytes", "MemTotal minus MemAvailable",
        swap_total: Gauge => "swap_total_bytes", "Total swap",
        swap_used: Gauge => "swap_used_bytes", "Swap in use",
        disk_read: Family<DeviceLabels, Counter> => "disk_read_bytes", "Bytes read from a block device",
        disk_written: Family<DeviceLabels, Counter> => "disk_written_bytes", "Bytes written to a block device",
        net_rx: Family<IfaceLabels, Counter> => "network_receive_bytes", "Bytes received on a network interface",
        net_tx: Family<IfaceLabels, Counter> => "network_transmit_bytes", "Bytes sent on a network interface",
        fs_size: Family<MountLabels, Gauge> => "filesystem_size_bytes", "Size of a configured filesystem",
        fs_avail: Family<MountLabels, Gauge> => "filesystem_avail_bytes", "Space on a configured filesystem available to unprivileged users",
    }
}

/// Host sampling state between samples.
#[derive(Debug, Default)]
pub(crate) struct Host {
    last_cpu: Option<(u64, u64)>,
    deltas: Deltas,
}

impl Host {
    pub(crate) fn sample(&mut self, s: &HostSettings, m: &HostMetrics) {
        self.cpu(m);
        if let Ok(l) = LoadAverage::current() {
            m.load1.set(f64::from(l.one));
            m.load5.set(f64::from(l.five));
            m.load15.set(f64::from(l.fifteen));
        }
        if let Ok(mi) = Meminfo::current() {
            let avail = mi.mem_available.unwrap_or(mi.mem_free);
            m.mem_total.set(mi.mem_total as i64);
            m.mem_available.set(avail as i64);
            m.mem_used.set(mi.mem_total.saturating_sub(avail) as i64);
            m.swap_total.set(mi.swap_total as i64);
            m.swap_used
                .set(mi.swap_total.saturating_sub(mi.swap_free) as i64);
        }
        self.disks(s, m);
        self.network(s, m);
        for mount in &s.filesystems {
            let l = MountLabels {
                mountpoint: mount.clone(),
            };
            if let Some((size, avail)) = statvfs(mount) {
                m.fs_size.get_or_create(&l).set(size as i64);
                m.fs_avail.get_or_create(&l).set(avail as i64);
            }
        }
    }

    fn cpu(&mut self, m: &HostMetrics) {
        let Ok(ks) = KernelStats::current() else {
            return;
        };
        let t = &ks.total;
        let idle = t.idle + t.iowait.unwrap_or(0);
        let total = t.user
            + t.nice
            + t.system
            + idle
            + t.irq.unwrap_or(0)
            + t.softirq.unwrap_or(0)
            + t.steal.unwrap_or(0);
        m.cpus.set(ks.cpu_time.len() as i64);
        if let Some((last_total, last_idle)) = self.last_cpu {
            let dt = total.saturating_sub(last_total);
            if dt > 0 {
                let busy = dt.saturating_sub(idle.saturating_sub(last_idle));
                m.cpu_ratio.set(busy as f64 / dt as f64);
            }
        }
        self.last_cpu = Some((total, idle));
    }

    fn disks(&mut self, s: &HostSettings, m: &HostMetrics) {
        let Ok(stats) = procfs::diskstats() else {
            return;
        };
        for d in stats
            .iter()
            .filter(|d| s.disks.keeps(&d.name))
            .take(MAX_DEVICES)
        {
            let l = DeviceLabels {
                device: d.name.clone(),
            };
            let read = self
                .deltas
                .delta(&format!("r:{}", d.name), (d.sectors_read * 512) as f64);
            let written = self
                .deltas
                .delta(&format!("w:{}", d.name), (d.sectors_written * 512) as f64);
            m.disk_read.get_or_create(&l).inc_by(read as u64);
            m.disk_written.get_or_create(&l).inc_by(written as u64);
        }
    }

    fn network(&mut self, s: &HostSettings, m: &HostMetrics) {
        let Ok(devs) = procfs::net::dev_status() else {
            return;
        };
        let mut names: Vec<_> = devs
            .keys()
            .filter(|n| s.interfaces.keeps(n))
            .cloned()
            .collect();
        names.sort();
        for name in names.into_iter().take(MAX_DEVICES) {
            let d = &devs[&name];
            let rx = self
                .deltas
                .delta(&format!("rx:{name}"), d.recv_bytes as f64);
            let tx = self
                .deltas
                .delta(&format!("tx:{name}"), d.sent_bytes as f64);
            let l = IfaceLabels { interface: name };
            m.net_rx.get_or_create(&l).inc_by(rx as u64);
            m.net_tx.get_or_create(&l).inc_by(tx as u64);
        }
    }
}

/// (size, available to unprivileged users) in bytes.
pub(crate) fn statvfs(mount: &str) -> Option<(u64, u64)> {
    let c = CString::new(mount).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frag = st.f_frsize as u64;
    Some((st.f_blocks as u64 * frag, st.f_bavail as u64 * frag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;
    use crate::redact::Redactor;

    #[test]
    fn default_filters() {
        let mut p = Problems::default();
        let disks = Filter::build(
            &LabelFilter::default(),
            DEFAULT_DISK_EXCLUDE,
            &mut BuildCx::new(&mut p, &mut Redactor::default()),
        )
        .unwrap();
        assert!(
            disks.keeps("sda")
                && disks.keeps("nvme0n1")
                && !disks.keeps("loop3")
                && !disks.keeps("dm-0")
        );
        let ifaces = Filter::build(
            &LabelFilter::default(),
            DEFAULT_IFACE_EXCLUDE,
            &mut BuildCx::new(&mut p, &mut Redactor::default()),
        )
        .unwrap();
        assert!(ifaces.keeps("eth0") && !ifaces.keeps("lo") && !ifaces.keeps("veth12ab"));
        let only = LabelFilter {
            include: Some("^eth".into()),
            exclude: Some("^$".into()),
        };
        let f = Filter::build(
            &only,
            DEFAULT_IFACE_EXCLUDE,
            &mut BuildCx::new(&mut p, &mut Redactor::default()),
        )
        .unwrap();
        assert!(f.keeps("eth1") && !f.keeps("lo"));
        assert!(p.is_empty());
    }

    #[test]
    fn statvfs_reads_root() {
        let (size, avail) = statvfs("/").unwrap();
        assert!(size > 0 && avail <= size);
        assert!(statvfs("/nonexistent-mount").is_none());
    }
}
