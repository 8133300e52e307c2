//! `sidewatch load`: an ad hoc run from flags, or a configured check's load
//! section, with live progress, a summary table, a JSON result, and exit
//! codes 0 pass, 1 threshold failed, 2 usage or config error, 3 aborted,
//! 4 sidewatch could not do its job ([`crate::cli::exit`]).
//!
//! Flags are turned into a config document and compiled by the same code as
//! a configured check, so both are validated identically.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::check::result::ScenarioKind;
use crate::cli::check::PushArgs;
use crate::cli::deliver::{self, Delivery};
use crate::cli::exit;
use crate::config::{ConfigErrors, Document};
use crate::load::arrival::Profile;
use crate::load::metrics::LoadMetrics;
use crate::load::{LoadPlan, Verdict, Workload};
use crate::otlp::OtlpPlan;
use crate::plan::{Plan, Tuning};
use crate::push::PushPlan;
use crate::report::progress::Live;

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Run the load section of CHECK from this config file.
    #[arg(long, short, requires = "check", conflicts_with = "url")]
    pub(crate) config: Option<PathBuf>,
    /// The check to run, with --config.
    pub(crate) check: Option<String>,
    /// Target URL of an ad hoc run.
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Request method.
    #[arg(long, default_value = "GET")]
    pub(crate) method: String,
    /// Request header `Name: value`; repeatable.
    #[arg(short = 'H', long = "header")]
    pub(crate) headers: Vec<String>,
    /// Request body.
    #[arg(long)]
    pub(crate) body: Option<String>,
    /// Accepted statuses, comma separated (`200,2xx`). Default 2xx.
    #[arg(long, value_delimiter = ',')]
    pub(crate) expect_status: Vec<String>,
    /// Open model: requests start at this rate whatever the target does (`2000/s`).
    #[arg(long, conflicts_with = "concurrency")]
    pub(crate) rate: Option<String>,
    /// Closed model: this many users, each sending when its last request ends.
    #[arg(long)]
    pub(crate) concurrency: Option<u32>,
    /// Linear ramps, `1m:100/s,30s:1000/s,1m:100/s` (or users: `30s:50,1m:50`);
    /// --rate/--concurrency is then the start value.
    #[arg(long, conflicts_with = "duration")]
    pub(crate) stages: Option<String>,
    /// Length of a constant run (`1m`).
    #[arg(long, value_parser = crate::units::parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Most connections; a request that finds none free is counted as dropped.
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_connections: usize,
    /// Bound on one request.
    #[arg(long, value_parser = crate::units::parse_duration, default_value = "10s")]
    pub(crate) timeout: Duration,
    /// Engine threads (one core each), each with its share of the rate.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// A condition the run must meet, e.g. `p95 < 50ms`; repeatable.
    #[arg(long = "threshold")]
    pub(crate) thresholds: Vec<String>,
    /// A condition that stops the run, e.g. `error_rate > 5% for 10s`; repeatable.
    #[arg(long = "abort")]
    pub(crate) aborts: Vec<String>,
    /// Write the JSON result here (atomically).
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Serve /metrics (with the sidewatch_load_* series) here during the run.
    #[arg(long)]
    pub(crate) listen: Option<SocketAddr>,
    /// A host load may target besides loopback; repeatable.
    #[arg(long = "allow-host")]
    pub(crate) allow_hosts: Vec<String>,
    /// Refuse profiles faster than this (per sidewatch, after --shard).
    #[arg(long, default_value = "20000/s")]
    pub(crate) max_rate: String,
    /// Run share I of N (0-based) of the rate, as a Kubernetes Indexed Job does.
    #[arg(long, value_parser = parse_shard)]
    pub(crate) shard: Option<(u32, u32)>,
    /// The `check` label of an ad hoc run.
    #[arg(long, default_value = "adhoc")]
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) push: PushArgs,
}

/// What `plan` compiles: the run, and where its series go at the end.
struct Compiled {
    workload: Workload,
    profile: Profile,
    push: Option<PushPlan>,
    otlp: Option<OtlpPlan>,
}

pub(crate) fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let (i, n) = s.split_once('/').ok_or("use INDEX/COUNT, e.g. 0/4")?;
    let (i, n): (u32, u32) = (
        i.parse().map_err(|_| "bad index")?,
        n.parse().map_err(|_| "bad count")?,
    );
    if n == 0 || i >= n {
        return Err(format!("{i}/{n}: the index must be below the count"));
    }
    Ok((i, n))
}

