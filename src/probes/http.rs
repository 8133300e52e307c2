//! HTTP(S) probe on hyper's connection API, so every phase is measured:
//! `dns` and `connect` by [`dial`], `tls` by the handshake, `first_byte` by a
//! stream wrapper that notes the first byte read, `transfer` to the end of the
//! body. Each run uses a fresh connection, as blackbox_exporter does, so the
//! connect and TLS costs are seen on every run.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, HOST, LOCATION, USER_AGENT};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use regex::Regex;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use url::{Position, Url};

use super::assert::{regex, JsonCheck, StatusSet};
use super::Recorder;
use crate::config::{BuildCx, HttpConfig, HttpExpect};
use crate::net::dial::{dial, io_reason, io_source};
use crate::net::{tls, Failure, Phase, Reason};
use crate::redact::{is_secret_header, mask_url, url_secrets};

const USER_AGENT_VALUE: &str = concat!("sidewatch/", env!("CARGO_PKG_VERSION"));

#[derive(Debug)]
pub(crate) struct HttpProbe {
    url: Url,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    follow_redirects: bool,
    max_redirects: u32,
    max_body: u64,
    tls: Arc<ClientConfig>,
    server_name: Option<String>,
    expect: Expect,
}

#[derive(Debug)]
struct Expect {
    status: StatusSet,
    body_regex: Option<Regex>,
    body_not_regex: Option<Regex>,
    headers: Vec<(HeaderName, Regex)>,
    json: Vec<JsonCheck>,
    max_latency: Option<Duration>,
}

