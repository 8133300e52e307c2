//! The running sidecar: metric registry, HTTP server and probe loops, wired
//! together; SIGHUP reloads the config, SIGTERM or SIGINT drains and exits.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::check::baseline::store::Store;
use crate::check::metrics::{CheckFamilies, CheckMetrics, LeakFamilies};
use crate::check::runner::Checks;
use crate::load::metrics::LoadMetrics;
use crate::otlp::{Exporter, OtlpMetrics, OtlpPlan};
use crate::plan::Plan;
use crate::probes::metrics::{
    unix_seconds, KafkaFamilies, ProbeFamilies, ProbeMetrics, QueryFamilies,
};
use crate::probes::Kind;
use crate::resources::cgroup::CgroupMetrics;
use crate::resources::host::HostMetrics;
use crate::resources::process::ProcessMetrics;
use crate::resources::{ResourceMetrics, Resources, SamplerMetrics};
use crate::scheduler::{Outcomes, ProbeSet};
use crate::server::{serve, ServerMetrics, ServerState};
use crate::telemetry::{self, FloatGauge};

/// Metrics about the sidecar's own configuration.
#[derive(Debug, Default)]
struct AppMetrics {
    reload_ok: Gauge,
    reload_time: FloatGauge,
    probes: Gauge,
}

impl AppMetrics {
    /// Registers under two prefixes of the root: `config_` and `probes_`.
    fn register(root: &mut Registry) -> AppMetrics {
        let m = AppMetrics::default();
        let config = root.sub_registry_with_prefix("config");
        config.register(
            "last_reload_successful",
            "Whether the last configuration load or SIGHUP reload succeeded (1) or was rejected (0)",
            m.reload_ok.clone(),
        );
        config.register(
            "last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load",
            m.reload_time.clone(),
        );
        root.sub_registry_with_prefix("probes").register(
            "configured",
            "Number of probes in the running configuration",
            m.probes.clone(),
        );
        m
    }

    fn loaded(&self, probes: usize) {
        self.reload_ok.set(1);
        self.reload_time.set(unix_seconds(SystemTime::now()));
        self.probes.set(probes as i64);
    }
}

/// Every family the sidecar exports.
struct Families {
    probes: ProbeMetrics,
    app: AppMetrics,
    resources: ResourceMetrics,
    otlp: OtlpMetrics,
    load: LoadMetrics,
    check: CheckMetrics,
    server: ServerMetrics,
}

impl Families {
    /// The sidecar's metric layout: the prefix each component's families get
    /// under the root's `sidewatch`. Sub-registries are encoded in the order
    /// they are created (struct fields are evaluated as written), so this
    /// order is the order of /metrics.
    fn register(root: &mut Registry) -> Families {
        telemetry::register_build_info(root);
        Families {
            probes: ProbeMetrics::new(
                ProbeFamilies::register(root.sub_registry_with_prefix("probe")),
                QueryFamilies::register(root.sub_registry_with_prefix("query")),
                KafkaFamilies::register(root.sub_registry_with_prefix("kafka")),
            ),
            app: AppMetrics::register(root),
            resources: ResourceMetrics::new(
                ProcessMetrics::register(root.sub_registry_with_prefix("process")),
                HostMetrics::register(root.sub_registry_with_prefix("host")),
                CgroupMetrics::register(root.sub_registry_with_prefix("cgroup")),
                SamplerMetrics::register(root.sub_registry_with_prefix("resources")),
            ),
            otlp: OtlpMetrics::register(root.sub_registry_with_prefix("otlp")),
            load: LoadMetrics::register(root.sub_registry_with_prefix("load")),
            check: CheckMetrics::new(
                CheckFamilies::register(root.sub_registry_with_prefix("check")),
                LeakFamilies::register(root.sub_registry_with_prefix("leak")),
            ),
            server: ServerMetrics::register(root.sub_registry_with_prefix("metrics")),
        }
    }
}

