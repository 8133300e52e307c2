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
        out.extend_from_slice(
            format!(
                "Host: {}\r\n",
                &url[Position::BeforeHost..Position::AfterPort]
            )
            .as_bytes(),
        );
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
        let (status, body, reuse) = self.head().await?;
        let no_body = req.head || status == 204 || status == 304 || (100..200).contains(&status);
        let reuse = match body {
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
            self.skip(size + 2).await?;
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

    #[tokio::test]
    async fn reads_length_chunked_and_status_bodies_on_one_connection() {
        let url = server(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\nno",
        ])
        .await;
        let req = request(&url);
        let mut c = Conn::open(&req).await.unwrap();
        assert!(matches!(
            c.exchange(&req).await,
            Ok(Reply::Ok { reuse: true })
        ));
        assert!(matches!(
            c.exchange(&req).await,
            Ok(Reply::Ok { reuse: true })
        ));
        assert!(matches!(
            c.exchange(&req).await,
            Ok(Reply::Status { reuse: true })
        ));
        assert!(matches!(c.exchange(&req).await, Err(Reason::Reset)));
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_error() {
        let url = server(vec![b"SSH-2.0-x\r\n\r\n"]).await;
        let req = request(&url);
        let mut c = Conn::open(&req).await.unwrap();
        assert!(matches!(c.exchange(&req).await, Err(Reason::Protocol)));
    }
}