/// A response read in full.
struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl HttpProbe {
    pub(crate) fn build(cfg: &HttpConfig, cx: &mut BuildCx) -> Option<HttpProbe> {
        cx.checked(|cx| {
            let url = parse_url(&cfg.url, &mut cx.key("url"));
            let method = Method::from_bytes(cfg.method.to_ascii_uppercase().as_bytes())
                .map_err(|_| cx.problem_at("method", "not an HTTP method"))
                .ok();
            let mut headers = build_headers(&cfg.headers, &mut cx.key("headers"));
            if let Some(url) = &url {
                add_basic_auth(url, &mut headers);
            }
            let mut tls_cx = cx.key("tls");
            let tls = tls::client_config(&cfg.tls, &[b"http/1.1"])
                .map_err(|e| tls_cx.problem_at("ca_file", e))
                .ok();
            if let Some(name) = &cfg.tls.server_name {
                if let Err(e) = tls::server_name(name) {
                    tls_cx.problem_at("server_name", e);
                }
            }
            let expect = build_expect(&cfg.expect, &mut cx.key("expect"));
            Some(HttpProbe {
                url: url?,
                method: method?,
                headers,
                body: Bytes::from(cfg.body.clone().unwrap_or_default()),
                follow_redirects: cfg.follow_redirects,
                max_redirects: cfg.max_redirects,
                max_body: cfg.max_body_bytes,
                tls: tls?,
                server_name: cfg.tls.server_name.clone(),
                expect: expect?,
            })
        })
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    pub(crate) fn method(&self) -> &Method {
        &self.method
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub(crate) fn body(&self) -> &Bytes {
        &self.body
    }

    /// The accepted status codes.
    pub(crate) fn expected_status(&self) -> &StatusSet {
        &self.expect.status
    }

    pub(crate) fn tls(&self) -> &Arc<ClientConfig> {
        &self.tls
    }

    pub(crate) fn host(&self) -> String {
        self.url.host_str().unwrap_or_default().to_string()
    }

    /// The URL with its password and secret query values masked.
    pub(crate) fn target(&self) -> String {
        mask_url(&self.url)
    }

    pub async fn run(&self, rec: &mut Recorder) -> Result<(), Failure> {
        let mut url = self.url.clone();
        let mut method = self.method.clone();
        let mut body = self.body.clone();
        let mut hops = 0;
        loop {
            // Status and expiry describe the final response's connection
            // (as blackbox_exporter's do): a hop that fails leaves none.
            rec.http_status = None;
            rec.timings.tls_not_after = None;
            let resp = self.exchange(&url, &method, body.clone(), rec).await?;
            rec.http_status = Some(resp.status.as_u16());
            let location = resp.headers.get(LOCATION).and_then(|v| v.to_str().ok());
            let next = match location {
                Some(loc) if self.follow_redirects && is_redirect(resp.status) => loc,
                _ => return self.check(&resp, rec),
            };
            if hops == self.max_redirects {
                return Err(Failure::new(
                    Reason::Protocol,
                    format!("more than {} redirects", self.max_redirects),
                ));
            }
            hops += 1;
            url = url.join(next).map_err(|e| {
                Failure::new(Reason::Protocol, format!("bad redirect location: {e}"))
            })?;
            if resp.status == StatusCode::SEE_OTHER
                || (method == Method::POST && resp.status.as_u16() < 303)
            {
                method = Method::GET;
                body = Bytes::new();
            }
        }
    }

    async fn exchange(
        &self,
        url: &Url,
        method: &Method,
        body: Bytes,
        rec: &mut Recorder,
    ) -> Result<Response, Failure> {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        let tcp = dial(host, port, &mut rec.timings).await?;
        let io: Box<dyn Io> = if url.scheme() == "https" {
            let name = tls::server_name(self.server_name.as_deref().unwrap_or(host))
                .map_err(|e| Failure::new(Reason::Tls, e))?;
            Box::new(tls::handshake(&self.tls, name, tcp, &mut rec.timings).await?)
        } else {
            Box::new(tcp)
        };
        let first_byte = Arc::new(OnceLock::new());
        let io = TokioIo::new(FirstByte {
            inner: io,
            at: first_byte.clone(),
        });
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(hyper_failure)?;
        // The connection task dies with this future, so a timed-out run
        // leaves no socket behind.
        let _conn = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let req = self.request(url, method, body);
        let sent = Instant::now();
        let resp = sender.send_request(req).await.map_err(hyper_failure)?;
        let first = first_byte.get().copied().unwrap_or_else(Instant::now);
        rec.add(Phase::FirstByte, first.saturating_duration_since(sent));
        let (parts, incoming) = resp.into_parts();
        let body = read_body(incoming, self.max_body).await?;
        rec.add(Phase::Transfer, first.elapsed());
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    fn request(&self, url: &Url, method: &Method, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method.clone();
        *req.uri_mut() = url[Position::BeforePath..Position::AfterQuery]
            .parse()
            .unwrap_or_else(|_| "/".parse().expect("valid uri"));
        let h = req.headers_mut();
        if let Ok(host) = HeaderValue::from_str(&url[Position::BeforeHost..Position::AfterPort]) {
            h.insert(HOST, host);
        }
        h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        // Credentials (Authorization, Cookie, API keys: every secret header)
        // go only to the configured origin, as curl and browsers do: not to
        // another scheme, host or port a redirect names, so never over a
        // downgrade to plain http either.
        let same_origin = url.scheme() == self.url.scheme()
            && url.host_str() == self.url.host_str()
            && url.port_or_known_default() == self.url.port_or_known_default();
        for (k, v) in &self.headers {
            if same_origin || !is_secret_header(k.as_str()) {
                h.insert(k, v.clone());
            }
        }
        req
    }

    fn check(&self, r: &Response, rec: &Recorder) -> Result<(), Failure> {
        let e = &self.expect;
        let fail = |reason, detail: String| Err(Failure::new(reason, detail));
        if !e.status.contains(r.status.as_u16()) {
            return fail(Reason::Status, format!("status {}", r.status.as_u16()));
        }
        for (name, re) in &e.headers {
            let value = r.headers.get(name).and_then(|v| v.to_str().ok());
            if !value.is_some_and(|v| re.is_match(v)) {
                return fail(Reason::Assertion, format!("header {name} does not match"));
            }
        }
        let text = String::from_utf8_lossy(&r.body);
        if e.body_regex.as_ref().is_some_and(|re| !re.is_match(&text)) {
            return fail(Reason::Assertion, "body does not match body_regex".into());
        }
        if e.body_not_regex
            .as_ref()
            .is_some_and(|re| re.is_match(&text))
        {
            return fail(Reason::Assertion, "body matches body_not_regex".into());
        }
        if !e.json.is_empty() {
            let doc: serde_json::Value = serde_json::from_slice(&r.body).map_err(|err| {
                Failure::new(Reason::Assertion, format!("body is not JSON: {err}"))
            })?;
            for check in &e.json {
                check
                    .check(&doc)
                    .map_err(|d| Failure::new(Reason::Assertion, d))?;
            }
        }
        let took = rec.timings.start.elapsed();
        if e.max_latency.is_some_and(|max| took > max) {
            return fail(Reason::Latency, format!("took {took:?}"));
        }
        Ok(())
    }
}

fn parse_url(raw: &str, cx: &mut BuildCx) -> Option<Url> {
    let url = match Url::parse(raw) {
        Ok(u) => u,
        Err(e) => {
            // The url crate's messages never echo the input, so no secret leaks.
            cx.problem(format!("invalid URL: {e}"));
            return None;
        }
    };
    for secret in url_secrets(&url) {
        cx.redactor.add(&secret);
    }
    if !matches!(url.scheme(), "http" | "https") {
        cx.problem(format!("scheme `{}` is not http or https", url.scheme()));
        return None;
    }
    if url.host_str().is_none_or(str::is_empty) {
        cx.problem("the URL has no host");
        return None;
    }
    Some(url)
}

/// Decodes `%XX` escapes in URL user info.
fn percent_decode(s: &str) -> Result<String, std::str::Utf8Error> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
}

fn build_headers(cfg: &std::collections::BTreeMap<String, String>, cx: &mut BuildCx) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in cfg {
        let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
            cx.problem_at(k, "not a valid header name");
            continue;
        };
        if is_secret_header(k) {
            cx.redactor.add(v);
            // `Bearer <token>`: the token alone may show up in error text.
            if let Some((_, token)) = v.rsplit_once(' ') {
                cx.redactor.add(token);
            }
        }
        match HeaderValue::from_str(v) {
            Ok(mut value) => {
                value.set_sensitive(is_secret_header(k));
                map.insert(name, value);
            }
            Err(_) => cx.problem_at(k, "not a valid header value"),
        }
    }
    map
}

