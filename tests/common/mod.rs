//! Helpers shared by the integration tests: real servers (nginx from
//! `scripts/test`, in-process fault servers), config building and HTTP GETs.
#![allow(dead_code)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sidewatch::cli::demo::certs;
use sidewatch::config::Document;
use sidewatch::plan::Plan;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The nginx that `scripts/test` started.
pub fn nginx() -> String {
    std::env::var("SIDEWATCH_TEST_NGINX")
        .expect("SIDEWATCH_TEST_NGINX is not set: run the tests with ./scripts/test")
}

pub fn plan(yaml: &str) -> Plan {
    let doc = Document::parse("test.yaml", yaml, &|k| std::env::var(k).ok())
        .unwrap_or_else(|e| panic!("config: {e}"));
    Plan::from_document(doc).unwrap_or_else(|e| panic!("config: {e}"))
}

/// A loopback port with nothing listening.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Accepts connections and never answers; holds them open.
pub async fn hanging_server() -> SocketAddr {
    counting_hanging_server().await.0
}

/// Like [`hanging_server`], and counts the connections it accepted.
pub async fn counting_hanging_server() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(s);
        }
    });
    (addr, count)
}

/// Listens on a loopback port and runs `handle` on a task of its own for
/// each connection accepted.
pub async fn serve<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(handle(s));
        }
    });
    addr
}

/// Like [`serve`], for keep-alive HTTP: answers each request it reads with
/// what `reply` returns, until the client closes.
pub async fn serve_keep_alive<F, Fut>(reply: F) -> SocketAddr
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Vec<u8>> + Send,
{
    serve(move |mut s| {
        let reply = reply.clone();
        async move {
            let mut buf = vec![0u8; 4096];
            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                if s.write_all(&reply().await).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// Reads a request, then answers with `reply` and closes, optionally with a
/// reset (SO_LINGER 0) instead of a clean close.
pub async fn scripted_server(reply: &'static [u8], reset: bool) -> SocketAddr {
    serve(move |mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(reply).await;
        let _ = s.flush().await;
        if reset {
            let _ = s.set_zero_linger();
        }
        drop(s);
    })
    .await
}

/// A TLS server (rustls) with a certificate of the given validity, answering
/// `200 ok`. Returns its address and the CA file that signed it.
pub async fn tls_server(validity: certs::Validity, dir: &std::path::Path) -> (SocketAddr, PathBuf) {
    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n";
    tls_server_with(validity, dir, ok).await
}

/// [`tls_server`] answering every request with `reply`.
pub async fn tls_server_with(
    validity: certs::Validity,
    dir: &std::path::Path,
    reply: &'static [u8],
) -> (SocketAddr, PathBuf) {
    let pki = certs::issue(&["localhost"], validity);
    let ca = dir.join(format!("ca-{validity:?}.pem"));
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let addr = serve(move |s| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(s).await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let _ = tls.write_all(reply).await;
            let _ = tls.shutdown().await;
        }
    })
    .await;
    (addr, ca)
}

/// An HTTP server that records the request head it received.
pub async fn recording_server() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    recording_server_with(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await
}

/// Like [`recording_server`], answering every request with `reply`.
pub async fn recording_server_with(
    reply: &'static [u8],
) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let addr = serve(move |mut s| {
        let seen = s2.clone();
        async move {
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).await.unwrap_or(0);
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = s.write_all(reply).await;
        }
    })
    .await;
    (addr, seen)
}

/// A blocking GET with a hard timeout; returns (status, body).
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let accept = accept.map(|a| format!("Accept: {a}"));
    http_request(addr, "GET", path, accept.as_deref())
}

/// One request with an optional extra header line; (status, body).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    header: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let (status, _, body) = http_exchange(addr, method, path, header, Duration::from_secs(2))?;
    Ok((status, body))
}

