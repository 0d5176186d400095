//! The `deployhook` binary: parse the command line, run the command, turn failure into
//! an exit code (0 ok, 1 failure, 2 usage) with the cause on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use deployhook::cli::{Cli, Command, LogFormat};
use deployhook::config::LiveConfig;
use deployhook::config::{self, Loaded};
use deployhook::ctl;
use deployhook::joblog::JobLogs;
use deployhook::metrics::Metrics;
use deployhook::reload::Reloader;
use deployhook::runner;
use deployhook::sd_notify;
use deployhook::server::{AppState, Application};
use deployhook::store::Store;
use deployhook::tls::{self, ReloadableCert};
use deployhook::worker::{self, Worker};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match ctl::commands::run(&cli.conn, cli.command) {
        Ok(code) => return ExitCode::from(code),
        Err(local) => *local,
    };
    match command {
        Command::Check { config } => check(&config),
        Command::Serve { config, log_format } => serve(&config, log_format),
        Command::Sign {
            forge,
            secret_file,
            delivery,
        } => sign(&forge, &secret_file, delivery),
        Command::Generate { out } => deployhook::assets::main(&out),
        Command::Notify {
            action: deployhook::cli::NotifyAction::Test { name, config },
        } => notify_test(&config, &name),
        Command::Explain {
            hook,
            event,
            config,
            ..
        } => explain(&hook, &event, config.as_deref()),
        c @ Command::Trigger { .. } => trigger(cli.conn.url, c),
        Command::SandboxExec { args } => deployhook::runner::launcher::main(args),
        other => {
            eprintln!("deployhook: {other:?} is not a command of this binary");
            ExitCode::FAILURE
        }
    }
}

