//! hooks.toml: reading it, checking all of it at once, and the validated types the
//! daemon runs on. Two stages, as in ripgrep: [`raw`] is the file as written (serde),
//! [`Config`] is what `validate` made of it (globs compiled, secrets loaded, paths
//! resolved). A `Config` only exists if the file had no errors.

mod diag;
mod keys;
mod live;
pub(crate) mod raw;
mod rule_parts;
mod store;
mod targets;
pub mod units;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::GlobSet;

pub use diag::{Diagnostic, Severity};
pub use live::LiveConfig;
pub use store::{DEFAULT_LEASE, HEARTBEAT, Postgres, StoreBackend, StoreSettings, min_lease};
pub use targets::{NotifyTarget, Sending, StatusReport, TargetKind};
pub use units::{parse_duration, parse_size};

use crate::access::Cidr;
use crate::event::Forge;
pub use crate::git::{RemoteAuth, TreeLimits};
pub use crate::runner::{Command, Limits, Nice};
use crate::secret::Secret;
pub use crate::tls::Tls;
use crate::verify::Auth;

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub server: Server,
    /// `[store]`: where the queue is kept, this daemon's node name, the lease.
    pub store: StoreSettings,
    pub hooks: Vec<Hook>,
    /// `[[notify]]` targets, by name.
    pub notify: Vec<NotifyTarget>,
    /// Every file and folder the config names for the daemon's own use (the config's
    /// folder, secret, token, key and certificate files, the credentials folder, local
    /// clone URLs, `state_dir`): what a sandboxed command may never read.
    pub private_paths: Vec<PathBuf>,
}

impl Config {
    pub fn hook(&self, id: &str) -> Option<&Hook> {
        self.hooks.iter().find(|h| h.id == id)
    }

    pub fn notify_target(&self, name: &str) -> Option<&NotifyTarget> {
        self.notify.iter().find(|t| t.name == name)
    }

    /// Whether any rule runs its commands as `[server] command_user` (has no `run_as`).
    pub fn uses_command_user(&self) -> bool {
        self.hooks
            .iter()
            .any(|h| h.rules.iter().any(|r| r.run_as.is_none()))
    }
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    /// Absolute (resolved against the config file's folder).
    pub state_dir: PathBuf,
    /// Bodies larger than this are refused with 413 before being read.
    pub max_body: u64,
    /// Jobs of different hooks that may run at once (one per hook at a time, always).
    pub max_concurrent_jobs: usize,
    /// Bearer token for the API; `None`: the one the daemon keeps in `state_dir/api-token`.
    pub api_token: Option<Secret>,
    /// Between SIGTERM and SIGKILL when a command times out or is cancelled.
    pub kill_grace: Duration,
    /// A job's log is cut (and the cut marked) past this many bytes.
    pub max_log_size: u64,
    /// Finished jobs kept per hook, by count and by age; older ones and their logs are pruned.
    pub keep_jobs: usize,
    pub keep_for: Duration,
    /// On SIGTERM, how long running jobs may go on before they are stopped.
    pub shutdown_grace: Duration,
    /// Reload by itself when the file changes (also when it is replaced).
    pub watch_config: bool,
    /// A tracing filter (`info`, `deployhook=debug`); `RUST_LOG` wins over it.
    pub log_level: Option<String>,
    /// Who may deliver; empty: everyone.
    pub allow_from: Vec<Cidr>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    pub tls: Option<Tls>,
    /// Who runs commands of rules without `run_as`, if the daemon can switch users.
    pub command_user: String,
    /// How users reach the daemon (no trailing `/`), for the links it hands out.
    pub public_url: Option<String>,
    /// `/metrics` needs the API token.
    pub metrics_auth: bool,
    /// More host names the API answers to (lower case, no port).
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug)]
pub struct Hook {
    /// Served at `POST /hooks/{id}`.
    pub id: String,
    pub forge: Forge,
    pub auth: Auth,
    /// `owner/name`; a delivery for another repository is ignored.
    pub repository: String,
    /// Where the worker fetches from: always from the config, never from a payload.
    pub clone_url: String,
    pub git_auth: RemoteAuth,
    /// Fetch with depth 1.
    pub shallow: bool,
    /// Check out submodules recursively.
    pub submodules: bool,
    /// Absolute submodule URLs that may be fetched (`submodule_urls`).
    pub submodule_urls: Vec<String>,
    /// A delivery finding this many jobs waiting for the hook is refused (429).
    pub max_queued: usize,
    /// `max_checkout_size`, `max_checkout_files`, `max_tree_depth`.
    pub checkout_limits: TreeLimits,
    /// Tried in order; the first that matches wins, unless `matching` is `All`.
    pub rules: Vec<Rule>,
    pub matching: Matching,
    /// Commit statuses on the hook's forge.
    pub status: Option<StatusReport>,
    /// `[[notify]]` targets told about every rule's jobs.
    pub notify: Vec<String>,
    /// The replicas (node names) that run this hook's jobs; `None`: every replica.
    pub run_on: Option<Vec<String>>,
}

