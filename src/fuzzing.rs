//! Entry points for the fuzz targets in `fuzz/` and for `tests/fuzz_corpus.rs`,
//! which replays the kept corpus on stable. Each takes raw bytes, runs them
//! through the same code the sidecar runs, and panics only on a defect: a
//! parser panic, or a broken invariant checked here.
//!
//! Not part of the crate's API (hidden from docs); thin wrappers so that the
//! parsers themselves stay `pub(crate)`.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::Document;
use crate::load::client::{Conn, Reply, Request};
use crate::load::thresholds::Rule;
use crate::plan::Plan;

/// A value the config target's environment holds under a secret-looking
/// name: it must never appear in an error unless the file itself spells it.
const SECRET: &str = "fz-secret-7f3a9c";

fn env(name: &str) -> Option<String> {
    match name {
        "FUZZ_TOKEN" => Some(SECRET.into()),
        "PORT" => Some("8080".into()),
        "HOST" => Some("127.0.0.1".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// The `check-config` path: YAML, `${VAR}` substitution, deserializing,
/// compiling every section, and the printed errors.
pub fn config(data: &[u8]) {
    // `Document::load` reads the file as UTF-8 and rejects anything else.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let result = Document::parse("fuzz.yaml", text, &env).and_then(Plan::from_document);
    if let Err(errors) = result {
        let shown = errors.to_string();
        assert!(!shown.is_empty(), "a rejected config must say why");
        assert!(
            text.contains(SECRET) || !shown.contains(SECRET),
            "an env secret leaked into the errors:\n{shown}"
        );
    }
}

/// The threshold and abort-rule grammar. A rule that parses prints as its
/// own expression and parses again to the same rule.
pub fn threshold(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rule) = Rule::parse(text) else {
        return;
    };
    assert!(
        rule.value.is_finite() && rule.value >= 0.0,
        "`{text}` was accepted with the value {}",
        rule.value
    );
    let shown = rule.to_string();
    let again = Rule::parse(&shown).unwrap_or_else(|e| panic!("`{shown}` does not reparse: {e}"));
    assert_eq!(again, rule, "`{shown}` reparses to another rule");
    // `--time-scale` (0 < factor <= 1) stretches windows.
    for factor in [1e-6, 0.5, 1.0] {
        let _ = rule.clone().stretched(factor);
    }
}

/// The load client's response parser. The first byte sets how many bytes
/// each read returns (1..=256, so heads and chunk lines arrive split); the
/// rest is what the server sends. Up to 8 responses are read on the
/// connection while it stays reusable; the request is a GET, or a HEAD when
/// the first byte is odd.
pub fn load_response(data: &[u8]) {
    let Some((&knob, rest)) = data.split_first() else {
        return;
    };
    let method = if knob & 1 == 1 { "HEAD" } else { "GET" };
    let url = url::Url::parse("http://127.0.0.1:9/fuzz").expect("a fixed URL");
    let req = Request::render(
        &url,
        method,
        &http::HeaderMap::new(),
        b"",
        crate::probes::assert::StatusSet::success(),
        None,
    )
    .expect("a plain http request renders");
    let server = Canned {
        data: rest.to_vec(),
        at: 0,
        step: 1 + knob as usize,
    };
    let mut conn = Conn::over(&req, server);
    block_on(async {
        for _ in 0..8 {
            match conn.exchange(&req).await {
                Ok(Reply::Ok { reuse: true } | Reply::Status { reuse: true }) => {}
                _ => break,
            }
        }
    });
}

/// The exposition conversions: OpenMetrics text to Prometheus text 0.0.4
/// (what `/metrics` serves) and to an OTLP export request, encoded.
pub fn exposition(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::telemetry::openmetrics_to_prometheus(text);
    let times = crate::otlp::convert::Times {
        start_unix_nano: 1,
        now_unix_nano: 2,
    };
    let resource = [("service.name".to_string(), "fuzz".to_string())];
    let request = crate::otlp::convert::request(text, &resource, times);
    let _ = prost::Message::encode_to_vec(&request);
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
}

/// Runs `f` on this thread's runtime (built once: the targets run millions
/// of inputs).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(f))
}

/// A server that sends canned bytes `step` at a time, then closes; what the
/// client writes is dropped.
struct Canned {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl AsyncRead for Canned {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self
            .step
            .min(buf.remaining())
            .min(self.data.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Canned {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
