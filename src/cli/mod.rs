//! Command-line interface: parsing, logging set-up and exit codes.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::plan::Plan;

pub(crate) mod check;
mod deliver;
pub mod demo;
pub(crate) mod load;
pub(crate) mod probe;

/// Exit codes, as documented in the README (and `--help`); every command
/// uses these and only these.
pub(crate) mod exit {
    /// Success: the sidecar stopped cleanly, the config is valid, every
    /// probe passed, the check or load run passed.
    pub(crate) const OK: u8 = 0;
    /// A verdict: a probe, threshold or finding failed, or a metric
    /// regressed against the baseline.
    pub(crate) const FAILED: u8 = 1;
    /// Usage or configuration error; nothing was started.
    pub(crate) const CONFIG: u8 = 2;
    /// A load run or check stopped by an abort rule, its time limit or Ctrl-C.
    pub(crate) const ABORTED: u8 = 3;
    /// sidewatch could not do its job: the listen port is taken, the store
    /// or a report file cannot be written, a `--push-required` push failed,
    /// an internal error. Wins over 1 and 3: the verdict was printed but
    /// not kept or delivered.
    pub(crate) const ERROR: u8 = 4;
    /// The table, for `--help` and the README.
    pub(crate) const TABLE: &str = "\
Exit codes: 0 pass; 1 a probe, threshold or finding failed or a metric
regressed; 2 usage or config error; 3 aborted (abort rule, max_duration,
Ctrl-C); 4 sidewatch could not do its job (listen port taken, store or
report not written, --push-required push failed, a load thread died,
internal error).";
}

const EXAMPLES: &str = "\
Examples:
  sidewatch demo                                 # see everything on an embedded target
  sidewatch check-config sidewatch.yaml          # validate; exit 2 on errors
  sidewatch probe --config sidewatch.yaml        # run each probe once, print a table
  sidewatch probe --config sidewatch.yaml api --json
  sidewatch run --config sidewatch.yaml --listen 0.0.0.0:9479
  sidewatch load --url http://127.0.0.1:8080/api --rate 2000/s --duration 1m \
      --threshold 'p95 < 50ms' --abort 'error_rate > 5% for 10s'

Docs: docs/config.md (every field), docs/metrics.md (every series).";

/// sidewatch: a sidecar that probes the service next to it and exports
/// Prometheus metrics.
///
/// It runs HTTP(S) and TCP probes on an interval, with measured phase timings
/// (dns, connect, tls, first_byte, transfer), bounded failure reasons and TLS
/// certificate expiry, and serves them on /metrics.
#[derive(Debug, Parser)]
#[command(name = "sidewatch", version, after_help = format!("{EXAMPLES}\n\n{}", exit::TABLE))]
pub(crate) struct Cli {
    /// Log level (error, warn, info, debug, trace). RUST_LOG, if set, wins.
    /// Default `info`; `error` for `demo` on a terminal, whose status lines
    /// already show every failure.
    #[arg(long, global = true, env = "SIDEWATCH_LOG_LEVEL")]
    pub(crate) log_level: Option<String>,
    /// Log line format, on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the sidecar: probe on schedule and serve /metrics, /healthz, /readyz.
    ///
    /// SIGHUP reloads the config file; a bad file is rejected and the running
    /// config stays (see sidewatch_config_last_reload_successful). SIGTERM or
    /// SIGINT stops scheduling, lets runs in flight finish, and exits 0.
    Run(RunArgs),
    /// Start an embedded demo target on loopback and probe it, with live status.
    Demo(DemoArgs),
    /// Run each probe once and print the results; exit 1 if any failed.
    Probe(ProbeArgs),
    /// Validate a config file; print FILE:LINE:COL: field: message per error.
    CheckConfig(CheckArgs),
    /// Drive load: open model (--rate) or closed model (--concurrency).
    ///
    /// Latency is measured from each request's intended start time, so a
    /// stalled target shows up in the percentiles instead of slowing the
    /// schedule (no coordinated omission); service time from the actual send
    /// is reported beside it. Exit codes: 0 pass, 1 a threshold failed, 2
    /// usage or config error, 3 aborted by a rule or Ctrl-C, 4 sidewatch
    /// could not do its job (--listen taken, --json not written,
    /// --push-required and the push failed).
    ///
    /// Examples:
    ///   sidewatch load --url http://127.0.0.1:8080/api --rate 2000/s --duration 1m
    ///   sidewatch load --url http://127.0.0.1:8080/api --concurrency 50 --duration 30s
    ///   sidewatch load --url http://127.0.0.1:8080/api --rate 100/s --stages 1m:100/s,30s:1000/s,1m:100/s
    ///       --threshold 'p95 < 50ms' --threshold 'error_rate < 1%' --abort 'error_rate > 5% for 10s'
    ///   sidewatch load --config sidewatch.yaml nightly-soak --json result.json
    #[command(verbatim_doc_comment)]
    Load(Box<load::LoadArgs>),
    /// Run one check in the foreground: progress, a summary, reports.
    ///
    /// Runs the named check's scenario (soak, spike, breakpoint, curve, leak,
    /// or plain load), watches the service's memory, compares the result with
    /// the check's accepted baseline and stores it (see `store` and
    /// `baseline` in the config). This is what a CronJob or CI step runs.
    /// At the end the run's series are pushed (`push:`, --pushgateway) and
    /// a last OTLP snapshot is sent (`otlp:`).
    /// Exit codes: 0 pass, 1 a threshold or finding failed, a metric
    /// regressed or the baseline could not be read, 2 config error, 3
    /// aborted (abort rule, max_duration, Ctrl-C), 4 sidewatch could not do
    /// its job: the result could not be stored (full or read-only disk: the
    /// error names the store and the OS error), a report file not written,
    /// --listen taken, or --push-required and the push failed.
    ///
    /// Examples:
    ///   sidewatch check --config sidewatch.yaml nightly-soak --html soak.html
    ///   sidewatch check --config sidewatch.yaml nightly-soak --time-scale 0.01
    ///   sidewatch check --config sidewatch.yaml big-spike --shard 2/8
    #[command(verbatim_doc_comment)]
    Check(Box<check::CheckRunArgs>),
    /// List stored check runs and manage each check's baseline.
    ///
    /// `list` and `show` only read the store (a read-only mount is fine).
    /// Exit codes: 0 ok, 1 unknown run, 2 config error, 4 a store that
    /// cannot be read or written.
    Baseline(check::BaselineArgs),
    /// Render a stored (or saved JSON) check result as HTML or Markdown.
    ///
    /// Only reads the store (a read-only mount is fine). Exit codes: 0 ok,
    /// 1 unknown run or unreadable file, 2 config error, 4 a store that
    /// cannot be opened.
    Report(check::ReportArgs),
    /// The store's crash-test writer.
    #[command(hide = true)]
    StoreWriter {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        count: u32,
        /// The number of the first result written (each round of the
        /// crash test starts where the last one might have stopped).
        #[arg(long, default_value_t = 0)]
        start: u32,
    },
    /// Print the config file's JSON Schema (for editors; the Helm chart's
    /// values.schema.json embeds it under `config`).
    #[command(hide = true)]
    Schema,
    /// The demo's target service, run by `demo` as its own process.
    #[command(hide = true)]
    DemoTarget {
        /// Where to write the target's CA certificate.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Config file (YAML).
    #[arg(long, short, env = "SIDEWATCH_CONFIG")]
    pub(crate) config: PathBuf,
    /// Listen address, overriding `listen` in the config.
    #[arg(long)]
    pub(crate) listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Listen address for /metrics.
    #[arg(long, default_value = "127.0.0.1:9479")]
    pub(crate) listen: SocketAddr,
    /// Stop after this long (e.g. 30s) instead of at Ctrl-C.
    #[arg(long, value_parser = crate::units::parse_duration)]
    pub(crate) duration: Option<Duration>,
}

#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// Config file (YAML).
    #[arg(long, short, env = "SIDEWATCH_CONFIG")]
    pub(crate) config: PathBuf,
    /// Run only this probe.
    pub(crate) name: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Config file (YAML).
    pub(crate) file: PathBuf,
}

