//! Helpers shared by the integration tests: real servers (nginx from
//! `scripts/test`, in-process fault servers), config building and HTTP GETs.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sidewatch::config::Document;
use sidewatch::demo::certs;
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

/// Reads a request, then answers with `reply` and closes, optionally with a
/// reset (SO_LINGER 0) instead of a clean close.
pub async fn scripted_server(reply: &'static [u8], reset: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply).await;
                let _ = s.flush().await;
                if reset {
                    let _ = s.set_zero_linger();
                }
                drop(s);
            });
        }
    });
    addr
}

/// A TLS server (rustls) with a certificate of the given validity, answering
/// `200 ok`. Returns its address and the CA file that signed it.
pub async fn tls_server(validity: certs::Validity, dir: &std::path::Path) -> (SocketAddr, PathBuf) {
    let pki = certs::issue(&["localhost"], validity);
    let ca = dir.join(format!("ca-{validity:?}.pem"));
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, ca)
}

/// An HTTP server that records the request head it received.
pub async fn recording_server() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = s2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A blocking GET with a hard timeout; returns (status, body).
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, dechunk(&body)))
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
