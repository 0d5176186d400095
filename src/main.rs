//! The `deployhook` binary: parse the command line, run the command, turn failure into
//! an exit code (0 ok, 1 failure, 2 usage) with the cause on stderr.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use deployhook::cli::{ApiArgs, Cli, Command};
use deployhook::config::{self, Loaded};
use deployhook::ctl;
use deployhook::runner;
use deployhook::server::Application;
use deployhook::store::Store;
use deployhook::worker::Worker;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => serve(&config),
        Command::Generate { out } => deployhook::assets::main(&out),
        Command::SandboxExec { args } => deployhook::runner::launcher::main(args),
        Command::Jobs { api, hook, state } => ctl(&api, |t, out| {
            ctl::jobs(t, hook.as_deref(), state.as_deref(), out)
        }),
        Command::Logs { api, job, follow } => ctl(&api, |t, out| ctl::logs(t, job, follow, out)),
        Command::Deploy {
            api,
            hook,
            git_ref,
            sha,
        } => ctl(&api, |t, out| {
            ctl::deploy(t, &hook, &git_ref, sha.as_deref(), out)
        }),
        Command::Cancel { api, job } => ctl(&api, |t, out| ctl::cancel(t, job, out)),
    }
}

fn ctl(
    api: &ApiArgs,
    run: impl FnOnce(&ctl::Target, &mut dyn std::io::Write) -> Result<(), ctl::CtlError>,
) -> ExitCode {
    let result = ctl::Target::new(&api.url, api.token_file.as_deref())
        .and_then(|t| run(&t, &mut std::io::stdout().lock()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deployhook: {e}");
            ExitCode::FAILURE
        }
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
    // A remote that stops answering must fail the fetch, not hang a worker thread.
    if let Err(e) =
        deployhook::git::set_network_timeouts(Duration::from_secs(30), Duration::from_secs(120))
    {
        tracing::warn!("cannot set git network timeouts: {e}");
    }
    if let Err(e) = runner::become_subreaper() {
        tracing::warn!(
            "cannot become a child subreaper ({e}); orphaned deploy processes will be reaped by init instead"
        );
    }
    tracing::info!("sandbox: {}", runner::sandbox_support());
    let config = Arc::new(config);
    let store = match Store::open(&config.server.state_dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let launcher = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("cannot find the deployhook binary to supervise commands with: {e}");
            return ExitCode::FAILURE;
        }
    };
    let worker = Worker::new(Arc::clone(&config), store.clone(), launcher);
    let app = match Application::build(
        Arc::clone(&config),
        store.clone(),
        worker.handle(),
        worker.git(),
    ) {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot listen on {}: {e}", config.server.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        addr = %app.local_addr(),
        hooks = config.hooks.len(),
        state = %store.path().display(),
        "listening on {}",
        app.local_addr()
    );
    let result = actix_web::rt::System::new().block_on(async move {
        let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
        let worker = actix_web::rt::spawn(worker.run(jobs_stopped));
        let server = app.handle();
        actix_web::rt::spawn(async move {
            wait_for_stop_signal().await;
            tracing::info!("stopping: finishing requests in flight, interrupting running jobs");
            let _ = stop_jobs.send(true);
            server.stop(true).await;
        });
        let result = app.run().await;
        let _ = worker.await;
        result
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
