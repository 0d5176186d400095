//! The `deployhook` binary: parse the command line, run the command, turn failure into
//! an exit code (0 ok, 1 failure, 2 usage) with the cause on stderr.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use deployhook::cli::{Cli, Command};
use deployhook::config::{self, Loaded};
use deployhook::server::Application;
use deployhook::store::Store;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => serve(&config),
    }
}

fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(Loaded { config, warnings }) => {
            for w in &warnings {
                eprintln!("{w}");
            }
            println!(
                "{}: ok ({} hook{})",
                path.display(),
                config.hooks.len(),
                if config.hooks.len() == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(invalid) => {
            eprintln!("{invalid}");
            let errors = invalid
                .diagnostics
                .iter()
                .filter(|d| d.severity == config::Severity::Error)
                .count();
            eprintln!(
                "{}: {errors} error{}; nothing was started",
                path.display(),
                if errors == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &Path) -> ExitCode {
    init_logging();
    let Loaded { config, warnings } = match config::load(path) {
        Ok(l) => l,
        Err(invalid) => {
            for d in &invalid.diagnostics {
                tracing::error!("{d}");
            }
            return ExitCode::FAILURE;
        }
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let store = match Store::open(&config.server.state_dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let hooks = config.hooks.len();
    let app = match Application::build(config, store.clone()) {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        addr = %app.local_addr(),
        hooks,
        state = %store.path().display(),
        "listening on {}",
        app.local_addr()
    );
    let result = actix_web::rt::System::new().block_on(async move {
        let handle = app.handle();
        actix_web::rt::spawn(async move {
            wait_for_stop_signal().await;
            tracing::info!("stopping: finishing requests in flight");
            handle.stop(true).await;
        });
        app.run().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
