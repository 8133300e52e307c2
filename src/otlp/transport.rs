//! Sends one encoded export request over OTLP/HTTP (protobuf) or OTLP/gRPC,
//! on a fresh connection each time: exports are rare (every interval), and a
//! fresh connection cannot be left half-broken by a receiver restart.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use url::{Position, Url};

use crate::config::OtlpProtocol;
use crate::net::{dial, tls, Timings};

crate::telemetry::label_enum! {
    /// Why an export failed; the `reason` label of the failure counter.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub(crate) enum Failure {
        /// No connection (DNS, refused, unreachable, TLS).
        Unreachable => "unreachable",
        /// No answer within the timeout.
        Timeout => "timeout",
        /// The receiver answered with a retryable status (429, 502-504; gRPC
        /// UNAVAILABLE, RESOURCE_EXHAUSTED, ...).
        Retryable => "retryable",
        /// The receiver refused the data (other 4xx/5xx; other gRPC codes). The
        /// batch is dropped: sending it again would be refused again.
        Rejected => "rejected",
        /// The exchange broke mid-way or the answer was not HTTP/gRPC.
        Protocol => "protocol",
    }
}

/// Where and how to send.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) url: Url,
    pub(crate) protocol: OtlpProtocol,
    pub(crate) headers: HeaderMap,
    pub(crate) timeout: Duration,
    pub(crate) tls: Arc<ClientConfig>,
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

const GRPC_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

impl Target {
    pub(crate) async fn send(&self, body: Bytes) -> Result<(), Failure> {
        tokio::time::timeout(self.timeout, self.exchange(body))
            .await
            .unwrap_or(Err(Failure::Timeout))
    }

    async fn connect(&self) -> Result<Box<dyn Io>, Failure> {
        let host = self.url.host_str().unwrap_or_default();
        let port = self.url.port_or_known_default().unwrap_or(80);
        let mut rec = Timings::default();
        let tcp = dial::dial(host, port, &mut rec)
            .await
            .map_err(|_| Failure::Unreachable)?;
        if self.url.scheme() != "https" {
            return Ok(Box::new(tcp));
        }
        let name = tls::server_name(host).map_err(|_| Failure::Unreachable)?;
        let stream = tls::handshake(&self.tls, name, tcp, &mut rec)
            .await
            .map_err(|_| Failure::Unreachable)?;
        Ok(Box::new(stream))
    }

    fn request(&self, path: &str, content_type: &'static str, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = http::Method::POST;
        // HTTP/2 derives :scheme and :authority from an absolute URI; HTTP/1
        // wants the origin form.
        let uri = match self.protocol {
            OtlpProtocol::Grpc => format!("{}{path}", &self.url[..Position::BeforePath]),
            OtlpProtocol::HttpProtobuf => path.to_string(),
        };
        *req.uri_mut() = uri.parse().expect("endpoint URL was validated");
        let h = req.headers_mut();
        crate::net::collector_headers(h, &self.url, content_type);
        for (k, v) in &self.headers {
            h.insert(k, v.clone());
        }
        req
    }

    async fn exchange(&self, body: Bytes) -> Result<(), Failure> {
        let io = TokioIo::new(self.connect().await?);
        match self.protocol {
            OtlpProtocol::HttpProtobuf => self.http(io, body).await,
            OtlpProtocol::Grpc => self.grpc(io, body).await,
        }
    }

    async fn http(&self, io: TokioIo<Box<dyn Io>>, body: Bytes) -> Result<(), Failure> {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|_| Failure::Protocol)?;
        let conn = tokio::spawn(conn);
        let path = match self.url.path() {
            "" | "/" => "/v1/metrics",
            p => p,
        };
        let resp = sender
            .send_request(self.request(path, "application/x-protobuf", body))
            .await
            .map_err(|_| Failure::Protocol);
        conn.abort();
        let status = resp?.status().as_u16();
        match status {
            200..=299 => Ok(()),
            429 | 502 | 503 | 504 => Err(Failure::Retryable),
            _ => Err(Failure::Rejected),
        }
    }

    async fn grpc(&self, io: TokioIo<Box<dyn Io>>, body: Bytes) -> Result<(), Failure> {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|_| Failure::Protocol)?;
        let conn = tokio::spawn(conn);
        // gRPC framing: uncompressed flag, big-endian length, message.
        let mut framed = BytesMut::with_capacity(body.len() + 5);
        framed.extend_from_slice(&[0]);
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
        framed.extend_from_slice(&body);
        let mut req = self.request(GRPC_PATH, "application/grpc", framed.freeze());
        req.headers_mut()
            .insert("te", HeaderValue::from_static("trailers"));
        let result = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|_| Failure::Protocol)?;
            if !resp.status().is_success() {
                return Err(Failure::Protocol);
            }
            // A trailers-only answer carries grpc-status in the headers.
            let mut status = grpc_status(resp.headers());
            let mut body = resp.into_body();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|_| Failure::Protocol)?;
                if let Some(t) = frame.trailers_ref() {
                    status = status.or(grpc_status(t));
                } else if let Ok(mut d) = frame.into_data() {
                    d.advance(d.remaining());
                }
            }
            match status {
                Some(0) => Ok(()),
                // UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED,
                // OUT_OF_RANGE, DATA_LOSS: the spec's retryable codes.
                Some(14 | 8 | 4 | 10 | 11 | 15) => Err(Failure::Retryable),
                Some(_) => Err(Failure::Rejected),
                None => Err(Failure::Protocol),
            }
        }
        .await;
        conn.abort();
        result
    }
}

fn grpc_status(h: &HeaderMap) -> Option<u32> {
    h.get("grpc-status")?.to_str().ok()?.parse().ok()
}
