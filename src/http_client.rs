//! Outbound HTTP: the one module that makes HTTP requests (ureq, blocking; rustls with the
//! same ring provider as the server, the platform's trust roots). Redirects are never
//! followed, every status is an answer (not an error), and every request has a deadline.
//! Callers on the async runtime use `spawn_blocking`.

use std::sync::Arc;
use std::time::Duration;

/// The most of an answer's body that is read (answers are small JSON documents).
const MAX_ANSWER: u64 = 1 << 20;

/// An HTTP client with its settings; cheap to clone.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
}

/// An answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After`, in seconds, when the server sent one.
    pub retry_after: Option<u64>,
    pub body: String,
}

/// A request that got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0} is not an http:// or https:// URL")]
    BadUrl(String),
    /// No connection, a TLS failure, a timeout, a cut answer: worth trying again.
    #[error("{0}")]
    Transport(String),
}

impl Client {
    /// A client whose every request must be answered within `timeout` in all.
    pub fn new(timeout: Duration) -> Client {
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .user_agent(concat!("deployhook/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// `POST url` with `body` and `headers`.
    pub fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Answer, ClientError> {
        check(url)?;
        let mut req = self.agent.post(url);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        answer(req.send(body))
    }

    /// `GET url` with `headers`.
    pub fn get(&self, url: &str, headers: &[(String, String)]) -> Result<Answer, ClientError> {
        check(url)?;
        let mut req = self.agent.get(url);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        answer(req.call())
    }
}

fn check(url: &str) -> Result<(), ClientError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ClientError::BadUrl(url.to_owned()))
    }
}

fn answer(
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Answer, ClientError> {
    let mut res = sent.map_err(|e| ClientError::Transport(e.to_string()))?;
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body = res
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_string()
        .map_err(|e| ClientError::Transport(format!("the answer could not be read: {e}")))?;
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}