/// A running sidecar.
#[derive(Debug)]
pub struct Sidecar {
    /// The address the HTTP server actually listens on.
    pub addr: SocketAddr,
    pub outcomes: Arc<Outcomes>,
    /// The load families, for checks run inside the sidecar.
    pub(crate) load_metrics: Arc<LoadMetrics>,
    /// Scheduled and requested checks.
    pub(crate) checks: Arc<Checks>,
    state: Arc<ServerState>,
    metrics: AppMetrics,
    probes: Option<ProbeSet>,
    /// The probes of the config installed last, by name and kind.
    configured: Arc<Mutex<HashSet<(String, Kind)>>>,
    resource_metrics: Arc<ResourceMetrics>,
    resources: Option<Resources>,
    otlp_metrics: Arc<OtlpMetrics>,
    otlp: Option<Exporter>,
    server_stop: CancellationToken,
    server: JoinHandle<()>,
}

impl Sidecar {
    /// Binds `listen`, starts the server, then schedules the plan's probes.
    pub async fn start(plan: Plan, listen: SocketAddr) -> io::Result<Sidecar> {
        let mut registry = Registry::with_prefix(telemetry::PREFIX);
        let families = Families::register(&mut registry);
        let outcomes = Arc::new(Outcomes::new(families.probes));
        let metrics = families.app;
        let resource_metrics = Arc::new(families.resources);
        let otlp_metrics = Arc::new(families.otlp);
        let load_metrics = Arc::new(families.load);
        let checks = Arc::new(Checks::new(Arc::new(families.check), load_metrics.clone()));
        let server_metrics = families.server;

        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ServerState {
            registry: Arc::new(registry),
            metrics: server_metrics,
            probes: outcomes.clone(),
            checks: Some(checks.clone()),
            ready: Default::default(),
        });
        let server_stop = CancellationToken::new();
        let limits = plan.server.clone();
        let server = tokio::spawn(serve(listener, state.clone(), limits, server_stop.clone()));

        metrics.loaded(plan.probes.len());
        let resources = Resources::start(plan.resources, resource_metrics.clone());
        let otlp = start_otlp(plan.otlp, &state, &otlp_metrics);
        configure_checks(&checks, plan.checks, plan.store, plan.api_token).await;
        let configured = plan
            .probes
            .iter()
            .map(|p| (p.name.clone(), p.kind))
            .collect();
        let probes = ProbeSet::start(plan.probes, &outcomes, plan.redactor);
        state.ready.store(true, Ordering::Relaxed);
        Ok(Sidecar {
            addr,
            outcomes,
            load_metrics,
            checks,
            state,
            metrics,
            probes: Some(probes),
            configured: Arc::new(Mutex::new(configured)),
            resource_metrics,
            resources: Some(resources),
            otlp_metrics,
            otlp,
            server_stop,
            server,
        })
    }

    /// Swaps in a new plan. Runs in flight finish in the background; then the
    /// series of probes and process groups that are gone are removed.
    pub async fn reload(&mut self, plan: Plan) {
        self.restart_resources(plan.resources).await;
        if let Some(old) = self.otlp.take() {
            old.stop().await;
        }
        self.otlp = start_otlp(plan.otlp, &self.state, &self.otlp_metrics);
        configure_checks(&self.checks, plan.checks, plan.store, plan.api_token).await;
        *self.configured.lock().expect("configured") = plan
            .probes
            .iter()
            .map(|p| (p.name.clone(), p.kind))
            .collect();
        self.metrics.loaded(plan.probes.len());
        let new = ProbeSet::start(plan.probes, &self.outcomes, plan.redactor);
        let Some(old) = self.probes.replace(new) else {
            return;
        };
        let (outcomes, configured) = (self.outcomes.clone(), self.configured.clone());
        tokio::spawn(async move {
            let old = old.stop().await;
            // Against the probes configured now, not at this reload: a
            // later one may have brought a probe back.
            let configured = configured.lock().expect("configured");
            for p in old {
                if !configured.contains(&(p.name.clone(), p.kind)) {
                    outcomes.metrics.remove(&p.name, p.kind);
                }
            }
        });
    }

    async fn restart_resources(&mut self, plan: crate::resources::ResourcePlan) {
        let next = plan.labels();
        if let Some(old) = self.resources.take() {
            let gone: Vec<_> = old
                .labels
                .iter()
                .filter(|l| !next.contains(l))
                .cloned()
                .collect();
            old.stop().await;
            for label in gone {
                self.resource_metrics.process.remove(&label);
            }
        }
        self.resources = Some(Resources::start(plan, self.resource_metrics.clone()));
    }

    /// The current exposition, as /metrics serves it.
    pub fn metrics_text(&self) -> String {
        telemetry::encode_prometheus(&self.state.registry)
    }

    pub(crate) fn reload_failed(&self) {
        self.metrics.reload_ok.set(0);
    }

    /// Marks not-ready, waits for runs in flight, then stops the server.
    pub async fn shutdown(mut self) {
        self.state.ready.store(false, Ordering::Relaxed);
        self.checks.shutdown().await;
        if let Some(probes) = self.probes.take() {
            probes.stop().await;
        }
        if let Some(r) = self.resources.take() {
            r.stop().await;
        }
        // Last, so the final export carries the drained runs.
        if let Some(o) = self.otlp.take() {
            o.stop().await;
        }
        self.server_stop.cancel();
        let _ = self.server.await;
    }
}

