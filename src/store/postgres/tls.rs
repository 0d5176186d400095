//! TLS to a PostgreSQL server over TCP, on our rustls and ring: the server's certificate
//! must chain to `ca_file`'s certificates (then only those), or else to the platform's
//! trust roots, and name the host connected to.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

/// A client configuration for `postgres_rustls`: `ca_pem` (the contents of `ca_file`),
/// or the platform's roots when `None`.
pub fn client_config(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if let Some(pem) = ca_pem {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("not a PEM certificate file: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("a certificate in it is not usable as a root: {e}"))?;
        }
        if roots.is_empty() {
            return Err("holds no PEM certificate".to_owned());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let verifier = rustls_platform_verifier::Verifier::new(provider)
            .map_err(|e| format!("cannot load the platform's trust roots: {e}"))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    postgres_rustls::set_postgresql_alpn(&mut config);
    Ok(Arc::new(config))
}