/// A token cancelled at the first Ctrl-C (SIGINT) or SIGTERM, for
/// foreground runs. SIGTERM is how Kubernetes stops a Job's pod, and as
/// PID 1 in the image a signal without a handler would be ignored: either
/// way the run ends as aborted, is stored and pushed, and exits 3.
pub(crate) fn cancel_on_interrupt() -> tokio_util::sync::CancellationToken {
    use tokio::signal::unix::{signal, SignalKind};
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    let term = signal(SignalKind::terminate());
    tokio::spawn(async move {
        let term = async {
            match term {
                Ok(mut s) => s.recv().await,
                Err(_) => std::future::pending().await,
            }
        };
        let int = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = int => {}
            _ = term => {}
        }
        on_signal.cancel();
    });
    cancel
}

/// Parses arguments, runs the command, and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    // tokio defaults to one worker per host core, which in a pod on a large
    // node means dozens of threads for a sidecar that mostly waits.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    // A panic on the main task is an internal error (exit 4), not Rust's 101;
    // the panic message is already on stderr. Probe tasks contain their own.
    let run = std::panic::AssertUnwindSafe(|| runtime.block_on(dispatch(cli.command)));
    let code = std::panic::catch_unwind(run).unwrap_or(exit::ERROR);
    // A blocking task that is stuck (on a store lock another process
    // holds, say) must not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}

async fn dispatch(command: Command) -> u8 {
    match command {
        Command::Run(args) => {
            let Some(plan) = load(&args.config) else {
                return exit::CONFIG;
            };
            match crate::app::run(args.config, plan, args.listen).await {
                Ok(()) => exit::OK,
                Err(e) => {
                    eprintln!("error: {e}");
                    exit::ERROR
                }
            }
        }
        Command::Demo(args) => demo::run(args.listen, args.duration).await,
        Command::DemoTarget { dir } => demo::serve_target(&dir).await,
        Command::Probe(args) => {
            let Some(plan) = load(&args.config) else {
                return exit::CONFIG;
            };
            probe::run_once(plan, args.name.as_deref(), args.json).await
        }
        Command::Load(args) => load::run(*args).await,
        Command::Check(args) => check::run(*args).await,
        Command::Baseline(args) => check::baseline(args),
        Command::Report(args) => check::report(args),
        Command::StoreWriter { dir, count, start } => check::store_writer(&dir, start, count),
        Command::Schema => {
            println!("{:#}", crate::config::json_schema());
            exit::OK
        }
        Command::CheckConfig(args) => match load(&args.file) {
            Some(plan) => {
                println!("{}: ok ({} probes)", args.file.display(), plan.probes.len());
                exit::OK
            }
            None => exit::CONFIG,
        },
    }
}

/// Loads and validates a config, printing every error to stderr.
fn load(path: &std::path::Path) -> Option<Plan> {
    match Plan::load(path) {
        Ok(plan) => Some(plan),
        Err(errors) => {
            eprintln!("{errors}");
            None
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let live_demo = matches!(cli.command, Command::Demo(_)) && std::io::stdout().is_terminal();
    let level = cli
        .log_level
        .as_deref()
        .unwrap_or(if live_demo { "error" } else { "info" });
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
