//! The embedded demo target: an HTTP API (plain and TLS) with healthy, slow
//! and flaky endpoints, and a TCP `PING`/`+PONG` server, all on loopback.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::certs::Pki;

/// Addresses of a running demo target.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) http: SocketAddr,
    pub(crate) https: SocketAddr,
    pub(crate) tcp: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(crate) async fn start(pki: &Pki) -> std::io::Result<Target> {
    let stop = CancellationToken::new();
    let http = TcpListener::bind("127.0.0.1:0").await?;
    let https = TcpListener::bind("127.0.0.1:0").await?;
    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let target = Target {
        http: http.local_addr()?,
        https: https.local_addr()?,
        tcp: tcp.local_addr()?,
        stop: stop.clone(),
    };
    tokio::spawn(serve_http(http, None, stop.clone()));
    let acceptor = TlsAcceptor::from(pki.server_config());
    tokio::spawn(serve_http(https, Some(acceptor), stop.clone()));
    tokio::spawn(serve_pong(tcp, stop));
    Ok(target)
}

async fn serve_http(listener: TcpListener, tls: Option<TlsAcceptor>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
        };
        // Without it, Nagle's algorithm and the client's delayed ACK add ~40ms
        // to TLS exchanges, which the demo would then report as latency.
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(|req| async move { Ok::<_, Infallible>(handle(req).await) });
            let http = hyper::server::conn::http1::Builder::new();
            let _ = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => http.serve_connection(TokioIo::new(s), service).await,
                    Err(_) => return,
                },
                None => http.serve_connection(TokioIo::new(stream), service).await,
            };
        });
    }
}

async fn handle(req: Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/health" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/api/price" => {
            pause(1, 4).await;
            let symbol = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("symbol=")))
                .unwrap_or("AAPL");
            let symbol: String = symbol
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(8)
                .collect();
            let price = 100.0 + (random() % 10_000) as f64 / 100.0;
            let body = format!(r#"{{"symbol":"{symbol}","price":{price:.2},"status":"ok"}}"#);
            reply(StatusCode::OK, "application/json", body)
        }
        "/api/slow" => {
            pause(20, 160).await;
            reply(StatusCode::OK, "text/plain", "done\n".into())
        }
        "/api/flaky" if random() % 10 == 0 => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "busy\n".into(),
        ),
        "/api/flaky" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

async fn pause(min_ms: u64, max_ms: u64) {
    let ms = min_ms + random() % (max_ms - min_ms + 1);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// xorshift64*: plenty for jittering a demo, no dependency.
fn random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut x = STATE.load(Ordering::Relaxed);
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    STATE.store(x, Ordering::Relaxed);
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

async fn serve_pong(listener: TcpListener, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
        };
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply: &[u8] = if line.trim() == "PING" {
                    b"+PONG\r\n"
                } else {
                    b"-ERR\r\n"
                };
                if write.write_all(reply).await.is_err() {
                    return;
                }
            }
        });
    }
}