/// [`http_request`] waiting up to `read_timeout` for the answer; (status,
/// the response head, body).
pub fn http_exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    header: Option<&str>,
    read_timeout: Duration,
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(read_timeout))?;
    let header = header.map(|h| format!("{h}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{header}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((status, head.to_string(), dechunk(body)))
}

/// Undoes chunked transfer encoding if the body looks chunked.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, tail)) = rest.split_once("\r\n") else {
            return body.to_string();
        };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_string();
        };
        if n == 0 {
            return out;
        }
        if tail.len() < n {
            return body.to_string();
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
}

#[allow(unused_imports)]
pub use sidewatch::telemetry::find_sample as sample;

/// Asserts that the exposition `text` has the sample and that it is at
/// least `min`.
#[track_caller]
pub fn assert_at_least(text: &str, name: &str, labels: &[(&str, &str)], min: f64) {
    let v = sample(text, name, labels);
    assert!(
        v.is_some_and(|v| v >= min),
        "{name} {labels:?} is {v:?}, not >= {min}"
    );
}

/// Where PostgreSQL's server binaries are (`SIDEWATCH_PG_BIN`, set by
/// `./scripts/test`, or Debian's layout).
fn pg_bin(tool: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("SIDEWATCH_PG_BIN") {
        return PathBuf::from(dir).join(tool);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server packages (./scripts/install-deps)")
        .flatten()
        .map(|e| e.path().join("bin").join(tool))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().expect("a PostgreSQL bin directory")
}

/// A private PostgreSQL server on a loopback port, in a temporary directory,
/// run as the `postgres` user (initdb refuses root). Password auth
/// (scram-sha-256) for user `sidewatch`.
pub struct Postgres {
    pub port: u16,
    pub password: String,
    dir: tempfile::TempDir,
}

impl Postgres {
    pub fn start() -> Postgres {
        use std::os::unix::fs::chown;
        let dir = tempfile::tempdir().unwrap();
        let (uid, gid) = postgres_ids();
        chown(dir.path(), Some(uid), Some(gid)).unwrap();
        let password = "pg-test-pw-7731".to_string();
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &password).unwrap();
        chown(&pwfile, Some(uid), Some(gid)).unwrap();
        let data = dir.path().join("data");
        let ok = as_postgres(&pg_bin("initdb"))
            .args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                "sidewatch",
                "--pwfile",
                pwfile.to_str().unwrap(),
            ])
            .args([
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "initdb failed");
        let pg = Postgres {
            port: closed_port(),
            password,
            dir,
        };
        pg.resume();
        pg
    }

    fn ctl(&self, args: &[&str]) -> bool {
        as_postgres(&pg_bin("pg_ctl"))
            .args([
                "-D",
                self.dir.path().join("data").to_str().unwrap(),
                "-w",
                "-t",
                "20",
            ])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// Starts (or restarts) the server on its port.
    pub fn resume(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=40",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        assert!(
            self.ctl(&["-l", log.to_str().unwrap(), "-o", &opts, "start"]),
            "pg_ctl start"
        );
    }

    pub fn stop(&self) {
        assert!(self.ctl(&["-m", "immediate", "stop"]), "pg_ctl stop");
    }

    /// Restarts the server with TLS on (a self-signed `localhost` certificate).
    pub fn enable_tls(&self) {
        use std::os::unix::fs::{chown, PermissionsExt};
        self.stop();
        let data = self.dir.path().join("data");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (uid, gid) = postgres_ids();
        for (name, pem) in [
            ("server.crt", cert.cert.pem()),
            ("server.key", cert.signing_key.serialize_pem()),
        ] {
            let path = data.join(name);
            std::fs::write(&path, pem).unwrap();
            chown(&path, Some(uid), Some(gid)).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let conf = data.join("postgresql.conf");
        let text = std::fs::read_to_string(&conf).unwrap() + "\nssl = on\n";
        std::fs::write(&conf, text).unwrap();
        self.resume();
    }

    pub fn dsn(&self, password: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=sidewatch password={password} dbname=postgres",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.ctl(&["-m", "immediate", "stop"]);
    }
}

