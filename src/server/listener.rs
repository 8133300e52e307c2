//! Accepting connections under the `server:` limits: at most
//! `max_connections` open (a new one closes the least recently active one,
//! so a scraper always gets in), `read_header_timeout` for a request head and
//! for keep-alive idling (hyper counts both as reading the head), and
//! `write_timeout` for a response that makes no progress.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::{handle, ServerMetrics, ServerState};
use crate::config::ServerConfig;

/// Serves until `shutdown` is cancelled. Connections open then finish on
/// their own (bounded by the timeouts).
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    limits: ServerConfig,
    shutdown: CancellationToken,
) {
    let table = Arc::new(Table::new(limits.max_connections));
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of fds, usually: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let slot = table.admit(&state.metrics);
        tokio::spawn(connection(
            stream,
            state.clone(),
            limits.clone(),
            table.clone(),
            slot,
        ));
    }
}

async fn connection(
    stream: TcpStream,
    state: Arc<ServerState>,
    limits: ServerConfig,
    table: Arc<Table>,
    slot: Arc<Slot>,
) {
    let io = Watched {
        io: stream,
        slot: slot.clone(),
        epoch: table.epoch,
        write_timeout: limits.write_timeout.0,
        stalled: None,
    };
    let handler = state.clone();
    let service = service_fn(move |req| {
        let state = handler.clone();
        async move { Ok::<_, Infallible>(handle(&state, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_header_timeout.0)
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = conn => {}
        // Evicted: dropping the connection closes the socket.
        _ = slot.evict.cancelled() => {}
    }
    table.release(slot.id, &state.metrics);
}

/// One open connection, as the table sees it.
#[derive(Debug)]
struct Slot {
    id: u64,
    /// Milliseconds since the table's epoch at the last byte read or written.
    last: AtomicU64,
    evict: CancellationToken,
}

/// The open connections.
#[derive(Debug)]
struct Table {
    cap: usize,
    epoch: Instant,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
}

impl Table {
    fn new(cap: usize) -> Table {
        Table {
            cap: cap.max(1),
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Registers a new connection; at the cap, first closes the least
    /// recently active one (O(cap), only when the cap is hit).
    fn admit(&self, metrics: &ServerMetrics) -> Arc<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        while open.len() >= self.cap {
            let Some(oldest) = open
                .values()
                .min_by_key(|s| s.last.load(Ordering::Relaxed))
                .map(|s| s.id)
            else {
                break;
            };
            if let Some(victim) = open.remove(&oldest) {
                victim.evict.cancel();
                metrics.evicted.inc();
            }
        }
        let slot = Arc::new(Slot {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            last: AtomicU64::new(millis_since(self.epoch)),
            evict: CancellationToken::new(),
        });
        open.insert(slot.id, slot.clone());
        metrics.connections.set(open.len() as i64);
        slot
    }

    fn release(&self, id: u64, metrics: &ServerMetrics) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&id);
        metrics.connections.set(open.len() as i64);
    }
}

fn millis_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// The socket, noting activity for eviction and failing a write that makes
/// no progress for `write_timeout` (hyper has no write timeout).
struct Watched {
    io: TcpStream,
    slot: Arc<Slot>,
    epoch: Instant,
    write_timeout: Duration,
    /// Running while a write waits; reset by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Watched {
    fn touch(&self) {
        self.slot
            .last
            .store(millis_since(self.epoch), Ordering::Relaxed);
    }

    /// After a write attempt: progress resets the stall timer, waiting runs it.
    fn written<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            self.touch();
            return r;
        }
        let timeout = self.write_timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.written(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.written(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::registry::Registry;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    use super::*;
    use crate::config::Dur;

    /// A server whose exposition is about `families` × 150 bytes.
    async fn start(
        limits: ServerConfig,
        families: usize,
    ) -> (SocketAddr, Arc<ServerState>, CancellationToken) {
        let mut registry = Registry::with_prefix("sidewatch");
        for i in 0..families {
            let help = "A family that only makes the exposition long enough to fill socket buffers";
            registry.register(format!("filler_{i}"), help, Counter::<u64>::default());
        }
        let state = Arc::new(super::super::run_state(registry));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, state.clone(), limits, stop.clone()));
        (addr, state, stop)
    }

    /// One request on a new connection; the whole answer.
    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let read = s.read_to_end(&mut out);
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("answered")
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Whether the server closes `s` within 5 s; what it sends is dropped.
    async fn closed_by_server(mut s: TcpStream) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    async fn wait_for_connections(state: &ServerState, n: i64) -> bool {
        for _ in 0..500 {
            if state.metrics.connections.get() == n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn connections_over_the_cap_evict_the_least_recently_active_and_metrics_answers() {
        let limits = ServerConfig {
            max_connections: 8,
            ..ServerConfig::default()
        };
        let (addr, state, stop) = start(limits, 0).await;
        let mut idle = Vec::new();
        for i in 0..60 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // Half never send a request, half wait after one keep-alive request.
            if i % 2 == 0 {
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await
                    .unwrap();
                let mut head = [0u8; 12];
                s.read_exact(&mut head).await.unwrap();
                assert_eq!(&head, b"HTTP/1.1 200");
            }
            idle.push(s);
        }
        let page = get(addr, "/metrics").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        let closing: Vec<_> = idle
            .into_iter()
            .map(|s| tokio::spawn(closed_by_server(s)))
            .collect();
        let mut closed = 0;
        for c in closing {
            closed += usize::from(c.await.unwrap());
        }
        // 61 connections through a cap of 8: all but the 7 newest idle ones go.
        assert!(closed >= 60 - 8, "{closed} of 60 closed");
        assert!(state.metrics.evicted.get() >= 52, "{:?}", state.metrics);
        assert!(state.metrics.connections.get() <= 8, "{:?}", state.metrics);
        stop.cancel();
    }

    #[tokio::test]
    async fn slow_headers_and_idle_keep_alive_are_cut_at_the_header_timeout() {
        let limits = ServerConfig {
            read_header_timeout: Dur(Duration::from_millis(300)),
            ..ServerConfig::default()
        };
        let (addr, _state, stop) = start(limits, 0).await;
        // Slowloris: a header line every 100 ms, never the end of the head.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        let mut cut = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                cut = true;
                break;
            }
        }
        assert!(cut, "a head trickled over 5 s was not cut");
        // An idle keep-alive connection after one request.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(closed_by_server(idle).await);
        stop.cancel();
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_at_the_write_timeout() {
        let limits = ServerConfig {
            write_timeout: Dur(Duration::from_millis(300)),
            ..ServerConfig::default()
        };
        let (addr, state, stop) = start(limits, 1000).await;
        let one = get(addr, "/metrics").await.len();
        assert!(one > 100_000, "{one}");
        // 100 pipelined scrapes, about 16 MB: more than the socket buffers
        // hold, so the server's writes stall until the client reads.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(100);
        s.write_all(req.as_bytes()).await.unwrap();
        assert!(wait_for_connections(&state, 1).await);
        assert!(
            wait_for_connections(&state, 0).await,
            "the stalled connection stays open"
        );
        let mut received = 0;
        let mut buf = vec![0u8; 256 * 1024];
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(Ok(n @ 1..)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            received += n;
        }
        assert!(received < 100 * one, "{received} of {}", 100 * one);
        stop.cancel();
    }
}
