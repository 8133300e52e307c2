//! Host readings: CPU utilisation and load, memory and swap (procfs), disk and
//! network byte counters per device (filtered, capped), and filesystem size
//! and free space for configured mount points (statvfs).

use std::collections::HashSet;
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
    disks: Devices,
    ifaces: Devices,
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
            } else {
                // Unmounted: no stale size.
                m.fs_size.remove(&l);
                m.fs_avail.remove(&l);
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
        let readings = stats
            .iter()
            .filter(|d| s.disks.keeps(&d.name))
            .take(MAX_DEVICES)
            .map(|d| {
                (
                    d.name.clone(),
                    d.sectors_read * 512,
                    d.sectors_written * 512,
                )
            })
            .collect();
        let families = [&m.disk_read, &m.disk_written];
        self.disks
            .record(readings, families, |device| DeviceLabels { device });
    }

    fn network(&mut self, s: &HostSettings, m: &HostMetrics) {
        let Ok(devs) = procfs::net::dev_status() else {
            return;
        };
        let mut readings: Vec<_> = devs
            .values()
            .filter(|d| s.interfaces.keeps(&d.name))
            .map(|d| (d.name.clone(), d.recv_bytes, d.sent_bytes))
            .collect();
        readings.sort();
        readings.truncate(MAX_DEVICES);
        self.interfaces(readings, m);
    }

    /// Records (interface, received, sent) byte totals.
    fn interfaces(&mut self, readings: Vec<(String, u64, u64)>, m: &HostMetrics) {
        let families = [&m.net_rx, &m.net_tx];
        self.ifaces
            .record(readings, families, |interface| IfaceLabels { interface });
    }
}

/// Disks or interfaces: the totals last read and the devices last shown.
#[derive(Debug, Default)]
struct Devices {
    deltas: Deltas,
    shown: HashSet<String>,
}

impl Devices {
    /// Adds two byte totals per device to a pair of counter families, and
    /// removes the series of devices shown last time that are gone now, so
    /// interface churn on a node does not grow them forever.
    fn record<L: Clone + std::hash::Hash + Eq>(
        &mut self,
        readings: Vec<(String, u64, u64)>,
        families: [&Family<L, Counter>; 2],
        label: impl Fn(String) -> L,
    ) {
        let now: HashSet<String> = readings.iter().map(|r| r.0.clone()).collect();
        for gone in self.shown.difference(&now) {
            let l = label(gone.clone());
            for (i, family) in families.iter().enumerate() {
                family.remove(&l);
                self.deltas.forget(&format!("{i}:{gone}"));
            }
        }
        self.shown = now;
        for (name, a, b) in readings {
            let l = label(name.clone());
            for (i, (family, total)) in families.iter().zip([a, b]).enumerate() {
                let d = self.deltas.delta(&format!("{i}:{name}"), total as f64);
                family.get_or_create(&l).inc_by(d as u64);
            }
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
    use prometheus_client::registry::Registry;

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
    fn an_interface_that_disappears_loses_its_series() {
        let mut r = Registry::default();
        let m = HostMetrics::register(&mut r);
        let mut host = Host::default();
        let reading = |name: &str, n: u64| (name.to_string(), n, n);
        host.interfaces(vec![reading("eth0", 10), reading("vxlan7", 5)], &m);
        host.interfaces(vec![reading("eth0", 30)], &m);
        let text = crate::telemetry::encode_prometheus(&r);
        assert!(!text.contains("vxlan7"), "{text}");
        let rx = crate::telemetry::find_sample(
            &text,
            "network_receive_bytes_total",
            &[("interface", "eth0")],
        );
        assert_eq!(rx, Some(30.0), "{text}");
        // Back again: counted from its new total, as a new series.
        host.interfaces(vec![reading("eth0", 30), reading("vxlan7", 2)], &m);
        let text = crate::telemetry::encode_prometheus(&r);
        let rx = crate::telemetry::find_sample(
            &text,
            "network_receive_bytes_total",
            &[("interface", "vxlan7")],
        );
        assert_eq!(rx, Some(2.0), "{text}");
    }

    #[test]
    fn statvfs_reads_root() {
        let (size, avail) = statvfs("/").unwrap();
        assert!(size > 0 && avail <= size);
        assert!(statvfs("/nonexistent-mount").is_none());
    }
}
