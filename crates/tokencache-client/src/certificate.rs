//! Client certificates: an RS256-signed client assertion (RFC 7523) whose header names the
//! certificate by its SHA-256 thumbprint (`x5t#S256`), as Entra ID expects.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokencache::Secret;
use tokencache::json::{JsonObject, JsonValue};

use crate::error::{ClientError, Result};
use crate::pkce::random_token;

/// A certificate and its RSA private key. `Debug` shows only the thumbprint.
#[derive(Clone)]
pub struct ClientCertificate {
    key: Arc<RsaKeyPair>,
    thumbprint_s256: String,
    chain: Option<String>,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint_s256)
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// From PEM: the certificate (the first one in `certificate_pem`) and its RSA private key
    /// (PKCS#8 or PKCS#1). With `send_x5c`, the certificate is also sent in the `x5c` header
    /// (for subject-name/issuer authentication).
    pub fn from_pem(certificate_pem: &[u8], key_pem: &[u8], send_x5c: bool) -> Result<Self> {
        let bad = |what: &str, e: &dyn fmt::Display| {
            ClientError::Configuration(format!("client certificate: {what}: {e}"))
        };
        let cert = CertificateDer::from_pem_slice(certificate_pem)
            .map_err(|e| bad("no PEM certificate", &e))?;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad("no PEM private key", &e))?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => {
                return Err(ClientError::Configuration(
                    "client certificate: the private key must be RSA (PKCS#8 or PKCS#1)".into(),
                ));
            }
        }
        .map_err(|e| bad("the private key is not a usable RSA key", &e))?;
        Ok(ClientCertificate {
            key: Arc::new(key),
            thumbprint_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(cert.as_ref())),
            chain: send_x5c.then(|| STANDARD.encode(cert.as_ref())),
        })
    }

    /// The certificate's SHA-256 thumbprint, base64url (the `x5t#S256` header).
    pub fn thumbprint_s256(&self) -> &str {
        &self.thumbprint_s256
    }

    /// A signed client assertion for `audience` (the token endpoint), valid for 10 minutes.
    pub(crate) fn assertion(&self, client_id: &str, audience: &str, now: i64) -> Result<Secret> {
        let mut header = JsonObject::new();
        header.insert("alg", JsonValue::string("RS256"));
        header.insert("typ", JsonValue::string("JWT"));
        header.insert("x5t#S256", JsonValue::string(&self.thumbprint_s256));
        if let Some(x5c) = &self.chain {
            header.insert("x5c", JsonValue::Array(vec![JsonValue::string(x5c)].into()));
        }
        let number = |n: i64| JsonValue::Number(n.to_string().into());
        let mut claims = JsonObject::new();
        claims.insert("aud", JsonValue::string(audience));
        claims.insert("iss", JsonValue::string(client_id));
        claims.insert("sub", JsonValue::string(client_id));
        claims.insert("jti", JsonValue::string(&random_token(16)?));
        claims.insert("iat", number(now));
        claims.insert("nbf", number(now));
        claims.insert("exp", number(now + 600));
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_python_json(false)),
            URL_SAFE_NO_PAD.encode(claims.to_python_json(false))
        );
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| {
                ClientError::Configuration("signing the client assertion failed".into())
            })?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}
