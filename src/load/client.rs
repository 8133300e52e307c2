//! The load engine's HTTP/1.1 client: keep-alive connections, requests
//! rendered to bytes once per mix entry, responses parsed with httparse into
//! one reusable buffer per connection. Nothing is allocated per request.
//!
//! Probes use hyper, whose connection API exposes the phases a probe reports.
//! A load run needs none of that and all the throughput it can get on one
//! core, so it speaks HTTP/1.1 directly, as wrk does. The mix entries are
//! the probe's `HttpConfig` and are validated by the same code.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use url::{Position, Url};

use crate::net::dial::{dial, io_reason};
use crate::net::{tls, Reason, Timings};
use crate::probes::assert::StatusSet;
use crate::probes::http::HttpProbe;

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) https: bool,
}

/// A request rendered once, sent many times.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) origin: Origin,
    pub(crate) bytes: Bytes,
    pub(crate) head: bool,
    pub(crate) expect: StatusSet,
    pub(crate) tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl Request {
    /// Renders `method url` with `headers` and `body`.
    /// A probe's request, rendered for the load engine: a load mix entry is
    /// an HTTP probe config compiled by the probe's own `build`.
    pub(crate) fn from_probe(probe: &HttpProbe) -> Result<Request, String> {
        Request::render(
            probe.url(),
            probe.method().as_str(),
            probe.headers(),
            probe.body(),
            probe.expected_status().clone(),
            Some(probe.tls().clone()),
        )
    }

    pub(crate) fn render(
        url: &Url,
        method: &str,
        headers: &http::HeaderMap,
        body: &[u8],
        expect: StatusSet,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<Request, String> {
        let host = url.host_str().ok_or("the URL has no host")?.to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let https = url.scheme() == "https";
        let mut out = Vec::with_capacity(256 + body.len());
        let target = &url[Position::BeforePath..Position::AfterQuery];
        out.extend_from_slice(format!("{method} {target} HTTP/1.1\r\n").as_bytes());
        // A user's `Host` (a virtual host on an address) wins: one is sent.
        if !headers.contains_key(http::header::HOST) {
            out.extend_from_slice(
                format!(
                    "Host: {}\r\n",
                    &url[Position::BeforeHost..Position::AfterPort]
                )
                .as_bytes(),
            );
        }
        if !headers.contains_key(http::header::USER_AGENT) {
            out.extend_from_slice(
                concat!("User-Agent: sidewatch/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes(),
            );
        }
        for (k, v) in headers {
            out.extend_from_slice(k.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        let tls = match (https, tls) {
            (true, Some(cfg)) => Some((cfg, tls::server_name(&host)?)),
            (true, None) => return Err("https needs a TLS config".into()),
            _ => None,
        };
        Ok(Request {
            origin: Origin { host, port, https },
            bytes: Bytes::from(out),
            head: method == "HEAD",
            expect,
            tls,
        })
    }
}

/// The most a response head (status line and headers) may take; a server
/// that sends more is broken or hostile, and the exchange fails as `protocol`.
const MAX_HEAD: usize = 64 * 1024;

trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// One keep-alive connection.
pub(crate) struct Conn {
    origin: Origin,
    io: Box<dyn Io>,
    buf: BytesMut,
}

/// What a response looked like.
pub(crate) enum Reply {
    /// The status was accepted; whether the connection may be reused.
    Ok { reuse: bool },
    /// The status was not in the expected set.
    Status { reuse: bool },
}

impl Conn {
    pub(crate) async fn open(req: &Request) -> Result<Conn, Reason> {
        let mut rec = Timings::default();
        let tcp = dial(&req.origin.host, req.origin.port, &mut rec)
            .await
            .map_err(|f| f.reason)?;
        let io: Box<dyn Io> = match &req.tls {
            Some((cfg, name)) => Box::new(
                tls::handshake(cfg, name.clone(), tcp, &mut rec)
                    .await
                    .map_err(|f| f.reason)?,
            ),
            None => Box::new(tcp),
        };
        Ok(Conn {
            origin: req.origin.clone(),
            io,
            buf: BytesMut::with_capacity(16 * 1024),
        })
    }

    /// A connection over any stream (the fuzz targets' canned server).
    pub(crate) fn over(req: &Request, io: impl AsyncRead + AsyncWrite + Unpin + 'static) -> Conn {
        Conn {
            origin: req.origin.clone(),
            io: Box::new(io),
            buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    pub(crate) fn serves(&self, req: &Request) -> bool {
        self.origin == req.origin
    }

    /// Sends the request and reads the whole response.
    pub(crate) async fn exchange(&mut self, req: &Request) -> Result<Reply, Reason> {
        self.io
            .write_all(&req.bytes)
            .await
            .map_err(|e| io_reason(&e))?;
        let (status, body, reuse) = self.final_head().await?;
        let no_body = req.head || status == 204 || status == 304;
        let reuse = match body {
            // After `101 Switching Protocols` the connection no longer speaks HTTP.
            _ if status == 101 => false,
            _ if no_body => reuse,
            Body::Length(n) => self.skip(n).await.map(|_| reuse)?,
            Body::Chunked => self.chunked().await.map(|_| reuse)?,
            Body::UntilClose => self.until_close().await.map(|_| false)?,
        };
        Ok(if req.expect.contains(status) {
            Reply::Ok { reuse }
        } else {
            Reply::Status { reuse }
        })
    }

    async fn fill(&mut self) -> Result<(), Reason> {
        match self.io.read_buf(&mut self.buf).await {
            Ok(0) => Err(Reason::Reset),
            Ok(_) => Ok(()),
            Err(e) => Err(io_reason(&e)),
        }
    }

    /// The final response's head: interim `1xx` responses (`100 Continue`,
    /// `103 Early Hints`) are skipped, `101` is final.
    async fn final_head(&mut self) -> Result<(u16, Body, bool), Reason> {
        loop {
            let head = self.head().await?;
            if head.0 == 101 || !(100..200).contains(&head.0) {
                return Ok(head);
            }
        }
    }

    async fn head(&mut self) -> Result<(u16, Body, bool), Reason> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap_or(0);
                    let (body, reuse) = framing(&resp);
                    self.buf.advance(n);
                    return Ok((status, body, reuse));
                }
                Ok(httparse::Status::Partial) if self.buf.len() >= MAX_HEAD => {
                    return Err(Reason::Protocol)
                }
                Ok(httparse::Status::Partial) => self.fill().await?,
                Err(_) => return Err(Reason::Protocol),
            }
        }
    }

    async fn skip(&mut self, mut n: u64) -> Result<(), Reason> {
        loop {
            let take = n.min(self.buf.len() as u64);
            self.buf.advance(take as usize);
            n -= take;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    async fn line(&mut self) -> Result<usize, Reason> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Ok(i);
            }
            if self.buf.len() > 4096 {
                return Err(Reason::Protocol);
            }
            self.fill().await?;
        }
    }

    async fn chunked(&mut self) -> Result<(), Reason> {
        loop {
            let end = self.line().await?;
            let size_text = std::str::from_utf8(&self.buf[..end]).map_err(|_| Reason::Protocol)?;
            let size = u64::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| Reason::Protocol)?;
            self.buf.advance(end + 2);
            if size == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    let end = self.line().await?;
                    self.buf.advance(end + 2);
                    if end == 0 {
                        return Ok(());
                    }
                }
            }
            // The size is the peer's: `ffffffffffffffff` must not wrap.
            self.skip(size.checked_add(2).ok_or(Reason::Protocol)?)
                .await?;
        }
    }

    async fn until_close(&mut self) -> Result<(), Reason> {
        loop {
            self.buf.clear();
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(io_reason(&e)),
            }
        }
    }
}

