//! TLS for probes: client configs built once per probe, a timed handshake, and
//! the leaf certificate's expiry.

use std::io::Read;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::dial::io_reason;
use super::{Failure, Phase, Reason, Timings};
use crate::config::TlsConfig;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client config for a probe's TLS section.
pub(crate) fn client_config(cfg: &TlsConfig, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if cfg.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &cfg.ca_file {
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The largest CA bundle read (Mozilla's whole bundle is about 220 KB).
const MAX_CA_FILE: u64 = 4 << 20;

/// Reads a PEM bundle. Only a regular file of bounded size: `/dev/zero`
/// would be read forever, and opening a FIFO blocks.
fn read_certs(path: &FsPath) -> Result<Vec<CertificateDer<'static>>, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE + 1).read_to_end(&mut pem))
        .map_err(cannot)?;
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(format!(
            "{} is larger than {} MiB",
            path.display(),
            MAX_CA_FILE >> 20
        ));
    }
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificates", path.display()));
    }
    Ok(certs)
}

/// Checks that a server name is usable for SNI.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|e| format!("`{name}`: {e}"))
}

/// Performs the handshake (timed as `tls`) and records the leaf's expiry.
pub(crate) async fn handshake(
    config: &Arc<ClientConfig>,
    name: ServerName<'static>,
    tcp: TcpStream,
    rec: &mut Timings,
) -> Result<TlsStream<TcpStream>, Failure> {
    let connector = TlsConnector::from(config.clone());
    let stream = rec
        .time(Phase::Tls, connector.connect(name, tcp))
        .await
        .map_err(|e| {
            // rustls reports its own errors as InvalidData; plain I/O errors
            // (a reset mid-handshake) keep their own reason.
            let reason = match io_reason(&e) {
                Reason::Io | Reason::Protocol => Reason::Tls,
                r => r,
            };
            Failure::new(reason, format!("tls handshake: {e}"))
        })?;
    let (_, conn) = stream.get_ref();
    if let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) {
        rec.tls_not_after = not_after(leaf);
    }
    Ok(stream)
}

/// The certificate's `notAfter`.
pub(crate) fn not_after(der: &CertificateDer<'_>) -> Option<SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let secs = cert.validity().not_after.timestamp();
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Accepts any certificate but still checks handshake signatures, so the
/// connection is at least with the holder of the presented key.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_expiry_from_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 5, 6);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let t = not_after(cert.der()).unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_935_792_000); // 2031-05-06T00:00:00Z
    }

    /// `ca_file: /dev/zero` (or a FIFO) hung `check-config` and a SIGHUP
    /// reload forever, reading without end.
    #[test]
    fn a_ca_file_that_is_not_a_small_regular_file_is_an_error() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let cfg = TlsConfig {
                ca_file: Some("/dev/zero".into()),
                ..Default::default()
            };
            let _ = tx.send(client_config(&cfg, &[]).map(|_| ()));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("reading /dev/zero as a CA file must not hang");
        assert!(got.unwrap_err().contains("not a regular file"));
        let big = tempfile::NamedTempFile::new().unwrap();
        big.as_file().set_len(MAX_CA_FILE + 1).unwrap();
        let cfg = TlsConfig {
            ca_file: Some(big.path().into()),
            ..Default::default()
        };
        assert!(client_config(&cfg, &[])
            .unwrap_err()
            .contains("larger than"));
    }

    #[test]
    fn missing_ca_file_is_an_error() {
        let cfg = TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        assert!(client_config(&cfg, &[])
            .unwrap_err()
            .contains("cannot read"));
    }
}