/// `deployhook explain HOOK < payload.json`: what each rule makes of a payload, read
/// against the config (`--config`, else ./hooks.toml, then the packaged one).
fn explain(hook: &str, event: &str, config: Option<&Path>) -> ExitCode {
    use std::io::Read;
    let path = config.map_or_else(
        || {
            let here = Path::new("hooks.toml");
            if here.exists() {
                here.to_path_buf()
            } else {
                PathBuf::from(deployhook::cli::DEFAULT_CONFIG)
            }
        },
        Path::to_path_buf,
    );
    let config = match config::load(&path) {
        Ok(Loaded { config, .. }) => config,
        Err(invalid) => {
            eprintln!("{invalid}");
            return ExitCode::FAILURE;
        }
    };
    let Some(h) = config.hook(hook) else {
        eprintln!("deployhook: {} has no hook {hook:?}", path.display());
        return ExitCode::FAILURE;
    };
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut body) {
        eprintln!("deployhook: cannot read the payload from stdin: {e}");
        return ExitCode::FAILURE;
    }
    match deployhook::explain::payload(h, event, &body) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("deployhook: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `deployhook trigger`: reads the secret and the paths, then hands over to `trigger`.
fn trigger(url: Option<String>, command: Command) -> ExitCode {
    let Some(url) = url else {
        eprintln!(
            "deployhook: trigger needs --url (or $DEPLOYHOOK_URL): the daemon's address as this job reaches it"
        );
        return ExitCode::from(1);
    };
    let Command::Trigger {
        hook,
        secret_env,
        secret_file,
        repository,
        git_ref,
        sha,
        before,
        pusher,
        paths_from,
        wait,
        timeout,
        verbose,
    } = command
    else {
        unreachable!("called for trigger only")
    };
    let secret = match (secret_env, secret_file) {
        (Some(name), _) => {
            std::env::var(&name).map_err(|_| format!("the environment variable {name} is not set"))
        }
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        (None, None) => Err("give --secret-env or --secret-file".to_owned()),
    };
    let paths = paths_from
        .map(|p| {
            std::fs::read_to_string(&p)
                .map(|t| {
                    t.lines()
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .map_err(|e| format!("cannot read {}: {e}", p.display()))
        })
        .transpose();
    let limit =
        deployhook::config::units::parse_duration(&timeout).map_err(|e| format!("--timeout: {e}"));
    match (secret, paths, limit) {
        (Ok(secret), Ok(paths), Ok(limit)) => {
            let t = deployhook::trigger::Trigger {
                url,
                hook,
                secret: deployhook::secret::Secret::new(secret),
                repository,
                git_ref,
                sha,
                before,
                pusher,
                paths,
                wait: wait.then_some(limit),
                verbose,
            };
            let exit = t.run(&mut std::io::stdout(), &mut std::io::stderr());
            ExitCode::from(exit as u8)
        }
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            eprintln!("deployhook: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sign(forge: &str, secret_file: &Path, delivery: Option<String>) -> ExitCode {
    use std::io::Read;
    let Some(forge) = deployhook::event::Forge::from_name(forge) else {
        eprintln!(
            "deployhook: unknown forge {forge:?}; one of github, gitlab, gitea, forgejo, gogs, bitbucket, generic"
        );
        return ExitCode::from(2);
    };
    let secret = match std::fs::read_to_string(secret_file) {
        Ok(s) => s.trim().to_owned(),
        Err(e) => {
            eprintln!("deployhook: cannot read {}: {e}", secret_file.display());
            return ExitCode::FAILURE;
        }
    };
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut body) {
        eprintln!("deployhook: cannot read the body from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let delivery = delivery.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("msg_{nanos:x}_{}", std::process::id())
    });
    match deployhook::sign::push_headers(forge, &secret, &body, &delivery, now) {
        Ok(headers) => {
            for (k, v) in headers {
                println!("{k}: {v}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("deployhook: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `deployhook notify test NAME`: sends a test message with the config's settings (its
/// URL and secrets, which are never printed) and prints the target's answer.
fn notify_test(path: &Path, name: &str) -> ExitCode {
    let config = match config::load(path) {
        Ok(Loaded { config, .. }) => config,
        Err(invalid) => {
            eprintln!("{invalid}");
            return ExitCode::FAILURE;
        }
    };
    match deployhook::notify::send_test(&config, name) {
        Ok(answer) => {
            // The answer is the target's text: no terminal control sequences from it.
            let body: String = answer
                .body
                .chars()
                .take(2000)
                .map(|c| {
                    if c.is_control() && c != '\n' {
                        '\u{fffd}'
                    } else {
                        c
                    }
                })
                .collect();
            println!("{name}: answered {}", answer.status);
            if !body.trim().is_empty() {
                println!("{}", body.trim_end());
            }
            if answer.delivered {
                ExitCode::SUCCESS
            } else {
                eprintln!("{name}: the message was not taken (HTTP {})", answer.status);
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e}");
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
            let user = runner::identity::CommandUser::resolve(&config.server.command_user);
            if user.is_risky() && config.uses_command_user() {
                eprintln!("{}: warning: {}", path.display(), user.describe());
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

fn serve(path: &Path, log_format: LogFormat) -> ExitCode {
    let loaded = config::load(path);
    let level = loaded
        .as_ref()
        .ok()
        .and_then(|l| l.config.server.log_level.clone());
    init_logging(log_format, level.as_deref());
    let Loaded { config, warnings } = match loaded {
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
    // Not dumpable: a process of the same user (a deploy command running as the daemon's
    // user) can then neither read /proc/<pid>/environ or mem, which hold the secrets,
    // nor ptrace the daemon.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(
            "cannot make the daemon non-dumpable ({e}); processes of its user could read its memory"
        );
    }
    if let Err(e) = runner::become_subreaper() {
        tracing::warn!(
            "cannot become a child subreaper ({e}); orphaned deploy processes will be reaped by init instead"
        );
    }
    tracing::info!("sandbox: {}", runner::sandbox_support());
    let user = runner::identity::CommandUser::resolve(&config.server.command_user);
    if user.is_risky() && config.uses_command_user() {
        tracing::warn!("{}", user.describe());
    } else {
        tracing::info!("{}", user.describe());
    }
    match start(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the store, binds, and runs the server, the worker and the reload triggers until
/// SIGTERM or SIGINT.
/// Job logs where `store` keeps them, or as files in `state_dir`.
fn open_logs(store: &Store, state_dir: &std::path::Path) -> Result<JobLogs, String> {
    match store.log_book() {
        Some(book) => JobLogs::in_store(state_dir, book),
        None => JobLogs::open(state_dir),
    }
    .map_err(|e| {
        format!(
            "cannot open the job logs' folder in {}: {e}",
            state_dir.display()
        )
    })
}

fn start(config: config::Config) -> Result<(), String> {
    let tls = match &config.server.tls {
        Some(t) => Some(ReloadableCert::new(tls::load(t)?)),
        None => None,
    };
    let listen = config.server.listen;
    let config = LiveConfig::new(config);
    let state_dir = config.get().server.state_dir.clone();
    // One runtime for everything: the PostgreSQL store's tasks start in it at open.
    let system = actix_web::rt::System::new();
    let store = open_store(&system, &config.get())?;
    let api_token = deployhook::api_token::load_or_create(&state_dir).map_err(|e| {
        format!(
            "cannot make or read the API token {}: {e}",
            state_dir.join(deployhook::api_token::FILE).display()
        )
    })?;
    if config.get().server.api_token.is_none() {
        tracing::info!(
            token_file = %state_dir.join(deployhook::api_token::FILE).display(),
            "the API and the CLI use the token in this file (server.api_token_file is not set)"
        );
    }
    let logs = open_logs(&store, &state_dir)?;
    let exe = std::env::current_exe().map_err(|e| {
        format!("cannot find the deployhook binary to supervise commands with: {e}")
    })?;
    let launcher = runner::launcher::locate(&exe);
    tracing::info!(launcher = %launcher.display(), "deploy commands start through this launcher");
    let metrics = Arc::new(Metrics::default());
    let git = worker::git_cache(&config.get());
    let mut parts = worker::Parts::standard(Arc::clone(&git), launcher);
    parts.timing.lease = config.get().store.lease;
    let worker = Worker::new(
        Arc::clone(&config),
        store.clone(),
        logs.clone(),
        Arc::clone(&metrics),
        parts,
    );
    // Two live replicas may not share a node name (run_on and job owners go by it).
    if let deployhook::store::CheckIn::NameTaken(by) = system.block_on(worker.check_in()) {
        return Err(format!(
            "another live replica ({by}) uses node_name {:?}; give each replica its own [store] node_name",
            config.get().store.node_name
        ));
    }
    let notifier =
        deployhook::notify::Notifier::new(store.clone(), Arc::clone(&config), Arc::clone(&metrics));
    let reloader = Reloader::new(Arc::clone(&config), Arc::clone(&metrics), tls.clone());
    let state = AppState {
        config: Arc::clone(&config),
        store: store.clone(),
        logs,
        worker: worker.handle(),
        git,
        metrics,
        reloader: Arc::clone(&reloader),
        api_token,
        status_key: tokio::sync::OnceCell::new(),
        ui: deployhook::server::UiState::default(),
    };
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let app = Application::new(state, listener, tls.clone())
        .map_err(|e| format!("cannot serve on {listen}: {e}"))?;
    tracing::info!(
        addr = %app.local_addr(),
        tls = tls.is_some(),
        hooks = config.get().hooks.len(),
        store = %store.describe(),
        instance = %worker.instance(),
        "listening on {}",
        app.local_addr()
    );
    system.block_on(async move {
        let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
        let worker = actix_web::rt::spawn(worker.run(jobs_stopped));
        // Stopped after the worker, so that the statuses of the jobs it stopped go out.
        let (stop_notifier, notifier_stopped) = tokio::sync::watch::channel(false);
        let notifier = actix_web::rt::spawn(notifier.run(notifier_stopped));
        actix_web::rt::spawn(Arc::clone(&reloader).on_sighup());
        actix_web::rt::spawn(reloader.watch_file());
        let server = app.handle();
        actix_web::rt::spawn(async move {
            wait_for_stop_signal().await;
            let _ = sd_notify::notify("STOPPING=1");
            tracing::info!("stopping: answering requests in flight, letting running jobs finish");
            let _ = stop_jobs.send(true);
            server.stop(true).await;
        });
        let _ = sd_notify::notify("READY=1");
        let result = app.run().await;
        let _ = worker.await;
        let _ = stop_notifier.send(true);
        let _ = notifier.await;
        tracing::info!("stopped");
        result.map_err(|e| format!("server failed: {e}"))
    })
}

/// The store `[store]` names: SQLite in `state_dir`, or the PostgreSQL database the
/// replicas share (connected and migrated here, on `system`'s runtime).
fn open_store(
    system: &actix_web::rt::SystemRunner,
    config: &config::Config,
) -> Result<Store, String> {
    let state_dir = &config.server.state_dir;
    let config::StoreBackend::Postgres(pg) = &config.store.backend else {
        return Store::open(state_dir).map_err(|e| e.to_string());
    };
    let ca = pg
        .ca_file
        .as_ref()
        .map(|p| {
            std::fs::read(p)
                .map_err(|e| format!("cannot read [store] ca_file {}: {e}", p.display()))
        })
        .transpose()?;
    let password = pg.password.as_ref().map(deployhook::secret::Secret::expose);
    let connect = deployhook::store::PgConnect::new(&pg.target, password, ca.as_deref())
        .map_err(|e| format!("[store] {e}"))?;
    system
        .block_on(Store::open_postgres(state_dir, connect))
        .map_err(|e| e.to_string())
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

/// Logs go to stderr (journald picks them up): human-readable, coloured only on a
/// terminal, or one JSON object per line. `RUST_LOG` wins over `server.log_level`.
fn init_logging(format: LogFormat, level: Option<&str>) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.unwrap_or("info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}