/// Which of a hook's rules a push deploys with (`match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// The first that matches; one job of the hook runs at a time.
    First,
    /// Every one that matches, each its own job; jobs of different rules run at once,
    /// each in its own work tree.
    All,
}

impl Hook {
    /// The rule whose key (see [`Rule::key`]) is `key`.
    pub fn rule(&self, key: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.key() == key)
    }
}

#[derive(Debug)]
pub struct Rule {
    /// Position among the hook's rules, from 0.
    pub index: usize,
    /// `name`, unique within the hook.
    pub name: Option<String>,
    /// Globs on the branch name (without `refs/heads/`); `None`: no branch matches.
    pub branches: Option<Globs>,
    /// Globs on the tag name (without `refs/tags/`); `None`: no tag matches.
    pub tags: Option<Globs>,
    /// When set, at least one changed file must match.
    pub paths: Option<Globs>,
    pub commands: Vec<Command>,
    /// Per command.
    pub timeout: Duration,
    pub queue: QueueMode,
    /// Queue a job again when the daemon died while it ran.
    pub retry_interrupted: bool,
    /// Extra environment for the commands (the runner clears everything else).
    pub env: Vec<(String, String)>,
    /// Drop to this user (and its groups) when the daemon runs as root; `None`: the
    /// server's `command_user`.
    pub run_as: Option<String>,
    pub limits: Limits,
    /// Let commands write only to their work tree and a private temp dir, and read only
    /// system directories and `read_paths`.
    pub sandbox: bool,
    /// Absolute; readable in the sandbox besides the system directories.
    pub read_paths: Vec<PathBuf>,
    /// More `[[notify]]` targets for this rule's jobs, besides the hook's.
    pub notify: Vec<String>,
    /// Variables read from files when a job starts (absolute paths), masked in its log.
    pub secrets: Vec<(String, PathBuf)>,
    /// Jobs holding the same lock never run at once.
    pub lock: Option<String>,
    /// After a failed or timed-out command.
    pub on_failure: Vec<Command>,
    /// Last, always.
    pub finally: Vec<Command>,
}

impl Rule {
    /// What the rule is known by in job records, statuses, `DEPLOYHOOK_RULE` and the
    /// supersede lane: its name, or else its index. A named rule is found again after a
    /// reload that moves it; an unnamed one is its position.
    pub fn key(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.index.to_string())
    }
}

/// What a newer push does to a pending one of the same hook (the store's notion).
pub use crate::store::Queue as QueueMode;

/// Compiled globs, with the patterns kept for display. `*` does not cross `/`; `**` does.
#[derive(Debug, Clone)]
pub struct Globs {
    pub patterns: Vec<String>,
    pub set: GlobSet,
}

impl Globs {
    pub fn is_match(&self, s: &str) -> bool {
        self.set.is_match(s)
    }
}

/// A config that was read, with the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// A config that cannot be used: every problem found, errors and warnings.
#[derive(Debug)]
pub struct Invalid {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

/// Reads and validates `path`. Secrets named by `secret_env` are read from this
/// process's environment.
pub fn load(path: &Path) -> Result<Loaded, Invalid> {
    let text = std::fs::read_to_string(path).map_err(|e| Invalid {
        diagnostics: vec![Diagnostic {
            severity: Severity::Error,
            file: path.display().to_string(),
            position: None,
            message: format!("cannot read config: {e}"),
        }],
    })?;
    let mut loaded = validate::validate(path, &text, &|name| std::env::var(name).ok())?;
    if let Some(w) = world_writable_warning(path) {
        loaded.warnings.push(w);
    }
    Ok(loaded)
}

/// Validates config text as if read from `path` (relative paths in it resolve against
/// `path`'s folder), looking up `secret_env` variables with `env`.
pub fn load_str(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Invalid> {
    validate::validate(path, text, env)
}

fn world_writable_warning(path: &Path) -> Option<Diagnostic> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o002 != 0).then(|| Diagnostic {
        severity: Severity::Warning,
        file: path.display().to_string(),
        position: None,
        message: format!(
            "the config file is writable by every user (mode {:o}): anyone on this machine could change what gets deployed; chmod o-w it",
            mode & 0o7777
        ),
    })
}
