//! hooks.toml exactly as written: the serde shapes, with spans kept for messages. Every
//! field is optional here so that `validate` can report all missing keys at once.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, SeqAccess, Visitor};
use toml::Spanned;

/// The whole file: the `[server]` and `[store]` tables, the `[[hook]]`s and `[[notify]]`s.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Config")]
pub struct RawConfig {
    /// The daemon itself: where it listens, where it keeps its state, its limits.
    #[schemars(with = "Option<RawServer>")]
    pub server: Option<Spanned<RawServer>>,
    /// Where the job queue and delivery records are kept: SQLite in `[server] state_dir`
    /// (the default), or a PostgreSQL database several replicas share.
    #[schemars(with = "Option<RawStore>")]
    pub store: Option<Spanned<RawStore>>,
    /// One `[[hook]]` per webhook endpoint, served at `POST /hooks/<id>`.
    #[serde(default)]
    #[schemars(with = "Vec<RawHook>")]
    pub hook: Vec<Spanned<RawHook>>,
    /// `[[notify]]`: named places told how deploys went (chat, webhooks), which hooks and
    /// rules subscribe to with `notify = ["name"]`.
    #[serde(default)]
    #[schemars(with = "Vec<RawNotify>")]
    pub notify: Vec<Spanned<RawNotify>>,
}

/// `[server]`: every key is optional.
#[derive(Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Server")]
pub struct RawServer {
    /// `address:port` to receive webhooks on. Default `"127.0.0.1:9000"`.
    #[schemars(with = "Option<String>")]
    pub listen: Option<Spanned<String>>,
    /// Where the embedded SQLite store (`deployhook.db`), git caches, work trees and job
    /// logs live; a relative path resolves against the config file's folder. Default `"state"`.
    #[schemars(with = "Option<String>")]
    pub state_dir: Option<Spanned<String>>,
    /// Larger request bodies are refused with 413 without being read: a size like `"25MiB"`
    /// (B, KB, KiB, MB, MiB, GB, GiB). Default `"25MiB"`.
    #[schemars(with = "Option<String>")]
    pub max_body: Option<Spanned<String>>,
    /// Jobs of different hooks running at once (one per hook, always). Default 4.
    #[schemars(with = "Option<i64>", range(min = 1))]
    pub max_concurrent_jobs: Option<Spanned<i64>>,
    /// A file holding the bearer token for `/api` and the CLI; without it the daemon makes
    /// one at its first start in `state_dir/api-token` (0600). The API never answers
    /// without a token.
    #[schemars(with = "Option<String>")]
    pub api_token_file: Option<Spanned<String>>,
    /// A timed-out or cancelled command gets SIGTERM, then SIGKILL after this: a duration like
    /// `"10s"` (ms, s, m, h, d). Default `"10s"`.
    #[schemars(with = "Option<String>")]
    pub kill_grace: Option<Spanned<String>>,
    /// A job's log is cut past this size (the cut is marked). Default `"1MiB"`.
    #[schemars(with = "Option<String>")]
    pub max_log_size: Option<Spanned<String>>,
    /// Finished jobs (and their logs) kept per hook. Default 100.
    #[schemars(with = "Option<i64>", range(min = 1))]
    pub keep_jobs: Option<Spanned<i64>>,
    /// Finished jobs (and their logs) are kept for at most this long. Default `"30d"`.
    #[schemars(with = "Option<String>")]
    pub keep_for: Option<Spanned<String>>,
    /// On SIGTERM, how long running jobs may go on before they are stopped. Default `"30s"`.
    #[schemars(with = "Option<String>")]
    pub shutdown_grace: Option<Spanned<String>>,
    /// Reload by itself when the config file changes (also when it is replaced). Default false.
    #[schemars(with = "Option<bool>")]
    pub watch_config: Option<Spanned<bool>>,
    /// A log filter like `"info"` or `"deployhook=debug"`; `RUST_LOG` wins over it.
    #[schemars(with = "Option<String>")]
    pub log_level: Option<Spanned<String>>,
    /// Who may deliver: addresses or networks like `"192.0.2.0/24"`. Absent or empty: everyone.
    #[schemars(with = "Option<Vec<String>>")]
    pub allow_from: Option<Spanned<Vec<Spanned<String>>>>,
    /// Peers (addresses or networks) whose `X-Forwarded-For` is believed.
    #[schemars(with = "Option<Vec<String>>")]
    pub trusted_proxies: Option<Spanned<Vec<Spanned<String>>>>,
    /// Serve HTTPS instead of HTTP.
    #[schemars(with = "Option<RawTls>")]
    pub tls: Option<Spanned<RawTls>>,
    /// The user that commands of rules without `run_as` run as, when the daemon can
    /// switch users (runs as root): not the daemon's own, so that they cannot read its
    /// secrets or signal it. Naming the daemon's own user runs them as that, with a
    /// warning. Default `"deployhook-run"` (the packages create it).
    #[schemars(with = "Option<String>")]
    pub command_user: Option<Spanned<String>>,
    /// The daemon's address as its users reach it (`https://deploy.example.com`, behind
    /// a proxy perhaps), for the links it hands out: a delivery's `status_url`. Default:
    /// the scheme and host the request came to.
    #[schemars(with = "Option<String>")]
    pub public_url: Option<Spanned<String>>,
    /// The host names (without port) the API answers to besides loopback, the listen
    /// address and `public_url`'s host; any other `Host` gets 421 (DNS rebinding).
    #[schemars(with = "Option<Vec<String>>")]
    pub allowed_hosts: Option<Spanned<Vec<Spanned<String>>>>,
    /// `/metrics` needs the API token too (it names every hook). Default false; the
    /// packaged config sets it.
    #[schemars(with = "Option<bool>")]
    pub metrics_auth: Option<Spanned<bool>>,
}