/// `http://user:pass@host/` sends Basic auth, unless a header already sets it.
fn add_basic_auth(url: &Url, headers: &mut HeaderMap) {
    if url.username().is_empty() || headers.contains_key(AUTHORIZATION) {
        return;
    }
    let user = percent_decode(url.username()).unwrap_or_default();
    let pass = url
        .password()
        .map(|p| percent_decode(p).unwrap_or_default())
        .unwrap_or_default();
    let token = base64(format!("{user}:{pass}").as_bytes());
    if let Ok(mut v) = HeaderValue::from_str(&format!("Basic {token}")) {
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
}

fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn build_expect(cfg: &HttpExpect, cx: &mut BuildCx) -> Option<Expect> {
    cx.checked(|cx| {
        let status = StatusSet::parse(&cfg.status, &mut cx.key("status"));
        let body_regex = regex(&cfg.body_regex, &mut cx.key("body_regex"));
        let body_not_regex = regex(&cfg.body_not_regex, &mut cx.key("body_not_regex"));
        let mut headers = Vec::new();
        let mut headers_cx = cx.key("headers");
        for (k, v) in &cfg.headers {
            let mut header_cx = headers_cx.key(k);
            let name = HeaderName::from_bytes(k.as_bytes());
            match (name, regex(&Some(v.clone()), &mut header_cx)) {
                (Ok(n), Some(re)) => headers.push((n, re)),
                (Err(_), _) => header_cx.problem("not a valid header name"),
                _ => {}
            }
        }
        let mut json_cx = cx.key("json");
        let json = cfg
            .json
            .iter()
            .enumerate()
            .filter_map(|(i, j)| JsonCheck::build(j, &mut json_cx.index(i)))
            .collect();
        Some(Expect {
            status,
            body_regex,
            body_not_regex,
            headers,
            json,
            max_latency: cfg.max_latency.map(|d| d.0),
        })
    })
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

async fn read_body(mut body: Incoming, max: u64) -> Result<Bytes, Failure> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(hyper_failure)?;
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > max {
                return Err(Failure::new(
                    Reason::Protocol,
                    format!("body larger than max_body_bytes ({max})"),
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Maps hyper's errors to reasons; garbage on the wire is `protocol`, a
/// connection that ends early is `reset`.
fn hyper_failure(e: hyper::Error) -> Failure {
    let reason = if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        Reason::Protocol
    } else if let Some(io) = io_source(&e) {
        io_reason(io)
    } else if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        Reason::Reset
    } else if e.is_timeout() {
        Reason::Timeout
    } else {
        Reason::Protocol
    };
    Failure::new(reason, format!("http: {e}"))
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Notes when the first response byte arrives.
struct FirstByte {
    inner: Box<dyn Io>,
    at: Arc<OnceLock<Instant>>,
}

impl AsyncRead for FirstByte {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let _ = self.at.set(Instant::now());
        }
        res
    }
}

impl AsyncWrite for FirstByte {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Aborts a task (a connection's) when the run that owns it ends or is dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Document;
    use crate::config::Problems;
    use crate::redact::Redactor;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }

    fn build(yaml: &str) -> (Option<HttpProbe>, Problems, Redactor) {
        let doc = Document::parse("t", yaml, &|_| None).unwrap();
        let mut problems = Problems::default();
        let mut redactor = Redactor::default();
        let probe = HttpProbe::build(
            doc.config.probes[0].http.as_ref().unwrap(),
            &mut BuildCx::new(&mut problems, &mut redactor),
        );
        (probe, problems, redactor)
    }

    #[test]
    fn url_passwords_become_basic_auth_and_secrets() {
        let (p, problems, redactor) =
            build("probes: [{name: a, http: {url: 'http://bob:p%40ss@127.0.0.1:1/x'}}]");
        assert!(problems.is_empty());
        let p = p.unwrap();
        assert_eq!(p.target(), "http://bob:***@127.0.0.1:1/x");
        assert!(p.headers[AUTHORIZATION].is_sensitive());
        assert_eq!(redactor.redact("p@ss and p%40ss"), "*** and ***");
    }

    #[test]
    fn secret_headers_stay_with_the_configured_origin() {
        let (p, problems, _) = build(
            "probes: [{name: a, http: {url: 'https://h.test/x', headers: {Authorization: 'Bearer t', Cookie: c, X-Api-Key: k, Proxy-Authorization: p, X-Trace: t}}}]",
        );
        assert!(problems.is_empty());
        let p = p.unwrap();
        let sent = |to: &str| {
            let req = p.request(&Url::parse(to).unwrap(), &Method::GET, Bytes::new());
            let mut names: Vec<String> = req
                .headers()
                .keys()
                .map(|k| k.to_string())
                .filter(|k| k != "host" && k != "user-agent")
                .collect();
            names.sort();
            names
        };
        let all = [
            "authorization",
            "cookie",
            "proxy-authorization",
            "x-api-key",
            "x-trace",
        ];
        assert_eq!(sent("https://h.test/y"), all);
        assert_eq!(sent("https://h.test:443/y?q"), all);
        assert_eq!(sent("https://other.test/y"), ["x-trace"]);
        assert_eq!(sent("https://h.test:8443/y"), ["x-trace"]);
        // A downgrade to plain http, even to the same host and port.
        assert_eq!(sent("http://h.test/y"), ["x-trace"]);
        assert_eq!(sent("http://h.test:443/y"), ["x-trace"]);
    }

    #[test]
    fn secret_query_values_are_masked_and_redacted() {
        let (p, problems, redactor) = build(
            "probes: [{name: a, http: {url: 'http://h/x?page=2&access_token=tok%2F123&Sig=abcdef'}}]",
        );
        assert!(problems.is_empty());
        assert_eq!(
            p.unwrap().target(),
            "http://h/x?page=2&access_token=***&Sig=***"
        );
        assert_eq!(
            redactor.redact("tok%2F123 tok/123 abcdef page"),
            "*** *** *** page"
        );
    }

    #[test]
    fn bad_fields_are_all_reported() {
        let (p, problems, _) = build(
            "probes: [{name: a, http: {url: 'ftp://x/', method: 'G T', headers: {'B@d': x}, expect: {status: [700], body_regex: '('}}}]",
        );
        assert!(p.is_none());
        let paths: Vec<String> = problems.0.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(
            paths,
            [
                "url",
                "method",
                "headers.B@d",
                "expect.status[0]",
                "expect.body_regex"
            ]
        );
    }
}
