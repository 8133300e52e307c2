//! A connector that times name resolution and TCP connect itself, so the
//! `dns` and `connect` phases are measured rather than estimated.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock, Mutex};

use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{Failure, Phase, Reason, Timings};

/// Resolves `host` (timed as `dns`), then connects to each address in turn
/// (timed as `connect`) until one answers.
pub(crate) async fn dial(host: &str, port: u16, rec: &mut Timings) -> Result<TcpStream, Failure> {
    let addrs = rec.time(Phase::Dns, resolve(host, port)).await?;
    let mut last = None;
    for addr in addrs {
        match rec.time(Phase::Connect, TcpStream::connect(addr)).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.expect("resolve returns at least one address");
    Err(Failure::new(io_reason(&e), format!("connect: {e}")))
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Failure> {
    // URL hosts keep their brackets for IPv6 literals.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = lookup(bare)
        .await
        .map_err(|e| Failure::new(Reason::Dns, format!("resolve {bare}: {e}")))?
        .iter()
        .map(|&ip| SocketAddr::new(ip, port))
        .collect();
    if addrs.is_empty() {
        return Err(Failure::new(
            Reason::Dns,
            format!("{bare} has no addresses"),
        ));
    }
    Ok(addrs)
}

/// A lookup's answer, shared by everyone who waited for it.
type Answer = Result<Arc<[IpAddr]>, String>;
type Pending = watch::Receiver<Option<Answer>>;

/// The lookups in flight, one per host name.
static IN_FLIGHT: LazyLock<Mutex<HashMap<String, Pending>>> = LazyLock::new(Default::default);

/// Resolves `host` with the system resolver (getaddrinfo, on the blocking
/// pool). A hung resolver holds a blocking thread until its own timeout,
/// long after the probe gave up; so there is at most one lookup per host in
/// flight, and every caller (each bounded by its own timeout) waits for it
/// rather than starting another. Answers are not cached.
async fn lookup(host: &str) -> Answer {
    let mut pending = {
        let mut map = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(host) {
            Some(pending) => pending.clone(),
            None => {
                let (tx, rx) = watch::channel(None);
                map.insert(host.to_string(), rx.clone());
                // The guard is made here so that a task dropped before its
                // first poll still clears the entry.
                let done = Forget {
                    host: host.to_string(),
                    rx: rx.clone(),
                };
                tokio::spawn(resolve_shared(done, tx));
                rx
            }
        }
    };
    let answer = pending.wait_for(Option::is_some).await;
    match answer.as_deref() {
        Ok(Some(answer)) => answer.clone(),
        // The task was dropped with its runtime (a load shard that ended).
        _ => Err("the lookup was abandoned".into()),
    }
}

/// Runs one lookup to its end, whoever still waits, then lets the next
/// caller start a fresh one.
async fn resolve_shared(done: Forget, tx: watch::Sender<Option<Answer>>) {
    let answer = tokio::net::lookup_host((done.host.as_str(), 0))
        .await
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .map_err(|e| e.to_string());
    let _ = tx.send(Some(answer));
}

/// Removes a lookup from [`IN_FLIGHT`] when it ends or its task is dropped.
struct Forget {
    host: String,
    rx: Pending,
}

impl Drop for Forget {
    fn drop(&mut self) {
        let mut map = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        if map
            .get(&self.host)
            .is_some_and(|p| p.same_channel(&self.rx))
        {
            map.remove(&self.host);
        }
    }
}

/// Maps an I/O error to a reason.
pub(crate) fn io_reason(e: &io::Error) -> Reason {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => Reason::Refused,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
            Reason::Reset
        }
        HostUnreachable | NetworkUnreachable | AddrNotAvailable => Reason::Unreachable,
        TimedOut => Reason::Timeout,
        InvalidData => Reason::Protocol,
        _ => Reason::Io,
    }
}

