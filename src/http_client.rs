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
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
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

/// An answer whose body is read as it arrives (a followed log).
pub struct Stream {
    pub status: u16,
    /// `Retry-After`, in seconds, when the server sent one.
    pub retry_after: Option<u64>,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Box<dyn std::io::Read + Send>,
}

/// A request's method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

fn builder(
    roots: ureq::tls::RootCerts,
) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(roots)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("deployhook/", env!("CARGO_PKG_VERSION")))
}

impl Client {
    /// A client whose every request must be answered within `timeout` in all.
    pub fn new(timeout: Duration) -> Client {
        let config = builder(ureq::tls::RootCerts::PlatformVerifier)
            .timeout_global(Some(timeout))
            .build();
        Client {
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// Like [`Client::new`], for a server whose certificate is signed by a private CA:
    /// the certificates in `ca_pem` are the only roots trusted.
    pub fn with_ca(timeout: Duration, ca_pem: &[u8]) -> Result<Client, String> {
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(ca_pem) {
            if let ureq::tls::PemItem::Certificate(c) =
                item.map_err(|e| format!("not a PEM file: {e}"))?
            {
                certs.push(c);
            }
        }
        if certs.is_empty() {
            return Err("holds no PEM certificate".to_owned());
        }
        let config = builder(ureq::tls::RootCerts::new_with_certs(&certs))
            .timeout_global(Some(timeout))
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// A client for answers that take as long as they take (a log followed until its job
    /// ends): connecting and the answer's start each get `timeout`, the body no limit.
    pub fn for_streams(timeout: Duration) -> Client {
        let config = builder(ureq::tls::RootCerts::PlatformVerifier)
            .timeout_connect(Some(timeout))
            .timeout_send_request(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .build();
        Client {
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// Sends a request and returns the answer with its body still to be read.
    pub fn open(
        &self,
        method: Method,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<Stream, ClientError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ClientError::BadUrl(url.to_owned()));
        }
        let mut req = ureq::http::Request::builder()
            .method(match method {
                Method::Get => "GET",
                Method::Post => "POST",
                Method::Put => "PUT",
                Method::Delete => "DELETE",
            })
            .uri(url);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(body.unwrap_or_default().to_vec())
            .map_err(|e| ClientError::BadUrl(format!("{url} ({e})")))?;
        let res = self
            .agent
            .run(req)
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let headers = res
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        Ok(Stream {
            status: res.status().as_u16(),
            retry_after,
            headers,
            body: Box::new(res.into_body().into_reader()),
        })
    }

    /// `POST url` with `body` and `headers`; the whole answer.
    pub fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Answer, ClientError> {
        self.open(Method::Post, url, headers, Some(body))?.read()
    }

    /// `GET url` with `headers`; the whole answer.
    pub fn get(&self, url: &str, headers: &[(String, String)]) -> Result<Answer, ClientError> {
        self.open(Method::Get, url, headers, None)?.read()
    }
}

impl Stream {
    /// The rest of the body (at most 1 MiB), as text.
    pub fn read(self) -> Result<Answer, ClientError> {
        let mut body = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(self.body, MAX_ANSWER), &mut body)
            .map_err(|e| ClientError::Transport(format!("the answer could not be read: {e}")))?;
        Ok(Answer {
            status: self.status,
            retry_after: self.retry_after,
            headers: self.headers,
            body,
        })
    }
}
