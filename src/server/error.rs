//! Every error answer: one variant per status, always a JSON `{"error": "..."}` that says
//! what the sender should do.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "no hook named {0:?}; check the URL (hooks are served at /hooks/<id> as configured in hooks.toml)"
    )]
    UnknownHook(String),
    #[error("not found; deliveries go to POST /hooks/<id>, the API is under /api")]
    NotFound,
    #[error("{0}")]
    NotFoundWhat(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    /// The remote repository could not be asked.
    #[error("{0}")]
    BadGateway(String),
    #[error("method not allowed; deliveries are POST requests")]
    MethodNotAllowed,
    #[error(
        "body is larger than this server accepts ({limit} bytes; raise server.max_body to allow more)"
    )]
    TooLarge { limit: u64 },
    #[error("the request body did not arrive within {0} seconds")]
    RequestTimeout(u64),
    /// Not authentic.
    #[error("{0}")]
    Unauthorized(String),
    /// Authentic but unreadable, or a broken upload.
    #[error("{0}")]
    BadRequest(String),
    /// We could not record it; the sender should retry later.
    #[error("cannot record the delivery right now ({0}); retry later")]
    Unavailable(String),
    /// An API request for a `Host` that is not this daemon's (421).
    #[error(
        "this daemon does not answer API requests for host {0:?}: add it to server.allowed_hosts (or set server.public_url) if that is its name"
    )]
    MisdirectedHost(String),
    /// The hook's queue is full (`max_queued`); the sender should retry later.
    #[error(
        "{waiting} jobs already wait for hook {hook:?} (max_queued): nothing was queued; send it again later"
    )]
    QueueFull { hook: String, waiting: usize },
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::UnknownHook(_) | ApiError::NotFound | ApiError::NotFoundWhat(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::MethodNotAllowed) {
            res.insert_header((header::ALLOW, "POST"));
        }
        if matches!(self, ApiError::Unavailable(_) | ApiError::QueueFull { .. }) {
            res.insert_header((header::RETRY_AFTER, "30"));
        }
        res.json(serde_json::json!({ "error": self.to_string() }))
    }
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

pub async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