pub async fn run(args: LoadArgs) -> u8 {
    let Compiled {
        workload,
        profile,
        push,
        otlp,
    } = match plan(&args) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("{msg}");
            return exit::CONFIG;
        }
    };
    let mut registry = Registry::with_prefix(crate::telemetry::PREFIX);
    crate::telemetry::register_build_info(&mut registry);
    let metrics = Arc::new(LoadMetrics::register(
        registry.sub_registry_with_prefix("load"),
    ));
    let (delivery, stop_server) = match Delivery::serve(args.listen, registry, push, otlp).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let cancel = crate::cli::cancel_on_interrupt();
    eprintln!("load  {}  {}", workload.check, workload.describe(&profile));
    let secs = profile.duration().as_secs_f64().ceil() as u32;
    let mut progress = Live::new(&workload.check, secs);
    let result = crate::load::run(&workload, &profile, Some(&metrics), &mut progress, cancel).await;
    if let Some(stop) = stop_server {
        stop.cancel();
    }
    print!("{}", crate::report::summary::render(&result));
    let delivered = delivery
        .finish(&workload.check, args.shard, args.push.push_required)
        .await;
    if let Some(path) = &args.json {
        let body = serde_json::to_vec_pretty(&result).expect("serializable");
        if let Err(e) = crate::fsutil::write_atomic(path, &body) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return exit::ERROR;
        }
    }
    if args.push.push_required && !delivered {
        return exit::ERROR;
    }
    match result.verdict {
        Verdict::Pass => exit::OK,
        Verdict::Fail => exit::FAILED,
        Verdict::Aborted => exit::ABORTED,
        Verdict::Error => exit::ERROR,
    }
}

fn plan(args: &LoadArgs) -> Result<Compiled, String> {
    let tuning = Tuning {
        shard: args.shard.unwrap_or((0, 1)),
        pushgateway: args.push.pushgateway.clone(),
        ..Tuning::default()
    };
    let (mut plan, name) =
        match (&args.config, &args.check, &args.url) {
            (Some(file), Some(check), None) => (
                Plan::load_tuned(file, tuning).map_err(|e| e.to_string())?,
                check.clone(),
            ),
            (None, None, Some(_)) => (adhoc(args, tuning)?, args.name.clone()),
            _ => return Err(
                "error: give --url URL (ad hoc) or --config FILE CHECK; see sidewatch load --help"
                    .into(),
            ),
        };
    deliver::check_required(&plan, args.push.push_required)?;
    let (push, otlp) = (plan.push.take(), plan.otlp.take());
    let names: Vec<String> = plan.checks.iter().map(|c| c.name.clone()).collect();
    let check = plan
        .checks
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            format!(
                "error: no check named `{name}` (checks: {})",
                names.join(", ")
            )
        })?;
    match (check.kind(), check.load) {
        (
            ScenarioKind::Load,
            Some(LoadPlan {
                workload,
                profile: Some(profile),
                ..
            }),
        ) => Ok(Compiled {
            workload,
            profile,
            push,
            otlp,
        }),
        (kind, _) => Err(format!(
            "error: `{name}` is a {kind} check; run it with `sidewatch check --config FILE {name}`"
        )),
    }
}

/// Flags as a config document, compiled like a configured check.
fn adhoc(a: &LoadArgs, tuning: Tuning) -> Result<Plan, String> {
    let mut headers = serde_json::Map::new();
    for h in &a.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| format!("error: -H `{h}`: use `Name: value`"))?;
        headers.insert(k.trim().to_string(), json!(v.trim()));
    }
    let mut http = json!({"url": a.url, "method": a.method, "headers": headers, "expect": {"status": a.expect_status}});
    if let Some(b) = &a.body {
        http["body"] = json!(b);
    }
    let mut load = json!({
        "max_connections": a.max_connections,
        "timeout": format!("{}ms", a.timeout.as_millis()),
        "threads": a.threads,
        "mix": [{"name": "request", "http": http}],
    });
    for (key, value) in [
        ("rate", json!(a.rate)),
        ("concurrency", json!(a.concurrency)),
        ("stages", json!(a.stages)),
    ] {
        if !value.is_null() {
            load[key] = value;
        }
    }
    if let Some(d) = a.duration {
        load["duration"] = json!(format!("{}ms", d.as_millis()));
    }
    let doc = json!({
        "checks": [{"name": a.name, "load": load, "thresholds": a.thresholds, "abort": a.aborts}],
        "limits": {"max_rate": a.max_rate, "allow_hosts": a.allow_hosts},
    });
    // JSON is YAML; `${VAR}` in flags is deliberately not special here.
    let text = doc.to_string().replace("${", "$${");
    let document = Document::parse("<flags>", &text, &|_| None).map_err(|e| flags(&e))?;
    Plan::build_document(document, tuning).map_err(|e| flags(&e))
}

/// Names the flag behind each error of an ad hoc run.
fn flags(errors: &ConfigErrors) -> String {
    let table = [
        ("limits.max_rate", "--max-rate"),
        ("load.mix[0].http.url", "--url"),
        ("load.mix[0].http.method", "--method"),
        ("load.mix[0].http.headers", "-H"),
        ("load.mix[0].http.expect.status", "--expect-status"),
        ("load.mix[0].http", "--url"),
        ("load.rate", "--rate"),
        ("load.concurrency", "--concurrency"),
        ("load.stages", "--stages"),
        ("load.duration", "--duration"),
        ("load.threads", "--threads"),
        ("load.max_connections", "--max-connections"),
        ("thresholds", "--threshold"),
        ("abort", "--abort"),
        ("push.pushgateway", "--pushgateway"),
        ("load", "the load flags"),
    ];
    errors
        .0
        .iter()
        .map(|e| {
            let path = e.path.to_string();
            let flag = table
                .iter()
                .find(|(p, _)| path.contains(p))
                .map_or(path.as_str(), |(_, f)| f);
            format!("error: {flag}: {}", e.message)
        })
        .collect::<Vec<_>>()
        .join("\n")
}