fn postgres_ids() -> (u32, u32) {
    let out = std::process::Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .unwrap();
    let uid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a postgres user");
    let out = std::process::Command::new("id")
        .args(["-g", "postgres"])
        .output()
        .unwrap();
    (
        uid,
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap(),
    )
}

fn as_postgres(tool: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(tool);
    c
}

/// A private tansu (Kafka-protocol) broker with in-memory storage.
pub struct Broker {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl Broker {
    pub fn start() -> Broker {
        let mut b = Broker {
            port: closed_port(),
            child: None,
        };
        b.resume();
        b
    }

    pub fn resume(&mut self) {
        let bin = std::env::var("SIDEWATCH_TANSU").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            format!("{home}/.cache/sidewatch/tansu/bin/tansu")
        });
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = std::process::Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("tansu at {bin}: {e} (./scripts/test installs it)"));
        self.child = Some(child);
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < end, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP server that answers 200 for `ok_for` after its first request,
/// then 500, on keep-alive connections.
pub async fn turning_server(
    ok_for: Duration,
) -> (SocketAddr, Arc<std::sync::OnceLock<std::time::Instant>>) {
    let first = Arc::new(std::sync::OnceLock::new());
    let f = first.clone();
    let addr = serve_keep_alive(move || {
        let start = *f.get_or_init(std::time::Instant::now);
        let reply: &[u8] = if start.elapsed() < ok_for {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        } else {
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 3\r\n\r\nbad"
        };
        async move { reply.to_vec() }
    })
    .await;
    (addr, first)
}

/// A process's resident set size in kB, from /proc/PID/status.
pub fn vm_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap()
}

/// How a [`shaped_server`] answers: given the time since its first request
/// and how many requests it has seen in the current wall-clock second,
/// a delay and a status.
pub type Shape = Arc<dyn Fn(Duration, u64) -> (Duration, u16) + Send + Sync>;

/// A keep-alive HTTP server whose latency and status follow `shape`.
pub async fn shaped_server(shape: Shape) -> SocketAddr {
    use std::sync::atomic::{AtomicU64, Ordering};
    let first = Arc::new(std::sync::OnceLock::<std::time::Instant>::new());
    // (second since first request, count in it)
    let slot = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    serve_keep_alive(move || {
        let t = first.get_or_init(std::time::Instant::now).elapsed();
        let sec = t.as_secs();
        if slot.0.swap(sec, Ordering::Relaxed) != sec {
            slot.1.store(0, Ordering::Relaxed);
        }
        let n = slot.1.fetch_add(1, Ordering::Relaxed) + 1;
        let (delay, status) = shape(t, n);
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok").into_bytes()
        }
    })
    .await
}

/// A target of each probe kind, for the tests that probe them all: a TLS
/// server (its CA file in `dir`), PostgreSQL and a Kafka broker.
pub struct AllTargets {
    pub tls: SocketAddr,
    pub ca: PathBuf,
    pub pg: Postgres,
    pub broker: Broker,
    pub dir: tempfile::TempDir,
}

impl AllTargets {
    pub async fn start() -> AllTargets {
        let dir = tempfile::tempdir().unwrap();
        let (tls, ca) = tls_server(certs::Validity::Current, dir.path()).await;
        AllTargets {
            tls,
            ca,
            pg: Postgres::start(),
            broker: Broker::start(),
            dir,
        }
    }

    /// The PostgreSQL target's DSN, with its password.
    pub fn dsn(&self) -> String {
        self.pg.dsn(&self.pg.password)
    }
}

/// `promtool check metrics` on an exposition: (passed, its output).
pub fn promtool_check(text: &str) -> (bool, String) {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed by ./scripts/test");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let msg =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), msg)
}

pub mod assets;
pub mod procs;
