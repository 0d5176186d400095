//! The HTTP front: binds the listener, routes `/hooks/{id}`, and turns each delivery's
//! outcome into a status and a JSON body. The only module that knows actix.

mod error;
mod hooks;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};

pub use error::ApiError;

use crate::config::Config;
use crate::store::Store;

/// What every request handler shares.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
}

/// A bound, not yet running server. `main` and the tests build it the same way; tests
/// pass a listener on `127.0.0.1:0`.
pub struct Application {
    server: Server,
    addr: SocketAddr,
}

impl Application {
    /// Binds `server.listen` from the config.
    pub fn build(config: Config, store: Store) -> std::io::Result<Application> {
        let listener = TcpListener::bind(config.server.listen)?;
        Application::with_listener(config, store, listener)
    }

    pub fn with_listener(
        config: Config,
        store: Store,
        listener: TcpListener,
    ) -> std::io::Result<Application> {
        let addr = listener.local_addr()?;
        let state = web::Data::new(AppState {
            config: Arc::new(config),
            store,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
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
