//! HTTPS with rustls: loads the PEM certificate chain and key, and swaps them on reload
//! without dropping the listener (the resolver is asked for the certificate per handshake).

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use std::path::PathBuf;

/// Where the certificate chain and its private key are (`[server.tls]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Reads and checks the certificate chain and private key.
pub fn load(tls: &Tls) -> Result<Arc<CertifiedKey>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(|e| format!("cannot read certificate {}: {e}", tls.cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "certificate {} is not valid PEM: {e}",
                tls.cert_file.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate",
            tls.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| {
        format!(
            "cannot read a private key from {}: {e}",
            tls.key_file.display()
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("private key {} cannot be used: {e}", tls.key_file.display()))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "{} and {} do not belong together: {e}",
            tls.cert_file.display(),
            tls.key_file.display()
        )
    })?;
    Ok(Arc::new(certified))
}

/// The certificate currently served; `replace` swaps it for new handshakes.
pub struct ReloadableCert(RwLock<Arc<CertifiedKey>>);

impl ReloadableCert {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<ReloadableCert> {
        Arc::new(ReloadableCert(RwLock::new(key)))
    }

    pub fn replace(&self, key: Arc<CertifiedKey>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = key;
    }
}

impl fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReloadableCert")
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

/// A rustls server config that asks `cert` for the certificate at every handshake.
pub fn server_config(cert: Arc<ReloadableCert>) -> rustls::ServerConfig {
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(cert)
}
