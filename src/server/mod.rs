//! The HTTP front: binds the listener (plain or TLS), routes `/hooks/{id}`, the API and
//! the operations endpoints, and turns each outcome into a status and a JSON body. The
//! only module that knows actix.

mod api;
mod controls;
mod error;
mod hooks;
mod ops;
mod status;
mod ui;

pub use ui::UiState;
mod views;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};

pub use error::ApiError;

use crate::config::LiveConfig;
use crate::git::Git;
use crate::joblog::JobLogs;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::store::Store;
use crate::tls;
use crate::worker::WorkerHandle;

/// Whether the client asked for Server-Sent Events (`Accept: text/event-stream`).
fn wants_event_stream(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// What every request handler shares.
pub struct AppState {
    pub config: Arc<LiveConfig>,
    pub store: Store,
    pub logs: JobLogs,
    pub worker: WorkerHandle,
    pub git: Arc<Git>,
    pub metrics: Arc<Metrics>,
    pub reloader: Arc<Reloader>,
    /// The API token when the config names none (`state_dir/api-token`).
    pub api_token: crate::secret::Secret,
    /// The status links' key, read from the store on first use.
    pub status_key: tokio::sync::OnceCell<Arc<Vec<u8>>>,
    /// The dashboard's session key and login throttle.
    pub ui: ui::UiState,
}

/// A bound, not yet running server. `main` and the tests build it the same way; tests
/// pass a listener on `127.0.0.1:0`.
pub struct Application {
    server: Server,
    addr: SocketAddr,
}

impl Application {
    /// Serves `state` on `listener`, with TLS when `tls` is given.
    pub fn new(
        state: AppState,
        listener: TcpListener,
        tls: Option<Arc<tls::ReloadableCert>>,
    ) -> std::io::Result<Application> {
        let addr = listener.local_addr()?;
        let state = web::Data::new(state);
        let http = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::JsonConfig::default().error_handler(|e, _| {
                    error::ApiError::BadRequest(format!("invalid JSON body: {e}")).into()
                }))
                // First: the router tries resources in this order, each dynamic one
                // with a regex, and deliveries are most of the requests.
                .service(
                    web::resource("/hooks/{id}")
                        .route(web::post().to(hooks::deliver))
                        .default_service(web::to(error::method_not_allowed)),
                )
                .configure(api::routes)
                .configure(controls::routes)
                .configure(ui::routes)
                .configure(ops::routes)
                .configure(status::routes)
                .default_service(web::to(error::not_found))
        })
        // main handles SIGINT/SIGTERM itself and stops the server through its handle.
        .disable_signals();
        let http = match tls {
            Some(cert) => http.listen_rustls_0_23(listener, tls::server_config(cert))?,
            None => http.listen(listener)?,
        };
        Ok(Application {
            server: http.run(),
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped through a [`ServerHandle`].
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}