/// `[server.tls]`: a PEM certificate chain and its private key; both are needed.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Tls")]
pub struct RawTls {
    /// The PEM certificate chain; a relative path resolves against the config file's folder.
    #[schemars(with = "Option<String>")]
    pub cert_file: Option<Spanned<String>>,
    /// The certificate's PEM private key.
    #[schemars(with = "Option<String>")]
    pub key_file: Option<Spanned<String>>,
}

/// `[store]`: every key is optional; without the table, SQLite in `[server] state_dir`.
#[derive(Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Store")]
pub struct RawStore {
    /// `"sqlite"` (default): one daemon, its state in `[server] state_dir`. `"postgres"`:
    /// a PostgreSQL database that several replicas share, so that they serve one queue.
    #[schemars(with = "Option<String>")]
    #[schemars(extend("enum" = ["sqlite", "postgres"]))]
    pub backend: Option<Spanned<String>>,
    /// `postgres`, required: the database, as a URL
    /// (`postgres://deployhook@db.example.com/deployhook`; a local socket:
    /// `postgres:///deployhook?host=/run/postgresql&user=deployhook`) or a key=value
    /// string. It names a user and a database and holds no password (see
    /// `password_file`). TCP hosts are always reached over TLS (`sslmode=require`;
    /// `disable` and `prefer` are refused); sockets need none.
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
    /// `postgres`: a file holding the database user's password (`"%d/NAME"`: a systemd
    /// credential). Without it, no password is sent (peer authentication on a local
    /// socket, for one).
    #[schemars(with = "Option<String>")]
    pub password_file: Option<Spanned<String>>,
    /// `postgres`: a PEM file of the CA that signed the database server's certificate
    /// (then the only one trusted). Default: the system's trust roots.
    #[schemars(with = "Option<String>")]
    pub ca_file: Option<Spanned<String>>,
    /// This daemon's name among the replicas, unique among the live ones; `run_on` names
    /// these. 1 to 64 letters, digits, `-`, `_` or `.`. Default: the host name.
    #[schemars(with = "Option<String>")]
    pub node_name: Option<Spanned<String>>,
    /// How long a running job stays its replica's without a heartbeat, after which
    /// another one marks it interrupted. A replica that cannot reach the database stops
    /// its jobs before then, so it is at least two heartbeats (10s) + `[server]
    /// kill_grace` + 5s. Default `"30s"`, or that minimum when it is longer.
    #[schemars(with = "Option<String>")]
    pub lease: Option<Spanned<String>>,
}

