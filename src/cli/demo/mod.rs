//! `sidewatch demo`: an embedded target on loopback, a generated config that
//! probes it, and the real sidecar serving /metrics, with a live status line
//! per probe.

pub mod certs;
pub(crate) mod target;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::app::Sidecar;
use crate::cli::exit;
use crate::load::metrics::LoadMetrics;
use crate::plan::Plan;
use crate::scheduler::ProbeStatus;
use crate::telemetry::find_sample;
use crate::units::human_duration;

pub async fn run(listen: SocketAddr, duration: Option<Duration>) -> u8 {
    match demo(listen, duration).await {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            exit::ERROR
        }
    }
}

async fn demo(listen: SocketAddr, duration: Option<Duration>) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("sidewatch-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = demo_in(&dir, listen, duration).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn demo_in(dir: &Path, listen: SocketAddr, duration: Option<Duration>) -> Result<(), String> {
    let (mut child, addrs) = spawn_target(dir).await?;
    let pid = child.id().ok_or("the demo target exited")?;
    std::fs::write(dir.join("target.pid"), pid.to_string()).map_err(|e| e.to_string())?;
    let config = dir.join("demo.yaml");
    std::fs::write(&config, demo_config(&addrs, dir, closed_port()?)).map_err(|e| e.to_string())?;
    // The generated file goes through the same loader as a user's.
    let mut plan = Plan::load(&config).map_err(|e| format!("demo config: {e}"))?;
    let (workload, profile) = plan
        .checks
        .pop()
        .and_then(|c| c.load)
        .and_then(|l| l.profile.map(|p| (l.workload, p)))
        .ok_or("the demo config has a load check")?;
    let sidecar = Sidecar::start(plan, listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e} (try --listen 127.0.0.1:0)"))?;
    banner(&addrs, &config, pid, sidecar.addr);
    let load_line = Arc::new(Mutex::new(format!(
        "▪ load         {} starts in 3s",
        workload.describe(&profile)
    )));
    let load = tokio::spawn(demo_load(
        workload,
        profile,
        sidecar.load_metrics.clone(),
        load_line.clone(),
    ));
    watch(&sidecar, duration, &load_line).await;
    load.abort();
    sidecar.shutdown().await;
    let _ = child.kill().await;
    Ok(())
}

/// Runs the demo's load check once, a few seconds in, and keeps a one-line
/// result for the status display; its series are on the demo's /metrics.
async fn demo_load(
    workload: crate::load::Workload,
    profile: crate::load::arrival::Profile,
    metrics: Arc<LoadMetrics>,
    line: Arc<Mutex<String>>,
) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    *line.lock().expect("line lock") =
        format!("▪ load         {} running", workload.describe(&profile));
    let mut quiet = crate::load::Quiet;
    let r = crate::load::run(
        &workload,
        &profile,
        Some(&metrics),
        &mut quiet,
        Default::default(),
    )
    .await;
    let failed: Vec<&str> = r
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| t.expr.as_str())
        .collect();
    *line.lock().expect("line lock") = format!(
        "▪ load         {}  {:.0}/s  p95 {}  errors {}  dropped {}{}",
        r.verdict.as_str().to_uppercase(),
        r.achieved_rate,
        human_duration(Duration::from_secs_f64(r.latency_seconds.p95)),
        r.errors,
        r.dropped,
        if failed.is_empty() {
            String::new()
        } else {
            format!("  failed: {}", failed.join(", "))
        }
    );
}

/// Addresses of the demo target's servers.
struct Addrs {
    http: SocketAddr,
    https: SocketAddr,
    tcp: SocketAddr,
}

/// Starts the target as its own process (`sidewatch demo-target`), so the
/// demo samples a real service process, and reads its addresses.
async fn spawn_target(dir: &Path) -> Result<(tokio::process::Child, Addrs), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(exe)
        .arg("demo-target")
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("demo target: {e}"))?;
    let stdout = child.stdout.take().ok_or("demo target has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    let addr = |i: usize| -> Result<SocketAddr, String> {
        line.split_whitespace()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("demo target said `{}`", line.trim()))
    };
    let addrs = Addrs {
        http: addr(0)?,
        https: addr(1)?,
        tcp: addr(2)?,
    };
    Ok((child, addrs))
}

/// `sidewatch demo-target`: serves until its standard input closes, which
/// happens when the demo exits, however it exits.
pub(crate) async fn serve_target(dir: &Path) -> u8 {
    let pki = certs::issue(&["localhost"], certs::Validity::Current);
    let started = async {
        std::fs::write(dir.join("ca.pem"), &pki.ca_pem)?;
        target::start(&pki).await
    };
    let t = match started.await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("demo target: {e}");
            return exit::ERROR;
        }
    };
    println!("{} {} {}", t.http, t.https, t.tcp);
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    exit::OK
}

