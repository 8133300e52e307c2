//! What a one-shot run (`sidewatch check`, `sidewatch load`) sends when it
//! ends: its series to the Pushgateway (`push:`, `--pushgateway`) and a last
//! OTLP snapshot (`otlp:`), each retried for a bounded time. A failure is
//! printed and counted; it fails the run (exit 4) only with
//! `--push-required`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::otlp::{Exporter, OtlpMetrics, OtlpPlan};
use crate::plan::Plan;
use crate::push::{deliver, PushMetrics, PushPlan};

/// The delivery families, registered before the registry is shared.
pub(crate) struct Families {
    push: PushMetrics,
    otlp: Arc<OtlpMetrics>,
}

fn register(registry: &mut Registry) -> Families {
    let push = PushMetrics::register(registry.sub_registry_with_prefix("push"));
    push.init();
    Families {
        push,
        otlp: Arc::new(OtlpMetrics::register(
            registry.sub_registry_with_prefix("otlp"),
        )),
    }
}

/// `--push-required` with nothing to push to is a usage error.
pub(crate) fn check_required(plan: &Plan, required: bool) -> Result<(), String> {
    if required && plan.push.is_none() && plan.otlp.is_none() {
        return Err(
            "error: --push-required needs --pushgateway, a `push:` section or an `otlp:` section"
                .into(),
        );
    }
    Ok(())
}

/// Delivery in progress: the OTLP exporter runs during the run too.
pub(crate) struct Delivery {
    registry: Arc<Registry>,
    push: Option<PushPlan>,
    push_metrics: PushMetrics,
    otlp: Option<Exporter>,
}

impl Delivery {
    /// The start every one-shot run shares: registers the delivery families,
    /// serves the run's registry on `--listen` (if given; cancel the token to
    /// stop) and starts delivery. A taken `--listen` is printed and is exit 4.
    pub(crate) async fn serve(
        listen: Option<SocketAddr>,
        mut registry: Registry,
        push: Option<PushPlan>,
        otlp: Option<OtlpPlan>,
    ) -> Result<(Delivery, Option<CancellationToken>), u8> {
        let families = register(&mut registry);
        match crate::server::serve_run(listen, registry).await {
            Ok((registry, stop)) => Ok((Delivery::start(registry, families, push, otlp), stop)),
            Err(e) => {
                eprintln!("error: {e}");
                Err(crate::cli::exit::ERROR)
            }
        }
    }

    fn start(
        registry: Arc<Registry>,
        families: Families,
        push: Option<PushPlan>,
        otlp: Option<OtlpPlan>,
    ) -> Delivery {
        // The last snapshot gets as long as a push may retry.
        let final_flush = push
            .as_ref()
            .map_or(Duration::from_secs(30), PushPlan::retry_for);
        let otlp =
            otlp.map(|p| Exporter::start_with(p, registry.clone(), families.otlp, final_flush));
        Delivery {
            registry,
            push,
            push_metrics: families.push,
            otlp,
        }
    }

    /// Pushes the run's series as `check`'s group (and the shard's, with
    /// `--shard I/N`) and flushes OTLP. True if everything configured was
    /// delivered.
    pub(crate) async fn finish(
        self,
        check: &str,
        shard: Option<(u32, u32)>,
        required: bool,
    ) -> bool {
        // Shards of one run are groups of their own, or they would replace
        // each other's series.
        let extra = match shard {
            Some((i, n)) if n > 1 => vec![("shard", i.to_string())],
            _ => Vec::new(),
        };
        let level = if required { "error" } else { "warning" };
        let mut ok = true;
        if let Some(plan) = &self.push {
            let gw = plan.display();
            match deliver(plan, check, &extra, &self.registry, &self.push_metrics).await {
                Ok(_) => eprintln!("pushed to {gw} (group check={check})"),
                Err((reason, attempts)) => {
                    ok = false;
                    eprintln!(
                        "{level}: could not push to {gw}: {} ({attempts} attempts)",
                        reason.as_str()
                    );
                }
            }
        }
        if let Some(exporter) = self.otlp {
            if !exporter.stop().await {
                ok = false;
                eprintln!(
                    "{level}: the last OTLP export was not delivered \
                     (sidewatch_otlp_export_failures_total counts why)"
                );
            }
        }
        ok
    }
}