/// `[[hook]]`: one webhook endpoint and the repository it deploys.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Hook")]
pub struct RawHook {
    /// Required: the hook is served at `POST /hooks/<id>`.
    #[schemars(with = "Option<String>")]
    pub id: Option<Spanned<String>>,
    /// Required: who sends the deliveries, which decides how they are verified and read.
    #[schemars(with = "Option<String>")]
    #[schemars(extend("enum" = ["github", "gitlab", "gitea", "forgejo", "gogs", "bitbucket", "generic"]))]
    pub forge: Option<Spanned<String>>,
    /// A file holding the secret (preferred; keep it chmod 600), or a list of files while a
    /// secret is rotated: a delivery signed with any of them is accepted. Exactly one of
    /// `secret_file`, `secret_env` and `secret` is required.
    #[schemars(with = "Option<StringList>")]
    pub secret_file: Option<Spanned<StringList>>,
    /// An environment variable holding the secret, or a list of them (rotation). Exactly one
    /// of `secret_file`, `secret_env` and `secret` is required.
    #[schemars(with = "Option<StringList>")]
    pub secret_env: Option<Spanned<StringList>>,
    /// The secret inline, or a list (rotation): allowed but warned about, as anyone who reads
    /// the file can deploy. `generic` hooks use a Standard Webhooks `whsec_<base64>` secret.
    #[schemars(with = "Option<StringList>")]
    pub secret: Option<Spanned<StringList>>,
    /// GitHub only: also accept the old sha1 `X-Hub-Signature`. Default false.
    #[schemars(with = "Option<bool>")]
    pub legacy_sha1: Option<Spanned<bool>>,
    /// Required: `owner/name` (GitLab: the path with namespace; Bitbucket Data Center:
    /// `PROJECTKEY/repo-slug`). Deliveries for any other repository are ignored.
    #[schemars(with = "Option<String>")]
    pub repository: Option<Spanned<String>>,
    /// Required: where the worker fetches from, never taken from a payload. An https:// or
    /// ssh:// URL, `user@host:path`, or a local path (relative to the config file's folder).
    #[schemars(with = "Option<String>")]
    pub clone_url: Option<Spanned<String>>,
    /// The private key for ssh:// and `user@host:path` URLs; needs `known_hosts_file`.
    #[schemars(with = "Option<String>")]
    pub ssh_key_file: Option<Spanned<String>>,
    /// The SSH server's host key, which the connection is checked against (`ssh-keyscan`,
    /// then verify it).
    #[schemars(with = "Option<String>")]
    pub known_hosts_file: Option<Spanned<String>>,
    /// For https:// URLs: a file holding a token, sent as the password of `token_user`.
    #[schemars(with = "Option<String>")]
    pub token_file: Option<Spanned<String>>,
    /// The user name sent with `token_file`'s token. Default `"git"`.
    #[schemars(with = "Option<String>")]
    pub token_user: Option<Spanned<String>>,
    /// Fetch only the pushed commit's history (depth 1). Default false.
    #[schemars(with = "Option<bool>")]
    pub shallow: Option<Spanned<bool>>,
    /// Check out submodules too. Default false.
    #[schemars(with = "Option<bool>")]
    pub submodules: Option<Spanned<bool>>,
    /// Submodule URLs that may be fetched besides relative ones on `clone_url`'s server
    /// (local paths and `file://` included): `.gitmodules` is repository content. A token
    /// is still only sent to `clone_url`'s host. Default none.
    #[schemars(with = "Option<Vec<String>>")]
    pub submodule_urls: Option<Spanned<Vec<Spanned<String>>>>,
    /// The most a checkout may write, submodules included, read off the commit's tree
    /// before anything is written; a job over it fails. Default "2GiB".
    #[schemars(with = "Option<String>")]
    pub max_checkout_size: Option<Spanned<String>>,
    /// The most files (and symlinks) a checkout may write, submodules included.
    /// Default 200000.
    #[schemars(with = "Option<i64>", range(min = 1))]
    pub max_checkout_files: Option<Spanned<i64>>,
    /// How deep a checkout's directories may nest. Default 64.
    #[schemars(with = "Option<i64>", range(min = 1))]
    pub max_tree_depth: Option<Spanned<i64>>,
    /// The most jobs that may wait for this hook: a delivery that finds this many already
    /// waiting is answered 429 (with `Retry-After`) and queues nothing. Default 1000.
    #[schemars(with = "Option<i64>", range(min = 1))]
    pub max_queued: Option<Spanned<i64>>,
    /// Report each deploy as a commit status on the pushed commit, through the hook's
    /// forge (not for gogs and generic hooks).
    #[schemars(with = "Option<RawStatus>")]
    pub status: Option<Spanned<RawStatus>>,
    /// `[[notify]]` targets told about every rule's jobs (a rule's own `notify` adds).
    #[schemars(with = "Option<Vec<String>>")]
    pub notify: Option<Spanned<Vec<Spanned<String>>>>,
    /// Only these replicas (their `[store] node_name`) run this hook's jobs. Default:
    /// every replica. With the sqlite store (one daemon) it must name this daemon.
    #[schemars(with = "Option<Vec<String>>")]
    pub run_on: Option<Spanned<Vec<Spanned<String>>>>,
    /// `"first"` (default): the first rule that matches a push deploys it, and the hook
    /// runs one job at a time. `"all"`: every rule that matches gets a job of its own
    /// (a monorepo's services), and jobs of different rules run at the same time, each in
    /// its own work tree (`state_dir/work/<hook>/<rule>/`).
    #[serde(rename = "match")]
    #[schemars(with = "Option<String>")]
    #[schemars(extend("enum" = ["first", "all"]))]
    pub match_mode: Option<Spanned<String>>,
    /// `[[hook.rule]]`s, tried in order: the first that matches a push wins (unless
    /// `match = "all"`).
    #[serde(default)]
    #[schemars(with = "Vec<RawRule>")]
    pub rule: Vec<Spanned<RawRule>>,
}

