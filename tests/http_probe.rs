//! HTTP and TCP probes against real servers: nginx for the happy paths and
//! in-process servers for the faults. Every failing case asserts the reason
//! and that the run ended within its timeout + 200 ms.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use sidewatch::cli::demo::certs::Validity;
use sidewatch::net::{Phase, Reason};
use sidewatch::probes::Outcome;

async fn run_one(yaml: &str) -> (Outcome, Duration) {
    let plan = plan(yaml);
    let probe = plan.probes[0].clone();
    let t = Instant::now();
    let outcome = probe.run().await;
    let took = t.elapsed();
    assert!(
        took <= probe.timeout + Duration::from_millis(200),
        "run took {took:?}, timeout {:?}",
        probe.timeout
    );
    (outcome, took)
}

/// A run of an HTTP probe of a path on nginx, with `extra` config lines.
async fn at_nginx(path: &str, extra: &str) -> Outcome {
    run_one(&http(&format!("{}{path}", nginx()), extra)).await.0
}

/// A run of an HTTP probe of a [`scripted_server`].
async fn scripted(reply: &'static [u8], reset: bool) -> Outcome {
    let addr = scripted_server(reply, reset).await;
    run_one(&http(&format!("http://{addr}/"), "")).await.0
}

fn http(url: &str, extra: &str) -> String {
    format!("probes:\n  - name: p\n    timeout: 1s\n    interval: 5s\n    http:\n      url: \"{url}\"\n{extra}")
}

#[tokio::test]
async fn nginx_health_succeeds_with_every_phase_measured() {
    let o = at_nginx(
        "/health",
        "      expect: {status: [200], body_regex: '^ok'}\n",
    )
    .await;
    assert!(o.success(), "{:?}", o.result);
    assert_eq!(o.recorder.http_status, Some(200));
    for phase in [
        Phase::Dns,
        Phase::Connect,
        Phase::FirstByte,
        Phase::Transfer,
    ] {
        assert!(o.recorder.phase(phase).is_some(), "{phase:?} missing");
    }
    assert!(o.recorder.phase(Phase::Tls).is_none());
    let sum: Duration = [
        Phase::Dns,
        Phase::Connect,
        Phase::FirstByte,
        Phase::Transfer,
    ]
    .iter()
    .map(|&p| o.recorder.phase(p).unwrap())
    .sum();
    assert!(sum <= o.total, "phases {sum:?} exceed total {:?}", o.total);
}

#[tokio::test]
async fn wrong_status_fails_with_status() {
    let o = at_nginx("/teapot", "").await;
    assert_eq!(o.reason(), Some(Reason::Status));
    assert_eq!(o.recorder.http_status, Some(418));
}

#[tokio::test]
async fn body_and_json_assertions() {
    let url = format!("{}/data.json", nginx());
    let ok = "      expect:\n        json:\n          - {path: status, equals: ok}\n          - {path: /items/0/id, equals: '7'}\n          - {path: 'items[0].name', matches: '^sev'}\n";
    let (o, _) = run_one(&http(&url, ok)).await;
    assert!(o.success(), "{:?}", o.result);
    let bad = "      expect:\n        json: [{path: count, equals: '4'}]\n";
    let (o, _) = run_one(&http(&url, bad)).await;
    assert_eq!(o.reason(), Some(Reason::Assertion));
    let (o, _) = run_one(&http(&url, "      expect: {body_not_regex: seven}\n")).await;
    assert_eq!(o.reason(), Some(Reason::Assertion));
}

#[tokio::test]
async fn redirects_are_followed_and_bounded() {
    let o = at_nginx("/redirect", "").await;
    assert!(o.success(), "{:?}", o.result);
    assert_eq!(o.recorder.http_status, Some(200));
    let o = at_nginx(
        "/redirect",
        "      follow_redirects: false\n      expect: {status: [302]}\n",
    )
    .await;
    assert!(o.success(), "{:?}", o.result);
    let o = at_nginx("/loop", "      max_redirects: 3\n").await;
    assert_eq!(o.reason(), Some(Reason::Protocol));
}

#[tokio::test]
async fn oversized_body_fails_with_protocol() {
    let o = at_nginx("/big.bin", "      max_body_bytes: 1000\n").await;
    assert_eq!(o.reason(), Some(Reason::Protocol));
}

