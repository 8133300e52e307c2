//! Throwaway certificates for the demo target and the tests: a CA and a leaf
//! it signs, so verification with `ca_file` works as it would in production.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA (as PEM, for `ca_file`) and a leaf certificate with its key.
pub struct Pki {
    pub ca_pem: String,
    pub(crate) leaf: CertificateDer<'static>,
    pub(crate) key: PrivateKeyDer<'static>,
}

/// When the leaf is valid.
#[derive(Clone, Copy, Debug)]
pub enum Validity {
    /// From last year until the start of next year.
    Current,
    /// Expired at the start of last year.
    Expired,
}

pub fn issue(names: &[&str], validity: Validity) -> Pki {
    let year = current_year();
    let ca_key = KeyPair::generate().expect("key generation");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.not_before = rcgen::date_time_ymd(year - 3, 1, 1);
    ca.not_after = rcgen::date_time_ymd(year + 5, 1, 1);
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate().expect("key generation");
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut leaf = CertificateParams::new(names).expect("leaf params");
    let (from, to) = match validity {
        Validity::Current => (year - 1, year + 1),
        Validity::Expired => (year - 2, year - 1),
    };
    leaf.not_before = rcgen::date_time_ymd(from, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(to, 1, 1);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf cert");
    Pki {
        ca_pem: ca_cert.pem(),
        leaf: leaf_cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

impl Pki {
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf.clone()], self.key.clone_key())
            .expect("valid certificate and key");
        Arc::new(config)
    }
}

fn current_year() -> i32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    1970 + (secs / 31_556_952) as i32
}