/// `[[hook.rule]]`: which pushes deploy, and how.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Rule")]
pub struct RawRule {
    /// The rule's name, unique within its hook (letters, digits, `-`, `_`, `.`; not only
    /// digits): in job records, statuses, `DEPLOYHOOK_RULE` and the supersede lane. A
    /// named rule keeps its queued jobs across a reload that reorders the rules. Default:
    /// its index, from 0.
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Globs on the branch name (without `refs/heads/`): `*` stays within a `/` segment,
    /// `**` crosses them. Without it, no branch push matches the rule.
    #[schemars(with = "Option<Vec<String>>")]
    pub branches: Option<Spanned<Vec<Spanned<String>>>>,
    /// Globs on the tag name (without `refs/tags/`). Without it, no tag push matches the rule.
    #[schemars(with = "Option<Vec<String>>")]
    pub tags: Option<Spanned<Vec<Spanned<String>>>>,
    /// Optional globs on the changed files: at least one must match (a forge that does not
    /// list the files matches).
    #[schemars(with = "Option<Vec<String>>")]
    pub paths: Option<Spanned<Vec<Spanned<String>>>>,
    /// Required: run in order in the hook's work tree, checked out at the pushed commit; the
    /// first failure stops the job. The push is in `DEPLOYHOOK_*` environment variables, never
    /// on a command line.
    #[schemars(with = "Option<Vec<RawCommand>>")]
    pub commands: Option<Spanned<Vec<Spanned<RawCommand>>>>,
    /// Per command; then the command's whole process tree is killed. Default `"10m"`.
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// `supersede` (default): a newer push replaces a pending one of the same hook and rule;
    /// `fifo`: every push runs, in order.
    #[schemars(with = "Option<String>")]
    #[schemars(extend("enum" = ["supersede", "fifo"]))]
    pub queue: Option<Spanned<String>>,
    /// Run again a job the daemon was stopped in the middle of. Default false.
    #[schemars(with = "Option<bool>")]
    pub retry_interrupted: Option<Spanned<bool>>,
    /// Variables added to the commands' otherwise cleared environment.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub env: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    /// Drop to this user and its groups to run the commands (the daemon must run as
    /// root). Default: `[server] command_user`.
    #[schemars(with = "Option<String>")]
    pub run_as: Option<Spanned<String>>,
    /// Resource limits for each command (not enforced for root).
    #[schemars(with = "Option<RawLimits>")]
    pub limits: Option<Spanned<RawLimits>>,
    /// Let commands write only to their work tree, their `TMPDIR` and `/dev/null`, read
    /// only system directories, those two and `read_paths`, and signal or reach no process
    /// outside the job (Landlock, Linux 5.13 or later; signal scoping 6.12). Default false.
    #[schemars(with = "Option<bool>")]
    pub sandbox: Option<Spanned<bool>>,
    /// With `sandbox`: more files and folders the commands may read (a web root to
    /// compare with, `~/.ssh` for a deploy key); relative to the config file's folder.
    #[schemars(with = "Option<Vec<String>>")]
    pub read_paths: Option<Spanned<Vec<Spanned<String>>>>,
    /// More `[[notify]]` targets told about this rule's jobs, besides the hook's.
    #[schemars(with = "Option<Vec<String>>")]
    pub notify: Option<Spanned<Vec<Spanned<String>>>>,
    /// Environment variables whose values are read, when a job starts, from these files
    /// (`"%d/NAME"`: a systemd credential): `{ AWS_SECRET_ACCESS_KEY = "secrets/aws" }`.
    /// Every value is masked (`***`) in the job log, whatever the commands print.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub secrets: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    /// Jobs (of any hook) that hold the same lock never run at the same time: a job
    /// waits, queued, while another holds it.
    #[schemars(with = "Option<String>")]
    pub lock: Option<Spanned<String>>,
    /// Run when a command failed or timed out (not when the job was cancelled or
    /// superseded), with `DEPLOYHOOK_RESULT` and `DEPLOYHOOK_FAILED_COMMAND`; their
    /// result is logged, and the job stays failed.
    #[schemars(with = "Option<Vec<RawCommand>>")]
    pub on_failure: Option<Spanned<Vec<Spanned<RawCommand>>>>,
    /// Run last, always, even after a cancel or a timeout (then with `kill_grace` at most),
    /// with `DEPLOYHOOK_RESULT`.
    #[schemars(with = "Option<Vec<RawCommand>>")]
    pub finally: Option<Spanned<Vec<Spanned<RawCommand>>>>,
}

