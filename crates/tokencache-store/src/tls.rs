//! TLS to the stores (PostgreSQL with `sslmode`, Redis with `rediss://`), with rustls: the
//! server's certificate and host name are always verified, against the system's roots or a CA
//! given in the URL (`sslrootcert=PATH` for PostgreSQL, `tls_ca=PATH` for Redis).

use std::sync::Arc;

#[cfg(feature = "postgres")]
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{Result, StoreError};

/// The crypto provider this crate's TLS uses (ring). Installed as the process default too when
/// none is, because the Redis client builds its TLS configuration from the default.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have installed one meanwhile: either is fine.
        let _ = rustls::crypto::CryptoProvider::install_default((*provider).clone());
    }
    provider
}

/// The PEM certificates in `path`.
pub(crate) fn read_pem_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |reason: String| StoreError::InvalidOptions { reason };
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("cannot read the CA file {path}: {e}")))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(format!("the CA file {path} is not PEM certificates: {e}")))?;
    if certificates.is_empty() {
        return Err(bad(format!("no certificate in the CA file {path}")));
    }
    Ok(certificates)
}

/// The roots to verify a store's certificate against: the CA file's certificates when one is
/// given, else the system's. (The Redis client gathers its roots itself.)
#[cfg(feature = "postgres")]
pub(crate) fn roots(ca_file: Option<&str>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for certificate in read_pem_certificates(path)? {
                roots
                    .add(certificate)
                    .map_err(|e| StoreError::InvalidOptions {
                        reason: format!("the CA file {path}: {e}"),
                    })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for certificate in found.certs {
                let _ = roots.add(certificate);
            }
        }
    }
    Ok(roots)
}

/// A client configuration verifying servers against `roots`.
#[cfg(feature = "postgres")]
pub(crate) fn client_config(roots: RootCertStore) -> Result<rustls::ClientConfig> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::InvalidOptions {
            reason: format!("TLS: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Removes the query parameter `name` from URL `url`; returns the URL without it and its value.
pub(crate) fn take_parameter(url: &str, name: &str) -> (String, Option<String>) {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return (url.to_owned(), None);
    };
    let mut value = None;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == name {
                value = Some(v.into_owned());
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if value.is_none() {
        return (url.to_owned(), None);
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    (parsed.to_string(), value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn our_parameters_are_taken_out_of_the_url() {
        assert_eq!(
            take_parameter(
                "postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem",
                "sslrootcert"
            ),
            (
                "postgres://u@h/db?sslmode=require".to_owned(),
                Some("/ca.pem".to_owned())
            )
        );
        assert_eq!(
            take_parameter("rediss://h:1/?tls_ca=/ca.pem", "tls_ca"),
            ("rediss://h:1/".to_owned(), Some("/ca.pem".to_owned()))
        );
        assert_eq!(take_parameter("redis://h:1/", "tls_ca").1, None);
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn a_ca_file_that_is_not_pem_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let e = roots(Some(path.to_str().unwrap())).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
    }
}
