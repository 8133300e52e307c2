//! Child processes the tests start (Prometheus, the Pushgateway, sidewatch)
//! and bounded waits for them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A child killed (and reaped) when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Another process holding an exclusive `flock` on `path`, as a store
/// writer would, until it is dropped (`-o`: the lock stays with flock
/// itself, so killing it frees the lock).
pub fn hold_lock(path: &Path) -> Killed {
    let holder = Command::new("flock")
        .args(["-x", "-o"])
        .arg(path)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let holder = Killed(holder);
    wait_for("the lock to be taken", Duration::from_secs(5), || {
        !Command::new("flock")
            .args(["-n", "-x"])
            .arg(path)
            .arg("true")
            .status()
            .unwrap()
            .success()
    });
    holder
}

/// Unix time in seconds.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Polls `ok` every 200 ms; panics after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A real Prometheus (Debian's package) on a loopback port, scraping every
/// second, with `rules` loaded and `scrape` as its `scrape_configs` list.
/// Its TSDB and log go in `dir`.
pub fn start_prometheus(dir: &Path, rules: &[PathBuf], scrape: &str) -> (Killed, SocketAddr) {
    let rules: Vec<String> = rules
        .iter()
        .map(|p| format!("  - '{}'", std::fs::canonicalize(p).unwrap().display()))
        .collect();
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files:\n{}\nscrape_configs:\n{scrape}",
        rules.join("\n")
    );
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", super::closed_port())
        .parse()
        .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus (./scripts/install-deps installs Debian's package)");
    (Killed(child), addr)
}

/// The OTLP test receiver (scripts/otlp_receiver.py: the official protobuf
/// definitions with grpcio), appending each request to `out` as JSON lines.
pub fn receiver(http: u16, grpc: u16, out: &Path) -> Killed {
    use std::io::BufRead;
    let mut child = Command::new("python3")
        .args([
            "scripts/otlp_receiver.py",
            &http.to_string(),
            &grpc.to_string(),
        ])
        .arg(out)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with grpcio and opentelemetry-proto (./scripts/install-deps)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    wait_port(http);
    Killed(child)
}

/// Waits up to 10 s for a loopback port to accept connections.
pub fn wait_port(port: u16) {
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}