/// A loopback port with nothing listening, to show a failing probe.
fn closed_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn demo_config(t: &Addrs, dir: &Path, closed: u16) -> String {
    format!(
        r#"# Generated by `sidewatch demo`. Every field is described in docs/config.md.
listen: 127.0.0.1:9479
defaults: {{ interval: 2s, timeout: 1s }}
service:
  processes:
    - {{ label: demo-target, pid_file: "{pid}" }}
resources: {{ interval: 1s }}
probes:
  - name: demo-health
    http:
      url: http://{http}/health
      expect: {{ status: [200], body_regex: "^ok" }}
  - name: demo-api
    interval: 1s
    http:
      url: http://{http}/api/price?symbol=AAPL
      expect:
        json: [{{ path: status, equals: ok }}]
        max_latency: 50ms
  - name: demo-slow
    http:
      url: http://{http}/api/slow
      expect: {{ max_latency: 100ms }}
  - name: demo-flaky
    interval: 1s
    http:
      url: http://{http}/api/flaky
      expect: {{ status: [200] }}
  - name: demo-tls
    interval: 5s
    http:
      url: https://localhost:{https_port}/health
      tls: {{ ca_file: "{ca}" }}
  - name: demo-tcp
    tcp: {{ address: "{tcp}", send: "PING\\r\\n", expect: "^\\+PONG" }}
  - name: demo-down
    interval: 5s
    tcp: {{ address: "127.0.0.1:{closed}" }}
checks:
  - name: demo-load
    load:
      rate: 200/s
      duration: 10s
      mix:
        - {{ name: price, weight: 80, http: {{ url: "http://{http}/api/price?symbol=AAPL" }} }}
        - {{ name: health, weight: 20, http: {{ url: "http://{http}/health" }} }}
    thresholds: ["p95 < 50ms", "error_rate < 1%"]
"#,
        http = t.http,
        https_port = t.https.port(),
        tcp = t.tcp,
        ca = dir.join("ca.pem").display(),
        pid = dir.join("target.pid").display(),
    )
}

fn banner(t: &Addrs, config: &Path, pid: u32, addr: SocketAddr) {
    println!("sidewatch demo");
    println!(
        "  target   http://{}  https://localhost:{}  tcp {}",
        t.http,
        t.https.port(),
        t.tcp
    );
    println!("  service  demo-target, pid {pid}, sampled as process=\"demo-target\"");
    println!("  config   {}", config.display());
    println!("  metrics  http://{addr}/metrics");
    println!("  status   http://{addr}/");
    println!("Ctrl-C to stop.\n");
}

async fn watch(sidecar: &Sidecar, duration: Option<Duration>, load_line: &Mutex<String>) {
    let tty = std::io::stdout().is_terminal();
    let every = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let deadline = duration.map(|d| Instant::now() + d);
    let mut drawn = 0;
    let mut cpu = CpuRates::default();
    loop {
        let stop = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = stop => break,
            _ = tokio::time::sleep(every) => {}
        }
        let mut lines = status_lines(&sidecar.outcomes.board.snapshot());
        let text = sidecar.metrics_text();
        lines.extend(["demo-target", "sidewatch"].map(|p| resource_line(&text, p, &mut cpu)));
        lines.push(load_line.lock().expect("line lock").clone());
        let mut out = std::io::stdout().lock();
        if tty && drawn > 0 {
            let _ = write!(out, "\x1b[{drawn}A");
        }
        for l in &lines {
            let _ = writeln!(out, "{}{l}", if tty { "\x1b[2K" } else { "" });
        }
        if !tty {
            let _ = writeln!(out);
        }
        let _ = out.flush();
        drawn = lines.len();
    }
}

/// CPU seconds seen at the previous status update, per process group.
#[derive(Default)]
struct CpuRates(std::collections::HashMap<String, (f64, Instant)>);

/// `▪ demo-target  rss 9.1MB  cpu 0.4%  fds 12  threads 3`, from /metrics.
fn resource_line(text: &str, process: &str, cpu: &mut CpuRates) -> String {
    let get = |name: &str| find_sample(text, name, &[("process", process)]);
    let seconds: f64 = ["user", "system"]
        .iter()
        .filter_map(|m| {
            find_sample(
                text,
                "sidewatch_process_cpu_seconds_total",
                &[("process", process), ("mode", m)],
            )
        })
        .sum();
    let now = Instant::now();
    let rate = cpu
        .0
        .insert(process.to_string(), (seconds, now))
        .map(|(s, t)| (seconds - s) / now.duration_since(t).as_secs_f64().max(1e-3) * 100.0);
    let show = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    format!(
        "▪ {process:<12} rss {:>8}  cpu {:>6}  fds {:>3}  threads {:>2}",
        show(
            get("sidewatch_process_resident_memory_bytes"),
            &|b| format!("{:.1}MB", b / 1e6)
        ),
        show(rate, &|r| format!("{r:.1}%")),
        show(get("sidewatch_process_open_fds"), &|v| format!("{v}")),
        show(get("sidewatch_process_threads"), &|v| format!("{v}")),
    )
}

/// One line per probe: state, last reason, last duration, counts, target.
pub(crate) fn status_lines(board: &std::collections::BTreeMap<String, ProbeStatus>) -> Vec<String> {
    let width = board.keys().map(String::len).max().unwrap_or(0);
    board
        .iter()
        .map(|(name, s)| {
            let (mark, state, took) = match &s.last {
                None => ("·", "pending".to_string(), String::new()),
                Some(l) => match l.reason {
                    None => ("✓", "ok".to_string(), human_duration(l.total)),
                    Some(r) => ("✗", r.to_string(), human_duration(l.total)),
                },
            };
            format!(
                "{mark} {name:<width$}  {:<4}  {state:<11} {took:>9}  runs {:>4}  failed {:>4}  {}",
                s.kind.as_str(),
                s.runs,
                s.failures,
                s.target
            )
        })
        .collect()
}
