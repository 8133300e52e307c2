//! TCP probe: connect, then optionally send bytes and match the reply's first
//! bytes against a regex. `first_byte` runs from the end of the send to the
//! first byte received.

use std::time::Instant;

use regex::bytes::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Recorder;
use crate::config::{BuildCx, TcpConfig};
use crate::net::dial::{dial, io_reason, split_host_port};
use crate::net::{Failure, Phase, Reason};

#[derive(Debug)]
pub(crate) struct TcpProbe {
    host: String,
    port: u16,
    send: Vec<u8>,
    expect: Option<Regex>,
    max_read: usize,
}

impl TcpProbe {
    pub(crate) fn build(cfg: &TcpConfig, cx: &mut BuildCx) -> Option<TcpProbe> {
        let addr = split_host_port(&cfg.address)
            .map_err(|e| cx.problem_at("address", e))
            .ok();
        let expect = match cfg.expect.as_deref().map(Regex::new) {
            Some(Err(e)) => {
                cx.problem_at("expect", format!("invalid regex: {e}"));
                return None;
            }
            Some(Ok(re)) => Some(re),
            None => None,
        };
        if cfg.max_read_bytes == 0 {
            cx.problem_at("max_read_bytes", "must be at least 1");
            return None;
        }
        let (host, port) = addr?;
        Some(TcpProbe {
            host,
            port,
            send: unescape(cfg.send.as_deref().unwrap_or_default()),
            expect,
            max_read: cfg.max_read_bytes,
        })
    }

    pub(crate) fn host(&self) -> String {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    }

    pub(crate) fn target(&self) -> String {
        format!("tcp://{}:{}", self.host, self.port)
    }

    pub async fn run(&self, rec: &mut Recorder) -> Result<(), Failure> {
        let mut stream = dial(&self.host, self.port, &mut rec.timings).await?;
        let io_fail =
            |what: &str, e: std::io::Error| Failure::new(io_reason(&e), format!("{what}: {e}"));
        if !self.send.is_empty() {
            stream
                .write_all(&self.send)
                .await
                .map_err(|e| io_fail("send", e))?;
        }
        let Some(expect) = &self.expect else {
            return Ok(());
        };
        let sent = Instant::now();
        let mut buf = Vec::with_capacity(self.max_read.min(64 * 1024));
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| io_fail("read", e))?;
            if buf.is_empty() && n > 0 {
                rec.add(Phase::FirstByte, sent.elapsed());
            }
            let room = self.max_read - buf.len();
            buf.extend_from_slice(&chunk[..n.min(room)]);
            if expect.is_match(&buf) {
                return Ok(());
            }
            if n == 0 || buf.len() >= self.max_read {
                let why = if n == 0 {
                    "connection closed"
                } else {
                    "max_read_bytes reached"
                };
                return Err(Failure::new(
                    Reason::Assertion,
                    format!(
                        "reply does not match expect ({why} after {} bytes)",
                        buf.len()
                    ),
                ));
            }
        }
    }
}

/// Turns `\n`, `\r`, `\t`, `\0` and `\\` into their bytes.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut b = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some(other) => {
                out.push(b'\\');
                let mut b = [0; 4];
                out.extend_from_slice(other.encode_utf8(&mut b).as_bytes());
            }
            None => out.push(b'\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;
    use crate::redact::Redactor;
    use tokio::net::TcpListener;

    #[test]
    fn unescapes() {
        assert_eq!(unescape("PING\\r\\n"), b"PING\r\n");
        assert_eq!(unescape("a\\\\b\\q"), b"a\\b\\q");
    }

    fn probe(addr: &str, send: &str, expect: Option<&str>) -> TcpProbe {
        let cfg = TcpConfig {
            address: addr.into(),
            send: Some(send.into()),
            expect: expect.map(Into::into),
            max_read_bytes: 64,
        };
        TcpProbe::build(
            &cfg,
            &mut BuildCx::new(&mut Problems::default(), &mut Redactor::default()),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn send_and_expect_against_a_real_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 16];
                let n = s.read(&mut buf).await.unwrap();
                let reply: &[u8] = if &buf[..n] == b"PING\r\n" {
                    b"+PONG\r\n"
                } else {
                    b"-ERR\r\n"
                };
                s.write_all(reply).await.unwrap();
            }
        });
        let mut rec = Recorder::default();
        probe(&addr, "PING\\r\\n", Some("^\\+PONG"))
            .run(&mut rec)
            .await
            .unwrap();
        assert!(rec.phase(Phase::FirstByte).is_some());
        let mut rec = Recorder::default();
        let err = probe(&addr, "HELLO\\n", Some("^\\+PONG"))
            .run(&mut rec)
            .await
            .unwrap_err();
        assert_eq!(err.reason, Reason::Assertion);
    }
}