enum Body {
    Length(u64),
    Chunked,
    UntilClose,
}

fn framing(resp: &httparse::Response) -> (Body, bool) {
    let mut body = Body::UntilClose;
    let mut reuse = resp.version == Some(1);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            if let Some(n) = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                body = Body::Length(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if h.value.eq_ignore_ascii_case(b"chunked") {
                body = Body::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            reuse = !h.value.eq_ignore_ascii_case(b"close");
        }
    }
    (body, reuse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::net::TcpListener;

    fn request(url: &str) -> Request {
        let set = StatusSet::success();
        Request::render(
            &Url::parse(url).unwrap(),
            "GET",
            &http::HeaderMap::new(),
            b"",
            set,
            None,
        )
        .unwrap()
    }

    #[test]
    fn renders_a_request() {
        let r = request("http://127.0.0.1:8080/api?x=1");
        let text = String::from_utf8(r.bytes.to_vec()).unwrap();
        assert!(
            text.starts_with("GET /api?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n"));
    }

    /// Serves the given responses in order on one connection.
    async fn server(responses: Vec<&'static [u8]>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for r in responses {
                let _ = s.read(&mut buf).await;
                s.write_all(r).await.unwrap();
            }
        });
        format!("http://{addr}/")
    }

    /// Sends `n` requests on one connection to a server that answers with
    /// `responses`; each exchange must end within 5 s.
    async fn exchanges(responses: Vec<&'static [u8]>, n: usize) -> Vec<Result<Reply, Reason>> {
        let req = request(&server(responses).await);
        let mut c = Conn::open(&req).await.unwrap();
        let mut out = Vec::new();
        for _ in 0..n {
            let one = tokio::time::timeout(Duration::from_secs(5), c.exchange(&req));
            out.push(one.await.expect("an exchange ends within 5 s"));
        }
        out
    }

    #[tokio::test]
    async fn reads_length_chunked_and_status_bodies_on_one_connection() {
        let got = exchanges(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\n",
                b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\nno",
            ],
            4,
        )
        .await;
        assert!(matches!(
            got[..],
            [
                Ok(Reply::Ok { reuse: true }),
                Ok(Reply::Ok { reuse: true }),
                Ok(Reply::Status { reuse: true }),
                Err(Reason::Reset)
            ]
        ));
    }

    #[tokio::test]
    async fn a_chunk_size_that_overflows_is_a_protocol_error() {
        let got = exchanges(
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab\r\n0\r\n\r\n"],
            1,
        )
        .await;
        assert!(matches!(got[..], [Err(Reason::Protocol)]));
    }

    #[tokio::test]
    async fn an_endless_response_head_is_cut_at_the_cap() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        // One header line that never ends, then the connection stays open.
        let serve = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nX-Fill: ").await;
            let filler = vec![b'a'; 64 * 1024];
            for _ in 0..64 {
                if s.write_all(&filler).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let req = request(&url);
        let mut c = Conn::open(&req).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), c.exchange(&req)).await;
        assert!(matches!(got, Ok(Err(Reason::Protocol))));
        assert!(c.buf.capacity() <= 2 * MAX_HEAD, "{}", c.buf.capacity());
        serve.abort();
    }

    #[tokio::test]
    async fn interim_1xx_responses_are_skipped() {
        let got = exchanges(
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\nno",
            ],
            2,
        )
        .await;
        // Nothing of the interim responses is left to be read as the next one.
        assert!(matches!(
            got[..],
            [
                Ok(Reply::Ok { reuse: true }),
                Ok(Reply::Status { reuse: true })
            ]
        ));
    }

    #[tokio::test]
    async fn switching_protocols_is_final_and_ends_reuse() {
        let got = exchanges(
            vec![b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"],
            1,
        )
        .await;
        assert!(matches!(got[..], [Ok(Reply::Status { reuse: false })]));
    }

    #[test]
    fn a_user_host_header_replaces_the_generated_one() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, "api.example".parse().unwrap());
        let r = Request::render(
            &Url::parse("http://127.0.0.1:8080/").unwrap(),
            "GET",
            &headers,
            b"",
            StatusSet::success(),
            None,
        )
        .unwrap();
        let text = String::from_utf8(r.bytes.to_vec())
            .unwrap()
            .to_ascii_lowercase();
        assert_eq!(text.matches("\r\nhost:").count(), 1, "{text}");
        assert!(text.contains("\r\nhost: api.example\r\n"), "{text}");
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_error() {
        let got = exchanges(vec![b"SSH-2.0-x\r\n\r\n"], 1).await;
        assert!(matches!(got[..], [Err(Reason::Protocol)]));
    }
}
