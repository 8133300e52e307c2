//! `sidewatch check`, `sidewatch baseline` and `sidewatch report`: what a
//! CronJob, a CI job or a release owner runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use prometheus_client::registry::Registry;

use crate::check::baseline::store::{Baseline, Store, StoreError};
use crate::check::execute::{execute, synthetic};
use crate::check::metrics::{CheckFamilies, CheckMetrics, LeakFamilies};
use crate::check::result::{CheckResult, Verdict};
use crate::check::runner::conclude;
use crate::cli::deliver::{self, Delivery};
use crate::cli::exit;
use crate::load::metrics::LoadMetrics;
use crate::plan::{Plan, Tuning};
use crate::report::progress::Live;

#[derive(Debug, Args)]
pub(crate) struct CheckRunArgs {
    /// Config file (YAML).
    #[arg(long, short, env = "SIDEWATCH_CONFIG")]
    pub(crate) config: PathBuf,
    /// The check to run.
    pub(crate) name: String,
    /// Write the full JSON result here (atomically).
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Write the self-contained HTML report here.
    #[arg(long)]
    pub(crate) html: Option<PathBuf>,
    /// Write the Markdown summary here.
    #[arg(long)]
    pub(crate) markdown: Option<PathBuf>,
    /// Serve /metrics (load and check series) here during the run.
    #[arg(long)]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Run share I of N (0-based) of every rate, as a Kubernetes Indexed Job does.
    #[arg(long, value_parser = crate::cli::load::parse_shard)]
    pub(crate) shard: Option<(u32, u32)>,
    /// Multiply every duration of the check by this, to rehearse a long plan
    /// (0.01 runs a 24 h soak in 15 min). Rehearsals are not stored.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) time_scale: f64,
    /// Do not store the result or compare it with the baseline.
    #[arg(long)]
    pub(crate) no_store: bool,
    #[command(flatten)]
    pub(crate) push: PushArgs,
}