/// The first I/O error in an error's source chain.
pub(crate) fn io_source<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut cur = e.source();
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// Splits `host:port` or `[v6]:port`.
pub(crate) fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("`{address}` needs a port (host:port)"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port number"))?;
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("write IPv6 addresses in brackets: [::1]:port".into());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_addresses() {
        assert_eq!(split_host_port("db:5432").unwrap(), ("db".into(), 5432));
        assert_eq!(split_host_port("[::1]:80").unwrap(), ("[::1]".into(), 80));
        assert!(split_host_port("db").is_err());
        assert!(split_host_port("::1:80").is_err());
        assert!(split_host_port("db:http").is_err());
    }

    const HUNG_CHILD: &str = "SIDEWATCH_HUNG_RESOLVER_CHILD";

    /// A resolver that never answers: the test runs again in a child
    /// process with its own network and mount namespaces (`unshare`, root),
    /// where `/etc/resolv.conf` names a UDP server on 127.0.0.1:53 that
    /// counts queries and answers none. glibc's resolver is the real one.
    #[test]
    fn lookups_against_a_hung_resolver_are_one_per_host_and_end_with_the_timeout() {
        if std::env::var_os(HUNG_CHILD).is_some() {
            return hung_resolver_child();
        }
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("resolv.conf");
        // No retry within the test: one lookup is one A and one AAAA query.
        std::fs::write(
            &conf,
            "nameserver 127.0.0.1\noptions timeout:5 attempts:1\n",
        )
        .unwrap();
        let exe = std::env::current_exe().unwrap();
        let script = "ip link set lo up && mount --bind \"$0\" /etc/resolv.conf && exec \"$1\" --exact \"$2\" --nocapture --test-threads 1";
        let out = std::process::Command::new("unshare")
            .args(["--mount", "--net", "sh", "-c", script])
            .arg(&conf)
            .arg(&exe)
            .arg("net::dial::tests::lookups_against_a_hung_resolver_are_one_per_host_and_end_with_the_timeout")
            .env(HUNG_CHILD, "1")
            .output()
            .expect("unshare runs (needs root)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the child ran no test: {text}");
    }

    fn hung_resolver_child() {
        let dns = std::net::UdpSocket::bind("127.0.0.1:53").expect("bind 127.0.0.1:53");
        let queries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = queries.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while dns.recv_from(&mut buf).is_ok() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // A probe every 50 ms with a 50 ms timeout, 40 times, then 20 at once.
            let attempt = || async {
                let mut rec = Timings::default();
                let t = std::time::Duration::from_millis(50);
                tokio::time::timeout(t, dial("hung.sidewatch.test", 80, &mut rec)).await
            };
            for _ in 0..40 {
                assert!(attempt().await.is_err(), "a hung lookup answered");
            }
            let together: Vec<_> = (0..20).map(|_| tokio::spawn(attempt())).collect();
            for a in together {
                assert!(a.await.unwrap().is_err());
            }
            // Another host has its own lookup.
            let mut rec = Timings::default();
            let t = std::time::Duration::from_millis(50);
            let other = tokio::time::timeout(t, dial("other.sidewatch.test", 80, &mut rec)).await;
            assert!(other.is_err());
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        });
        // The hung lookups still hold their blocking threads: don't wait.
        rt.shutdown_background();
        let n = queries.load(std::sync::atomic::Ordering::SeqCst);
        // One lookup per host (an A and an AAAA query each), not one per attempt.
        assert!(
            (1..=4).contains(&n),
            "{n} DNS queries for 61 attempts on 2 hosts"
        );
    }

    #[tokio::test]
    async fn refused_is_classified() {
        // Bind then drop, so nothing listens on the port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut rec = Timings::default();
        let err = dial("127.0.0.1", port, &mut rec).await.unwrap_err();
        assert_eq!(err.reason, Reason::Refused);
        assert!(rec.phase(Phase::Dns).is_some());
        assert!(rec.phase(Phase::Connect).is_some());
    }
}
