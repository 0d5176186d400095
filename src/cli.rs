//! The command line, defined once with clap so that help, man page and completions all
//! come from the same place.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Where the packaged daemon looks for its config.
pub const DEFAULT_CONFIG: &str = "/etc/deployhook/hooks.toml";

#[derive(Debug, Parser)]
#[command(
    name = "deployhook",
    version,
    about = "GitOps deploy daemon: verified forge push webhooks become sandboxed deploys"
)]
pub struct Cli {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the daemon is, for the commands that talk to it: before or after the command.
#[derive(Debug, clap::Args)]
pub struct Conn {
    /// The daemon's address (for trigger: as the CI job reaches it). Default for the
    /// API commands: http://127.0.0.1:9000.
    #[arg(long, global = true, env = "DEPLOYHOOK_URL")]
    pub url: Option<String>,
    /// The file holding the API token. Default: the token the config names (its
    /// api_token_file, or state_dir/api-token).
    #[arg(long, global = true, env = "DEPLOYHOOK_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// `deployhook trigger --help`'s example, as the README gives it.
const TRIGGER_EXAMPLE: &str = "Example (GitHub Actions; the secret in a repository secret):
  deployhook trigger --url https://deploy.example.com --hook app \\
      --secret-env DEPLOYHOOK_SECRET --repository acme/app \\
      --ref \"$GITHUB_REF\" --sha \"$GITHUB_SHA\" --wait --timeout 15m";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the API commands find the daemon's token (with `--url` and `--token-file`).
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// The daemon's config, to find its API token in (default: ./hooks.toml, then
    /// /etc/deployhook/hooks.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `--wait` for the commands that queue a job.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Follow the job until it ends; exit 0 only if it succeeded (3 failed, 4 timed out,
    /// 5 cancelled/superseded/interrupted, 7 still running at --timeout).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "15m", requires = "wait")]
    pub timeout: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: receive webhooks on [server] listen and queue deploys.
    Serve {
        /// The hooks.toml to run.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// How log lines look: text for people, json for log shippers.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Check a config file and report every problem as file:line:column; starts nothing.
    Check {
        /// The hooks.toml to check.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Print the headers a forge would send with the push body on stdin, one
    /// `Name: value` per line (for `curl -H @file`).
    Sign {
        /// github, gitlab, gitea, forgejo, gogs, bitbucket or generic.
        #[arg(long)]
        forge: String,
        /// The file holding the hook's secret.
        #[arg(long)]
        secret_file: PathBuf,
        /// The delivery id to send (default: a new one).
        #[arg(long)]
        delivery: Option<String>,
    },
    /// Deploy from CI: send a signed push for a commit, and with --wait follow its jobs
    /// until they end.
    #[command(after_help = TRIGGER_EXAMPLE)]
    Trigger {
        /// The generic hook to trigger.
        #[arg(long)]
        hook: String,
        /// The environment variable holding the hook's secret (whsec_...).
        #[arg(
            long,
            required_unless_present = "secret_file",
            conflicts_with = "secret_file"
        )]
        secret_env: Option<String>,
        /// The file holding the hook's secret.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// The repository as the hook expects it (owner/name).
        #[arg(long)]
        repository: String,
        /// The full ref pushed (refs/heads/main, refs/tags/v1.2.0).
        #[arg(long = "ref")]
        git_ref: String,
        /// The commit to deploy.
        #[arg(long)]
        sha: String,
        /// The commit the ref pointed at before (default: none, a new ref).
        #[arg(long)]
        before: Option<String>,
        /// Who pushed (shown in job records).
        #[arg(long)]
        pusher: Option<String>,
        /// A file listing the changed paths, one per line (for rules with `paths`).
        #[arg(long)]
        paths_from: Option<PathBuf>,
        /// Follow the jobs until they end; exit 0 only if every one succeeded (3 failed,
        /// 4 timed out, 5 cancelled/superseded/interrupted, 6 nothing matched, 7 still
        /// running at --timeout).
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "15m", requires = "wait")]
        timeout: String,
        /// Say what is sent and retried (never the secret or the signature).
        #[arg(long, short)]
        verbose: bool,
    },
    /// List recent jobs: when they started, how long they ran, what they deployed.
    Jobs {
        #[command(flatten)]
        api: ApiArgs,
        /// Only this hook's jobs.
        #[arg(long)]
        hook: Option<String>,
        /// Only jobs in this state (queued, held, running, succeeded, failed, timed_out, cancelled, superseded, interrupted).
        #[arg(long)]
        state: Option<String>,
        /// How many, newest first.
        #[arg(long, default_value_t = 30)]
        limit: usize,
        /// The API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One job: what it deployed, its events, its notifications.
    Show {
        #[command(flatten)]
        api: ApiArgs,
        job: u64,
        /// The API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// The hooks, each with what is live now, what runs and waits, and whether it is paused.
    Hooks {
        #[command(flatten)]
        api: ApiArgs,
        /// The API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// What became of the latest verified deliveries, and why: "why did my push not
    /// deploy?".
    Deliveries {
        #[command(flatten)]
        api: ApiArgs,
        /// Only this hook's deliveries.
        hook: Option<String>,
        /// How many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Print a job's log.
    Logs {
        #[command(flatten)]
        api: ApiArgs,
        job: u64,
        /// Keep printing as the job runs, until it ends in any state; then print how it
        /// ended, and exit 0 only if it succeeded.
        #[arg(long, short)]
        follow: bool,
    },
    /// Queue a deploy by hand.
    Deploy {
        #[command(flatten)]
        api: ApiArgs,
        hook: String,
        /// A branch name (main) or a full ref (refs/tags/v1.2.0).
        #[arg(long = "ref")]
        git_ref: String,
        /// The commit; default: what the ref points at on the remote now. It must be
        /// the ref's tip or an ancestor of it, unless --force is given.
        #[arg(long)]
        sha: Option<String>,
        /// Deploy --sha even if the ref does not contain it (recorded in the job).
        #[arg(long, requires = "sha")]
        force: bool,
        /// The rule to deploy with (its name, or its index); default: the first whose
        /// branches or tags match the ref.
        #[arg(long)]
        rule: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Deploy the commit that deployed successfully before the current one (or --to).
    Rollback {
        #[command(flatten)]
        api: ApiArgs,
        hook: String,
        /// The rule whose deploys to roll back (default: that of the last good deploy).
        #[arg(long)]
        rule: Option<String>,
        /// The commit to go back to (a prefix will do); it must have deployed before.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Deploy a job's exact commit again.
    Redeploy {
        #[command(flatten)]
        api: ApiArgs,
        job: u64,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Hold a hook's deploys: deliveries are still verified, recorded and answered, and
    /// their jobs wait (held) until `resume`.
    Pause {
        #[command(flatten)]
        api: ApiArgs,
        hook: String,
        /// Why (shown with the held jobs).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Release a paused hook's held jobs.
    Resume {
        #[command(flatten)]
        api: ApiArgs,
        hook: String,
    },
    /// Re-read hooks.toml (as SIGHUP does).
    Reload {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Why a push did or did not deploy, rule by rule, without deploying anything: a
    /// recorded delivery (--delivery), or a payload on stdin (from the forge's delivery
    /// page) read against the config.
    Explain {
        hook: String,
        /// A recorded delivery's id (asks the daemon).
        #[arg(long)]
        delivery: Option<String>,
        /// The payload's event, as the forge names it (push, Push Hook, repo:push...).
        #[arg(long, default_value = "push")]
        event: String,
        /// The config to read the hook from (for a payload on stdin; also where the API
        /// token is found).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Cancel a queued or running job.
    Cancel {
        #[command(flatten)]
        api: ApiArgs,
        job: u64,
    },
    /// Notification targets ([[notify]]).
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// Internal, for packaging: write the man page, shell completions and the hooks.toml
    /// JSON Schema into a folder.
    #[command(hide = true)]
    Generate {
        /// Folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Internal: the per-command supervisor the runner starts (limits, user, sandbox).
    #[command(hide = true)]
    SandboxExec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyAction {
    /// Send a test message to a [[notify]] target now and print what it answered (exit 0
    /// only if it took the message).
    Test {
        /// The target's name.
        name: String,
        /// The hooks.toml that defines it.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}