#[tokio::test]
async fn server_that_never_answers_times_out_on_time() {
    let addr = hanging_server().await;
    let (o, took) = run_one(&http(&format!("http://{addr}/"), "")).await;
    assert_eq!(o.reason(), Some(Reason::Timeout));
    assert!(took >= Duration::from_millis(990), "{took:?}");
    assert!(o.recorder.phase(Phase::Connect).is_some());
    assert!(o.recorder.phase(Phase::FirstByte).is_none());
}

#[tokio::test]
async fn reset_mid_body_fails_with_reset() {
    let head: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial body";
    let o = scripted(head, true).await;
    assert_eq!(o.reason(), Some(Reason::Reset), "{:?}", o.result);
}

#[tokio::test]
async fn closed_mid_body_fails_with_reset() {
    let head: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial body";
    let o = scripted(head, false).await;
    assert_eq!(o.reason(), Some(Reason::Reset), "{:?}", o.result);
}

#[tokio::test]
async fn garbage_status_line_fails_with_protocol() {
    let o = scripted(b"HTTP/1.1 abc not-a-status\r\n\r\n", false).await;
    assert_eq!(o.reason(), Some(Reason::Protocol), "{:?}", o.result);
    let o = scripted(b"SSH-2.0-OpenSSH_9.2\r\n", false).await;
    assert_eq!(o.reason(), Some(Reason::Protocol), "{:?}", o.result);
}

#[tokio::test]
async fn refused_connection() {
    let (o, _) = run_one(&http(&format!("http://127.0.0.1:{}/", closed_port()), "")).await;
    assert_eq!(o.reason(), Some(Reason::Refused));
}

#[tokio::test]
async fn expired_certificate_fails_tls_unless_verification_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, ca) = tls_server(Validity::Expired, dir.path()).await;
    let url = format!("https://localhost:{}/", addr.port());
    let verify = format!("      tls: {{ca_file: '{}'}}\n", ca.display());
    let (o, _) = run_one(&http(&url, &verify)).await;
    assert_eq!(o.reason(), Some(Reason::Tls), "{:?}", o.result);
    assert!(o.recorder.phase(Phase::Tls).is_some());

    let (o, _) = run_one(&http(&url, "      tls: {insecure_skip_verify: true}\n")).await;
    assert!(o.success(), "{:?}", o.result);
    let expiry = o.recorder.timings.tls_not_after.expect("expiry recorded");
    assert!(
        expiry < SystemTime::now(),
        "an expired certificate's notAfter is in the past"
    );
}

#[tokio::test]
async fn valid_certificate_with_ca_file_succeeds_and_exports_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, ca) = tls_server(Validity::Current, dir.path()).await;
    let url = format!("https://localhost:{}/", addr.port());
    let (o, _) = run_one(&http(
        &url,
        &format!("      tls: {{ca_file: '{}'}}\n", ca.display()),
    ))
    .await;
    assert!(o.success(), "{:?}", o.result);
    assert!(o.recorder.phase(Phase::Tls).is_some());
    assert!(o.recorder.timings.tls_not_after.unwrap() > SystemTime::now());
    // Without the CA the same server is untrusted.
    let (o, _) = run_one(&http(&url, "")).await;
    assert_eq!(o.reason(), Some(Reason::Tls));
}

/// Like blackbox_exporter's `probe_ssl_earliest_cert_expiry`, the expiry is
/// that of the final response's connection: none when a redirect ends on
/// plain http.
#[tokio::test]
async fn the_certificate_expiry_is_the_final_hops() {
    let dir = tempfile::tempdir().unwrap();
    let reply = format!(
        "HTTP/1.1 302 Found\r\nlocation: {}/health\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        nginx()
    );
    let reply: &'static [u8] = Box::leak(reply.into_bytes().into_boxed_slice());
    let (addr, ca) = tls_server_with(Validity::Current, dir.path(), reply).await;
    let url = format!("https://localhost:{}/", addr.port());
    let tls = format!("      tls: {{ca_file: '{}'}}\n", ca.display());
    let (o, _) = run_one(&http(&url, &tls)).await;
    assert!(o.success(), "{:?}", o.result);
    assert!(o.recorder.phase(Phase::Tls).is_some());
    assert_eq!(o.recorder.http_status, Some(200));
    assert_eq!(o.recorder.timings.tls_not_after, None);
}