/// Where a one-shot run's series go when it ends.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// Push the run's series to this Prometheus Pushgateway at the end
    /// (overrides `push.pushgateway`; group job/check).
    #[arg(long, env = "SIDEWATCH_PUSHGATEWAY")]
    pub(crate) pushgateway: Option<String>,
    /// Exit 4 if the push (or the last OTLP export) failed after its
    /// retries; without it a failed push is only reported and counted.
    #[arg(long)]
    pub(crate) push_required: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BaselineArgs {
    /// Config file (YAML) naming the store.
    #[arg(long, short, env = "SIDEWATCH_CONFIG")]
    pub(crate) config: PathBuf,
    #[command(subcommand)]
    pub(crate) action: BaselineAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BaselineAction {
    /// List stored runs (of one check) and mark each check's baseline.
    List {
        /// Only this check's runs.
        check: Option<String>,
    },
    /// Print a stored run's summary (or `--json` its full result).
    Show {
        /// A run id from `list`.
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// Make a stored run its check's baseline.
    Accept {
        /// A run id from `list`.
        run: String,
    },
    /// Forget a check's baseline; its next passing run becomes the new one.
    Reset {
        /// The check.
        check: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Config file (YAML) naming the store; or give --input.
    #[arg(
        long,
        short,
        env = "SIDEWATCH_CONFIG",
        required_unless_present = "input"
    )]
    pub(crate) config: Option<PathBuf>,
    /// A stored run id.
    #[arg(required_unless_present = "input")]
    pub(crate) run: Option<String>,
    /// Read the result from this JSON file (from `check --json`) instead.
    #[arg(long, conflicts_with_all = ["config", "run"])]
    pub(crate) input: Option<PathBuf>,
    /// Write the HTML report here.
    #[arg(long)]
    pub(crate) html: Option<PathBuf>,
    /// Write the Markdown summary here (`-` for stdout).
    #[arg(long)]
    pub(crate) markdown: Option<PathBuf>,
}

fn load(config: &Path, tuning: Tuning) -> Result<Plan, u8> {
    Plan::load_tuned(config, tuning).map_err(|e| {
        eprintln!("{e}");
        exit::CONFIG
    })
}

/// Opens the config's store for writing, or (`write` false) read-only,
/// which works on a read-only mount. Errors come with their exit code: no
/// `store` section is a config error, a store that cannot be opened a
/// runtime one.
fn open_store(plan: &Plan, write: bool) -> Result<Store, (u8, String)> {
    let (dir, keep) = plan.store.as_ref().ok_or((
        exit::CONFIG,
        "the config has no `store` section".to_string(),
    ))?;
    let store = if write {
        Store::open(dir, *keep)
    } else {
        Store::open_read(dir)
    };
    store.map_err(|e| (exit::ERROR, e))
}

pub async fn run(args: CheckRunArgs) -> u8 {
    if !(args.time_scale > 0.0 && args.time_scale <= 1.0) {
        eprintln!("error: --time-scale must be in (0, 1]");
        return exit::CONFIG;
    }
    let tuning = Tuning {
        shard: args.shard.unwrap_or((0, 1)),
        time_scale: Some((args.name.clone(), args.time_scale)),
        pushgateway: args.push.pushgateway.clone(),
    };
    let mut plan = match load(&args.config, tuning) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(e) = deliver::check_required(&plan, args.push.push_required) {
        eprintln!("{e}");
        return exit::CONFIG;
    }
    let (push, otlp) = (plan.push.take(), plan.otlp.take());
    let names: Vec<String> = plan.checks.iter().map(|c| c.name.clone()).collect();
    let Some(check) = plan.checks.iter().find(|c| c.name == args.name) else {
        eprintln!(
            "error: no check named `{}` (checks: {})",
            args.name,
            names.join(", ")
        );
        return exit::CONFIG;
    };
    let rehearsal = args.time_scale < 1.0;
    let store = if args.no_store || rehearsal || plan.store.is_none() {
        None
    } else {
        match open_store(&plan, true) {
            Ok(s) => Some(s),
            Err((code, e)) => {
                eprintln!("error: {e}");
                return code;
            }
        }
    };
    let mut registry = Registry::with_prefix(crate::telemetry::PREFIX);
    crate::telemetry::register_build_info(&mut registry);
    let load_metrics = Arc::new(LoadMetrics::register(
        registry.sub_registry_with_prefix("load"),
    ));
    let check_metrics = Arc::new(CheckMetrics::new(
        CheckFamilies::register(registry.sub_registry_with_prefix("check")),
        LeakFamilies::register(registry.sub_registry_with_prefix("leak")),
    ));
    let (delivery, stop_server) = match Delivery::serve(args.listen, registry, push, otlp).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let cancel = crate::cli::cancel_on_interrupt();
    eprintln!(
        "check {} ({}), about {}{}",
        check.name,
        check.kind(),
        crate::units::human_duration(check.duration()),
        if rehearsal {
            format!(", rehearsal at time scale {} (not stored)", args.time_scale)
        } else {
            String::new()
        }
    );
    let secs = check.duration().as_secs_f64().ceil() as u32;
    let mut progress = Live::new(&check.name, secs);
    let mut result = execute(check, Some(&load_metrics), &mut progress, cancel).await;
    let not_stored = conclude(&mut result, check, store.as_ref());
    check_metrics.finished(&result);
    if not_stored.is_some() {
        check_metrics.store_failed(&check.name);
    }
    if let Some(s) = stop_server {
        s.cancel();
    }
    print!("{}", crate::report::check::text(&result));
    if let (Some(e), Some(s)) = (&not_stored, &store) {
        eprintln!(
            "error: run {} was not stored in {}: {e}",
            result.id,
            s.dir().display()
        );
    }
    let delivered = delivery
        .finish(&check.name, args.shard, args.push.push_required)
        .await;
    let written = write_reports(
        &result,
        args.json.as_deref(),
        args.html.as_deref(),
        args.markdown.as_deref(),
    )
    .map_err(|e| eprintln!("error: {e}"))
    .is_ok();
    // The verdict is printed either way; a run that was not kept or
    // delivered is sidewatch failing its job, whatever the verdict.
    if not_stored.is_some() || !written || (args.push.push_required && !delivered) {
        return exit::ERROR;
    }
    verdict_code(&result)
}

fn verdict_code(r: &CheckResult) -> u8 {
    match r.verdict {
        Verdict::Pass => exit::OK,
        Verdict::Aborted => exit::ABORTED,
        Verdict::Fail => exit::FAILED,
        Verdict::Error => exit::ERROR,
    }
}

fn write_reports(
    r: &CheckResult,
    json: Option<&Path>,
    html: Option<&Path>,
    markdown: Option<&Path>,
) -> Result<(), String> {
    let write = |p: &Path, body: Vec<u8>| {
        if p == Path::new("-") {
            print!("{}", String::from_utf8_lossy(&body));
            return Ok(());
        }
        crate::fsutil::write_atomic(p, &body)
            .map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    if let Some(p) = json {
        write(p, serde_json::to_vec_pretty(r).expect("serializable"))?;
    }
    if let Some(p) = html {
        write(p, crate::report::html::render(r).into_bytes())?;
    }
    if let Some(p) = markdown {
        write(p, crate::report::check::markdown(r).into_bytes())?;
    }
    Ok(())
}

pub(crate) fn baseline(args: BaselineArgs) -> u8 {
    let plan = match load(&args.config, Tuning::default()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let write = matches!(
        args.action,
        BaselineAction::Accept { .. } | BaselineAction::Reset { .. }
    );
    let store = match open_store(&plan, write) {
        Ok(s) => s,
        Err((code, e)) => {
            eprintln!("error: {e}");
            return code;
        }
    };
    let outcome = match args.action {
        BaselineAction::List { check } => list(&store, check.as_deref()).map_err(StoreError::Io),
        BaselineAction::Show { run, json } => store.get(&run).map(|r| {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r).expect("serializable")
                );
            } else {
                print!("{}", crate::report::check::text(&r));
            }
        }),
        BaselineAction::Accept { run } => store
            .accept(&run)
            .map(|check| println!("{run} is now the baseline of `{check}`")),
        BaselineAction::Reset { check } => store
            .reset(&check)
            .map(|had| {
                if had {
                    println!("`{check}` has no baseline now; its next passing run becomes one");
                } else {
                    println!("`{check}` had no baseline");
                }
            })
            .map_err(StoreError::Io),
    };
    match outcome {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            store_exit(&e)
        }
    }
}