async fn configure_checks(
    checks: &Checks,
    plans: Vec<crate::check::CheckPlan>,
    store: Option<(PathBuf, usize)>,
    token: Option<String>,
) {
    let store = match store {
        // Opening locks, repairs and reads the index: off the async workers.
        Some((dir, keep)) => tokio::task::spawn_blocking(move || Store::open(&dir, keep))
            .await
            .map_err(|e| e.to_string())
            .and_then(|opened| opened)
            .map_err(|e| {
                tracing::error!(error = %e, "result store unavailable; checks run without baselines");
            })
            .ok(),
        None => None,
    };
    checks.configure(plans, store, token);
}

fn start_otlp(
    plan: Option<OtlpPlan>,
    state: &ServerState,
    m: &Arc<OtlpMetrics>,
) -> Option<Exporter> {
    plan.map(|p| Exporter::start(p, state.registry.clone(), m.clone()))
}

/// `sidewatch run`: serves until SIGTERM or SIGINT.
pub async fn run(config: PathBuf, plan: Plan, listen: Option<SocketAddr>) -> io::Result<()> {
    let configured = plan.listen;
    let mut sidecar = Sidecar::start(plan, listen.unwrap_or(configured)).await?;
    tracing::info!(addr = %sidecar.addr, config = %config.display(), "sidewatch running");
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                // A reload can wait (on a store lock another process holds,
                // say); SIGTERM must not.
                let reloading = reload(&mut sidecar, &config, configured, listen.is_some());
                tokio::select! {
                    _ = reloading => {}
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                }
            }
        }
    }
    tracing::info!("draining probes in flight");
    sidecar.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn reload(sidecar: &mut Sidecar, config: &FsPath, listen: SocketAddr, overridden: bool) {
    // Reading and compiling the config (a CA file, say) blocks.
    let path = config.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || Plan::load(&path)).await;
    let Ok(loaded) = loaded else {
        sidecar.reload_failed();
        tracing::error!("loading the configuration panicked; the previous one keeps running");
        return;
    };
    match loaded {
        Ok(plan) => {
            if plan.listen != listen && !overridden {
                tracing::warn!("`listen` changed; it takes effect on restart");
            }
            let n = plan.probes.len();
            sidecar.reload(plan).await;
            tracing::info!(probes = n, "configuration reloaded");
        }
        Err(errors) => {
            sidecar.reload_failed();
            for e in &errors.0 {
                tracing::error!(error = %e, "reload rejected; the previous configuration keeps running");
            }
        }
    }
}
