//! The HTTP front: binds the listener, routes `/hooks/{id}`, and turns each delivery's
//! outcome into a status and a JSON body. The only module that knows actix.

mod api;
mod error;
mod hooks;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};

pub use error::ApiError;

use crate::config::Config;
use crate::git::Git;
use crate::store::Store;
use crate::worker::WorkerHandle;

/// What every request handler shares.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub worker: WorkerHandle,
    pub git: Arc<Git>,
}

/// A bound, not yet running server. `main` and the tests build it the same way; tests
/// pass a listener on `127.0.0.1:0`.
pub struct Application {
    server: Server,
    addr: SocketAddr,
}

impl Application {
    /// Binds `server.listen` from the config.
    pub fn build(
        config: Arc<Config>,
        store: Store,
        worker: WorkerHandle,
        git: Arc<Git>,
    ) -> std::io::Result<Application> {
        let listener = TcpListener::bind(config.server.listen)?;
        Application::with_listener(config, store, worker, git, listener)
    }

    pub fn with_listener(
        config: Arc<Config>,
        store: Store,
        worker: WorkerHandle,
        git: Arc<Git>,
        listener: TcpListener,
    ) -> std::io::Result<Application> {
        let addr = listener.local_addr()?;
        let state = web::Data::new(AppState {
            config,
            store,
            worker,
            git,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::JsonConfig::default().error_handler(|e, _| {
                    error::ApiError::BadRequest(format!("invalid JSON body: {e}")).into()
                }))
                .configure(api::routes)
                .service(
                    web::resource("/hooks/{id}")
                        .route(web::post().to(hooks::deliver))
                        .default_service(web::to(error::method_not_allowed)),
                )
                .default_service(web::to(error::not_found))
        })
        // main handles SIGINT/SIGTERM itself and stops the server through its handle.
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Application { server, addr })
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