/// An unknown run is a failed request (1); a store that cannot be read or
/// written means sidewatch could not do its job (4).
fn store_exit(e: &StoreError) -> u8 {
    match e {
        StoreError::NotFound(_) => exit::FAILED,
        StoreError::Io(_) => exit::ERROR,
    }
}

/// Prints the runs, newest first, marking each check's baseline; warns
/// about a baseline that cannot be read.
fn list(store: &Store, check: Option<&str>) -> Result<(), String> {
    let baselines = store.baselines()?;
    let runs = store.list(check)?;
    for c in baselines
        .keys()
        .filter(|c| check.is_none_or(|only| only == *c))
    {
        if let Err(e) = store.baseline(c) {
            eprintln!("warning: {e}");
        }
    }
    let rows: Vec<Vec<String>> = runs
        .into_iter()
        .rev()
        .map(|e| {
            let base = baselines.get(&e.check) == Some(&Baseline::Run(e.id.clone()));
            vec![
                e.id,
                e.check,
                e.kind.to_string(),
                e.verdict.to_string(),
                if base {
                    "baseline".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    print!(
        "{}",
        crate::report::table::render(&["run", "check", "kind", "verdict", ""], &rows)
    );
    Ok(())
}

pub(crate) fn report(args: ReportArgs) -> u8 {
    let result = match (&args.input, &args.config, &args.run) {
        (Some(p), _, _) => std::fs::read(p)
            .map_err(|e| format!("cannot read {}: {e}", p.display()))
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display())))
            .map_err(|e| (exit::FAILED, e)),
        (None, Some(c), Some(run)) => match load(c, Tuning::default()) {
            Ok(plan) => open_store(&plan, false)
                .and_then(|store| store.get(run).map_err(|e| (store_exit(&e), e.to_string()))),
            Err(code) => return code,
        },
        _ => Err((
            exit::FAILED,
            "give --input FILE, or --config FILE RUN".into(),
        )),
    };
    let result: CheckResult = match result {
        Ok(r) => r,
        Err((code, e)) => {
            eprintln!("error: {e}");
            return code;
        }
    };
    if args.html.is_none() && args.markdown.is_none() {
        print!("{}", crate::report::check::text(&result));
        return exit::OK;
    }
    match write_reports(
        &result,
        None,
        args.html.as_deref(),
        args.markdown.as_deref(),
    ) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            exit::ERROR
        }
    }
}

/// The crash test's writer: saves results `start..start + count` into
/// `dir` as fast as it can, so a test can kill it mid-write. Every 7th
/// becomes its check's baseline.
pub(crate) fn store_writer(dir: &Path, start: u32, count: u32) -> u8 {
    let store = match Store::open(dir, 5) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    for i in start..start.saturating_add(count) {
        let r = synthetic(&format!("c{}", i % 3), i);
        if let Err(e) = store.save(&r, i % 7 == 0) {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    }
    exit::OK
}