/// `[hook.status]`: the commit status of each deploy, on the hook's forge.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Status")]
pub struct RawStatus {
    /// A file holding the forge API token (`%d/NAME`: a systemd credential). One of
    /// `token_file` and `token_env` is required.
    #[schemars(with = "Option<String>")]
    pub token_file: Option<Spanned<String>>,
    /// An environment variable holding the forge API token.
    #[schemars(with = "Option<String>")]
    pub token_env: Option<Spanned<String>>,
    /// The forge's API. Default per forge: `https://api.github.com`,
    /// `https://gitlab.com/api/v4`, `https://api.bitbucket.org/2.0`; required for
    /// self-hosted forges (Gitea and Forgejo: `https://host/api/v1`; Bitbucket Data
    /// Center: `https://host`, told from Cloud by not ending in `/2.0`). `http://` only
    /// for loopback addresses.
    #[schemars(with = "Option<String>")]
    pub api_url: Option<Spanned<String>>,
    /// The status's name: `{hook}` and `{rule}` (the rule's index) are filled in.
    /// Default `"deployhook/{hook}/{rule}"`.
    #[schemars(with = "Option<String>")]
    pub context: Option<Spanned<String>>,
    /// When to post: `queued`, `started`, `final`. Default `["started", "final"]`.
    #[schemars(with = "Option<Vec<String>>")]
    #[schemars(extend("items" = {"enum": ["queued", "started", "final"]}))]
    pub on: Option<Spanned<Vec<Spanned<String>>>>,
    /// GitHub only: also a Deployment of the commit to this environment, with its
    /// deployment statuses.
    #[schemars(with = "Option<String>")]
    pub deployment_environment: Option<Spanned<String>>,
    /// A PEM file of the CA that signed the API's certificate (then the only one trusted).
    #[schemars(with = "Option<String>")]
    pub ca_file: Option<Spanned<String>>,
    /// Each attempt's deadline. Default `"15s"`.
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Retried (with growing waits) until this long after the event. Default `"24h"`.
    #[schemars(with = "Option<String>")]
    pub give_up_after: Option<Spanned<String>>,
}