#[tokio::test]
async fn method_headers_body_and_url_credentials_are_sent() {
    let (addr, seen) = recording_server().await;
    let url = format!("http://bob:pw%21@{addr}/submit?x=1");
    let extra = "      method: post\n      headers: {X-Trace: abc}\n      body: '{\"k\":1}'\n";
    let (o, _) = run_one(&http(&url, extra)).await;
    assert!(o.success(), "{:?}", o.result);
    let req = seen.lock().unwrap().join("");
    assert!(req.starts_with("POST /submit?x=1 HTTP/1.1\r\n"), "{req}");
    let lower = req.to_ascii_lowercase();
    assert!(lower.contains("x-trace: abc"), "{req}");
    assert!(lower.contains("authorization: basic ym9ionb3iq=="), "{req}"); // bob:pw!
    assert!(lower.contains("content-length: 7"), "{req}");
    assert!(req.ends_with("{\"k\":1}"), "{req}");
}

#[tokio::test]
async fn redirects_to_another_origin_carry_no_secret_headers() {
    let (b, at_b) = recording_server().await;
    let reply = format!(
        "HTTP/1.1 302 Found\r\nlocation: http://{b}/landing\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    let (a, at_a) = recording_server_with(Box::leak(reply.into_bytes().into_boxed_slice())).await;
    let extra = "      headers: {Authorization: 'Bearer tok-abc', Cookie: 'sid=cookie-abc', X-Api-Key: key-abc, Proxy-Authorization: 'Basic cHJveHk=', X-Trace: trace-1}\n";
    let (o, _) = run_one(&http(&format!("http://{a}/start"), extra)).await;
    assert!(o.success(), "{:?}", o.result);
    let to_a = at_a.lock().unwrap().join("").to_ascii_lowercase();
    for h in [
        "authorization: bearer tok-abc",
        "cookie: sid=cookie-abc",
        "x-api-key: key-abc",
        "proxy-authorization: basic",
        "x-trace: trace-1",
    ] {
        assert!(to_a.contains(h), "the configured origin gets {h}: {to_a}");
    }
    let to_b = at_b.lock().unwrap().join("").to_ascii_lowercase();
    assert!(to_b.starts_with("get /landing http/1.1"), "{to_b}");
    assert!(to_b.contains("x-trace: trace-1"), "{to_b}");
    for h in ["authorization", "cookie", "x-api-key", "tok-abc", "key-abc"] {
        assert!(!to_b.contains(h), "another origin gets {h}: {to_b}");
    }
}

#[tokio::test]
async fn max_latency_fails_with_latency() {
    let o = at_nginx("/health", "      expect: {max_latency: 1us}\n").await;
    assert_eq!(o.reason(), Some(Reason::Latency));
}

fn tcp(addr: &str, extra: &str) -> String {
    format!("probes:\n  - name: t\n    timeout: 1s\n    interval: 5s\n    tcp:\n      address: \"{addr}\"\n{extra}")
}

#[tokio::test]
async fn tcp_connect_send_and_expect() {
    let host = nginx().trim_start_matches("http://").to_string();
    let (o, _) = run_one(&tcp(&host, "")).await;
    assert!(o.success(), "{:?}", o.result);
    let exchange =
        "      send: 'GET /health HTTP/1.0\\r\\n\\r\\n'\n      expect: '^HTTP/1\\.1 200'\n";
    let (o, _) = run_one(&tcp(&host, exchange)).await;
    assert!(o.success(), "{:?}", o.result);
    assert!(o.recorder.phase(Phase::FirstByte).is_some());
    let (o, _) = run_one(&tcp(
        &host,
        "      send: 'GET /health HTTP/1.0\\r\\n\\r\\n'\n      expect: '^SSH'\n",
    ))
    .await;
    assert_eq!(o.reason(), Some(Reason::Assertion));
    let (o, _) = run_one(&tcp(&format!("127.0.0.1:{}", closed_port()), "")).await;
    assert_eq!(o.reason(), Some(Reason::Refused));
    let hang = hanging_server().await;
    let (o, _) = run_one(&tcp(&hang.to_string(), "      expect: x\n")).await;
    assert_eq!(o.reason(), Some(Reason::Timeout));
}
