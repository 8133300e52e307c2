//! Resource sampling: the service's process groups, sidewatch itself, the
//! host and the container's cgroup, on their own interval.
//!
//! A sample reads files under /proc and /sys, which can block, so it runs on
//! tokio's blocking pool; `/metrics` only ever waits for a per-series lock.

pub mod cgroup;
pub mod host;
pub mod process;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::{BuildCx, ResourcesConfig, ServiceConfig};
use crate::telemetry::FloatGauge;
use cgroup::{Cgroup, CgroupMetrics, Layout};
use host::{Host, HostMetrics, HostSettings};
use process::{Group, ProcessMetrics, Scan, Selector};

/// Compiled resource settings.
#[derive(Debug)]
pub struct ResourcePlan {
    pub(crate) interval: Duration,
    pub(crate) selectors: Vec<Selector>,
    host: Option<HostSettings>,
    cgroup: Option<Option<PathBuf>>,
}

impl ResourcePlan {
    /// Compiles the `service:` and `resources:` sections; `cx` is at the
    /// document root, since this plan reads two top-level sections.
    pub(crate) fn build(
        service: &ServiceConfig,
        cfg: &ResourcesConfig,
        cx: &mut BuildCx,
    ) -> Option<ResourcePlan> {
        cx.checked(|cx| {
            if cfg.interval.0 < Duration::from_millis(100) {
                cx.key("resources")
                    .problem_at("interval", "must be at least 100ms");
            }
            let mut seen = HashSet::new();
            let mut selectors = Vec::new();
            let mut service_cx = cx.key("service");
            let mut processes = service_cx.key("processes");
            for (i, sel) in service.processes.iter().enumerate() {
                let mut cx = processes.index(i);
                if !seen.insert(sel.label.as_str()) {
                    cx.problem_at("label", format!("duplicate label `{}`", sel.label));
                }
                selectors.extend(Selector::build(sel, &mut cx));
            }
            let host = if cfg.host {
                HostSettings::build(cfg, &mut cx.key("resources"))
            } else {
                None
            };
            Some(ResourcePlan {
                interval: cfg.interval.0,
                selectors,
                host,
                cgroup: cfg.cgroup.enabled.then(|| cfg.cgroup.path.clone()),
            })
        })
    }

    /// The `process` labels this plan exports, sidewatch's own included.
    pub(crate) fn labels(&self) -> Vec<String> {
        let mut l: Vec<String> = self.selectors.iter().map(|s| s.label.clone()).collect();
        l.push(process::SELF_LABEL.to_string());
        l
    }
}

crate::telemetry::families! {
    /// The sampler's own `resources_` families.
    #[derive(Debug)]
    pub struct SamplerMetrics {
        sample_seconds: FloatGauge => "sample_duration_seconds", "Wall time the last resource sample took",
        samples: Counter => "samples", "Resource samples taken",
    }
}

/// Every resource family: process groups, host, cgroup and the sampler's
/// own, each group registered in its own sub-registry.
#[derive(Debug)]
pub struct ResourceMetrics {
    pub(crate) process: ProcessMetrics,
    host: HostMetrics,
    cgroup: CgroupMetrics,
    sampler: SamplerMetrics,
}

impl ResourceMetrics {
    pub fn new(
        process: ProcessMetrics,
        host: HostMetrics,
        cgroup: CgroupMetrics,
        sampler: SamplerMetrics,
    ) -> ResourceMetrics {
        ResourceMetrics {
            process,
            host,
            cgroup,
            sampler,
        }
    }
}

/// The state carried from one sample to the next.
#[derive(Debug)]
pub struct Sampler {
    groups: Vec<Group>,
    host: Option<(Host, HostSettings)>,
    cgroup: Option<Cgroup>,
}

impl Sampler {
    pub fn new(plan: ResourcePlan) -> Sampler {
        let mut groups: Vec<Group> = plan.selectors.into_iter().map(Group::new).collect();
        groups.push(Group::new(Selector::myself()));
        let cgroup = plan
            .cgroup
            .and_then(|path| Layout::discover(path.as_deref()))
            .map(Cgroup::new);
        match &cgroup {
            Some(c) => tracing::debug!(layout = ?c.layout, "sampling the cgroup"),
            None => tracing::info!("no cgroup found to sample"),
        }
        Sampler {
            groups,
            host: plan.host.map(|s| (Host::default(), s)),
            cgroup,
        }
    }

    pub fn sample(&mut self, m: &ResourceMetrics) {
        let t = Instant::now();
        let selectors: Vec<&Selector> = self.groups.iter().map(|g| &g.selector).collect();
        let scan = Scan::take(&selectors);
        let now = process::uptime_ticks();
        for g in &mut self.groups {
            g.sample(&scan, now, &m.process);
        }
        if let Some((host, settings)) = &mut self.host {
            host.sample(settings, &m.host);
        }
        if let Some(c) = &mut self.cgroup {
            c.sample(&m.cgroup);
        }
        m.sampler.samples.inc();
        m.sampler.sample_seconds.set(t.elapsed().as_secs_f64());
    }
}

/// A running sampler task.
#[derive(Debug)]
pub(crate) struct Resources {
    pub(crate) labels: Vec<String>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Resources {
    pub(crate) fn start(plan: ResourcePlan, metrics: Arc<ResourceMetrics>) -> Resources {
        let labels = plan.labels();
        let interval = plan.interval;
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(Sampler::new(plan), interval, metrics, cancel.clone()));
        Resources {
            labels,
            cancel,
            task,
        }
    }

    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

async fn run(
    sampler: Sampler,
    interval: Duration,
    m: Arc<ResourceMetrics>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut sampler = Some(sampler);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut s = sampler
            .take()
            .expect("sampler is returned after each sample");
        let metrics = m.clone();
        let sampled = tokio::task::spawn_blocking(move || {
            s.sample(&metrics);
            s
        });
        // A read that hangs (a stuck filesystem) keeps its blocking thread,
        // not the stop.
        let sampled = tokio::select! {
            _ = cancel.cancelled() => return,
            sampled = sampled => sampled,
        };
        match sampled {
            Ok(s) => sampler = Some(s),
            Err(e) => {
                tracing::error!(error = %e, "resource sampling stopped");
                return;
            }
        }
    }
}