/// `[[notify]]`: one place told how deploys went.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Notify")]
pub struct RawNotify {
    /// Required: what hooks and rules call it in their `notify`.
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Required: the kind of target.
    #[schemars(with = "Option<String>")]
    #[schemars(extend("enum" = ["slack", "discord", "teams", "matrix", "ntfy", "webhook"]))]
    pub kind: Option<Spanned<String>>,
    /// The URL to post to (a chat's webhook URL is a secret: prefer `url_file`).
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
    /// A file holding the URL.
    #[schemars(with = "Option<String>")]
    pub url_file: Option<Spanned<String>>,
    /// `webhook`: files holding `whsec_...` Standard Webhooks secrets; with several,
    /// every message is signed with each (rotation).
    #[schemars(with = "Option<StringList>")]
    pub secret_file: Option<Spanned<StringList>>,
    /// `matrix`: the homeserver's base URL.
    #[schemars(with = "Option<String>")]
    pub homeserver: Option<Spanned<String>>,
    /// `matrix`: the room id, `!abc123:example.org`.
    #[schemars(with = "Option<String>")]
    pub room: Option<Spanned<String>>,
    /// `matrix`: a file holding the access token (required); `ntfy`: an access token.
    #[schemars(with = "Option<String>")]
    pub token_file: Option<Spanned<String>>,
    /// Which events: `"all"`, or a list of `queued`, `started`, `succeeded`, `failed`,
    /// `timed_out`, `cancelled`, `superseded`, `interrupted`. Default: every final state
    /// but `superseded`.
    #[schemars(with = "Option<StringList>")]
    pub on: Option<Spanned<StringList>>,
    /// A PEM file of the CA that signed the target's certificate (then the only one trusted).
    #[schemars(with = "Option<String>")]
    pub ca_file: Option<Spanned<String>>,
    /// Each attempt's deadline. Default `"15s"`.
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Retried (with growing waits) until this long after the event. Default `"24h"`.
    #[schemars(with = "Option<String>")]
    pub give_up_after: Option<Spanned<String>>,
}

/// `limits`: per-command resource limits.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Limits")]
pub struct RawLimits {
    /// CPU time, a duration like `"10m"`.
    #[schemars(with = "Option<String>")]
    pub cpu: Option<Spanned<String>>,
    /// Address space, a size like `"2GiB"`.
    #[schemars(with = "Option<String>")]
    pub memory: Option<Spanned<String>>,
    /// Open files.
    #[schemars(with = "Option<i64>", range(min = 1))]
    pub nofile: Option<Spanned<i64>>,
    /// Processes of the user the command runs as.
    #[schemars(with = "Option<i64>", range(min = 1))]
    pub nproc: Option<Spanned<i64>>,
    /// Steps of niceness below the daemon's own CPU priority that the job's checkout and
    /// commands run at, 0 to 19. Default 10: a build that wants every core still leaves
    /// the daemon the CPU to answer deliveries; with nothing else to run it runs at full
    /// speed. 0 runs them at the daemon's priority.
    #[schemars(with = "Option<i64>", range(min = 0, max = 19))]
    pub nice: Option<Spanned<i64>>,
}

/// One value or several: `secret_file = "a"` or `secret_file = ["new", "old"]` while a
/// secret is being rotated.
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StringList, E> {
                Ok(StringList(vec![s.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(StringList(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A command as written: an argv list, or a string for `/bin/sh -c`.
pub enum RawCommand {
    Argv(Vec<String>),
    Shell(String),
}

impl<'de> Deserialize<'de> for RawCommand {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCommand;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a command: an argv list like ["make", "deploy"] or a shell string"#)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawCommand, E> {
                Ok(RawCommand::Shell(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawCommand, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(RawCommand::Argv(v))
            }
        }
        d.deserialize_any(V)
    }
}
