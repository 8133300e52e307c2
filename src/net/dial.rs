//! A connector that times name resolution and TCP connect itself, so the
//! `dns` and `connect` phases are measured rather than estimated.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use super::{Failure, Phase, Reason, Timings};

/// Resolves `host` (timed as `dns`), then connects to each address in turn
/// (timed as `connect`) until one answers.
pub(crate) async fn dial(host: &str, port: u16, rec: &mut Timings) -> Result<TcpStream, Failure> {
    let addrs = rec.time(Phase::Dns, resolve(host, port)).await?;
    let mut last = None;
    for addr in addrs {
        match rec.time(Phase::Connect, TcpStream::connect(addr)).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.expect("resolve returns at least one address");
    Err(Failure::new(io_reason(&e), format!("connect: {e}")))
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Failure> {
    // URL hosts keep their brackets for IPv6 literals.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| Failure::new(Reason::Dns, format!("resolve {bare}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Failure::new(
            Reason::Dns,
            format!("{bare} has no addresses"),
        ));
    }
    Ok(addrs)
}

/// Maps an I/O error to a reason.
pub(crate) fn io_reason(e: &io::Error) -> Reason {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => Reason::Refused,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
            Reason::Reset
        }
        HostUnreachable | NetworkUnreachable | AddrNotAvailable => Reason::Unreachable,
        TimedOut => Reason::Timeout,
        InvalidData => Reason::Protocol,
        _ => Reason::Io,
    }
}

/// The first I/O error in an error's source chain.
pub(crate) fn io_source<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut cur = e.source();
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// Splits `host:port` or `[v6]:port`.
pub(crate) fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("`{address}` needs a port (host:port)"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port number"))?;
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("write IPv6 addresses in brackets: [::1]:port".into());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_addresses() {
        assert_eq!(split_host_port("db:5432").unwrap(), ("db".into(), 5432));
        assert_eq!(split_host_port("[::1]:80").unwrap(), ("[::1]".into(), 80));
        assert!(split_host_port("db").is_err());
        assert!(split_host_port("::1:80").is_err());
        assert!(split_host_port("db:http").is_err());
    }

    #[tokio::test]
    async fn refused_is_classified() {
        // Bind then drop, so nothing listens on the port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut rec = Timings::default();
        let err = dial("127.0.0.1", port, &mut rec).await.unwrap_err();
        assert_eq!(err.reason, Reason::Refused);
        assert!(rec.phase(Phase::Dns).is_some());
        assert!(rec.phase(Phase::Connect).is_some());
    }
}
