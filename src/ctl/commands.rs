//! Runs the API commands of the command line: finds the daemon and its token, runs the
//! command, and turns how it went into the exit status. `main.rs` hands every command
//! here first and runs the local ones (serve, check, trigger...) itself.

use std::io::Write;

use super::{CtlError, DeployArgs, Target};
use crate::cli::{ApiArgs, Command, Conn, WaitArgs};

/// Where the API commands look by default.
const DEFAULT_URL: &str = "http://127.0.0.1:9000";

/// Runs `command` if it talks to the daemon, and returns its exit status; any other
/// command is handed back.
pub fn run(conn: &Conn, command: Command) -> Result<u8, Box<Command>> {
    let code = match command {
        Command::Jobs {
            api,
            hook,
            state,
            limit,
            json,
        } => with(conn, &api, |t, out| {
            super::jobs(t, hook.as_deref(), state.as_deref(), limit, json, out)
        }),
        Command::Show { api, job, json } => {
            with(conn, &api, |t, out| super::show(t, job, json, out))
        }
        Command::Hooks { api, json } => with(conn, &api, |t, out| super::hooks(t, json, out)),
        Command::Deliveries { api, hook, limit } => with(conn, &api, |t, out| {
            super::deliveries(t, hook.as_deref(), limit, out)
        }),
        Command::Logs { api, job, follow } => {
            with(conn, &api, |t, out| super::logs(t, job, follow, out))
        }
        Command::Deploy {
            api,
            hook,
            git_ref,
            sha,
            force,
            rule,
            wait,
        } => {
            let a = DeployArgs {
                hook: &hook,
                git_ref: &git_ref,
                sha: sha.as_deref(),
                force,
                rule: rule.as_deref(),
            };
            with(conn, &api, |t, out| {
                let id = super::deploy(t, &a, out)?;
                waited(t, id, &wait, out)
            })
        }
        Command::Rollback {
            api,
            hook,
            rule,
            to,
            wait,
        } => with(conn, &api, |t, out| {
            let id = super::rollback(t, &hook, rule.as_deref(), to.as_deref(), out)?;
            waited(t, id, &wait, out)
        }),
        Command::Redeploy { api, job, wait } => with(conn, &api, |t, out| {
            let id = super::redeploy(t, job, out)?;
            waited(t, id, &wait, out)
        }),
        Command::Pause { api, hook, reason } => with(conn, &api, |t, out| {
            super::pause(t, &hook, reason.as_deref(), out)
        }),
        Command::Resume { api, hook } => with(conn, &api, |t, out| super::resume(t, &hook, out)),
        Command::Reload { api } => with(conn, &api, super::reload),
        Command::Cancel { api, job } => with(conn, &api, |t, out| super::cancel(t, job, out)),
        Command::Explain {
            hook,
            delivery: Some(delivery),
            config,
            ..
        } => with(conn, &ApiArgs { config }, |t, out| {
            super::explain_delivery(t, &hook, &delivery, out)
        }),
        other => return Err(Box::new(other)),
    };
    Ok(code)
}

/// With `--wait`, follows job `id` to its end.
fn waited(t: &Target, id: u64, wait: &WaitArgs, out: &mut dyn Write) -> Result<(), CtlError> {
    if !wait.wait {
        return Ok(());
    }
    let limit = crate::config::units::parse_duration(&wait.timeout)
        .map_err(|e| CtlError::Protocol(format!("--timeout: {e}")))?;
    super::wait_for(t, id, limit, out)
}

fn with(
    conn: &Conn,
    api: &ApiArgs,
    run: impl FnOnce(&Target, &mut dyn Write) -> Result<(), CtlError>,
) -> u8 {
    // Asked for (a flag, the environment): it must be readable. Found by looking in the
    // default configs: used when readable.
    let asked = conn.token_file.is_some() || api.config.is_some();
    let token = crate::api_token::for_cli(conn.token_file.as_deref(), api.config.as_deref());
    let url = conn.url.as_deref().unwrap_or(DEFAULT_URL);
    let result = Target::new(url, token.as_deref(), asked)
        .and_then(|t| run(&t, &mut std::io::stdout().lock()));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("deployhook: {e}");
            e.exit_code()
        }
    }
}
