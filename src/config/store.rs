//! `[store]` and the hooks' `run_on`, checked into [`StoreSettings`]: which store keeps
//! the queue (SQLite in `state_dir`, or a PostgreSQL database replicas share), this
//! daemon's name among the replicas, and how long a running job's lease lasts.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::diag::did_you_mean;
use super::raw::RawStore;
use super::targets::valid_name;
use super::units::format_duration;
use super::validate::{Validator, nonzero_duration};
use crate::secret::Secret;
use crate::store::PgTarget;

/// How often a worker renews the leases of its running jobs (and notices cancels from
/// other processes). The lease minimum ([`min_lease`]) is counted in it, so the worker's
/// heartbeat must be this one.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// `[store] lease` when the file does not say (unless [`min_lease`] is longer).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Kept between a replica stopping its jobs and its lease running out.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

const BACKENDS: [&str; 2] = ["sqlite", "postgres"];

/// `[store]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    /// How long a running job stays its replica's without a heartbeat; at least
    /// [`min_lease`] of `[server] kill_grace`.
    pub lease: Duration,
    /// This daemon's name among the replicas (what `run_on` names): 1 to 64 letters,
    /// digits, `-`, `_` or `.`.
    pub node_name: String,
}

/// Which store keeps the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per Config, never in a collection; a Box would only add a deref"
)]
pub enum StoreBackend {
    /// SQLite in `[server] state_dir`, this daemon's alone.
    Sqlite,
    /// A PostgreSQL database, shared by the replicas.
    Postgres(Postgres),
}

/// `backend = "postgres"`: where the database is and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postgres {
    /// Checked: a user and a database, no password, TLS for TCP hosts.
    pub target: PgTarget,
    /// Read from `password_file` (trimmed), to be set on the target's config.
    pub password: Option<Secret>,
    /// Absolute; a private CA, then the only roots trusted. `None`: the system's.
    pub ca_file: Option<PathBuf>,
}

/// The shortest lease for which fencing holds: a replica that cannot reach the database
/// stops its running jobs before its lease runs out, which takes up to two heartbeats
/// (the one that failed and the next), then `kill_grace`; plus a margin.
pub fn min_lease(kill_grace: Duration) -> Duration {
    HEARTBEAT * 2 + kill_grace + LEASE_MARGIN
}

impl Validator<'_> {
    /// `[store]`; an absent table is SQLite with the default lease and the host name.
    /// `kill_grace` is `None` when `[server]` had problems (then the lease's minimum is
    /// not checked). `None` once a problem is reported.
    pub(super) fn store(
        &mut self,
        raw: Option<Spanned<RawStore>>,
        kill_grace: Option<Duration>,
    ) -> Option<StoreSettings> {
        let (span, s) = match raw {
            Some(r) => (Some(r.span()), r.into_inner()),
            None => (None, RawStore::default()),
        };
        let node_name = self.node_name(s.node_name, span.as_ref());
        let lease = self.lease(s.lease, kill_grace);
        let backend = match self.backend_name(s.backend)? {
            "sqlite" => {
                for (key, value) in [
                    ("url", s.url),
                    ("password_file", s.password_file),
                    ("ca_file", s.ca_file),
                ] {
                    if let Some(v) = value {
                        self.error(
                            v.span(),
                            format!("{key}: only for backend = \"postgres\"; the sqlite store lives in [server] state_dir"),
                        );
                    }
                }
                Some(StoreBackend::Sqlite)
            }
            _ => self
                .postgres(
                    s.url,
                    s.password_file,
                    s.ca_file.as_ref(),
                    span.unwrap_or(0..0),
                )
                .map(StoreBackend::Postgres),
        };
        Some(StoreSettings {
            backend: backend?,
            lease: lease?,
            node_name: node_name?,
        })
    }

    /// `backend`, one of [`BACKENDS`]; `"sqlite"` when absent. `None` once reported.
    fn backend_name(&mut self, raw: Option<Spanned<String>>) -> Option<&'static str> {
        let Some(b) = raw else {
            return Some("sqlite");
        };
        if let Some(known) = BACKENDS.iter().find(|k| **k == b.get_ref()) {
            return Some(known);
        }
        let hint = did_you_mean(b.get_ref(), &BACKENDS)
            .map(|n| format!("did you mean `{n}`? "))
            .unwrap_or_default();
        self.error(
            b.span(),
            format!(
                "unknown store backend {:?}; {hint}backend is \"sqlite\" (the default) or \"postgres\"",
                b.get_ref()
            ),
        );
        None
    }

    fn postgres(
        &mut self,
        url: Option<Spanned<String>>,
        password_file: Option<Spanned<String>>,
        ca_file: Option<&Spanned<String>>,
        table: Range<usize>,
    ) -> Option<Postgres> {
        if url.is_none() {
            self.error(
                table,
                "[store] backend = \"postgres\" needs `url` (for example: url = \"postgres://deployhook@db.example.com/deployhook\")",
            );
        }
        let target = self.field(url, "url", |u| PgTarget::parse(u));
        let password = match password_file {
            None => Some(None),
            Some(f) => self
                .secret_from_file(f.get_ref(), &f.span())
                .map(|p| Some(Secret::new(p))),
        };
        let ca_path = match ca_file {
            None => Some(None),
            Some(f) => self.ca_file(f).map(Some),
        };
        let target = target.ok()??;
        if let Some(f) = ca_file
            && !target.needs_tls()
        {
            self.warning(
                f.span(),
                "ca_file is not used: the url names only local sockets, which have no TLS",
            );
        }
        Some(Postgres {
            target,
            password: password?,
            ca_file: ca_path?,
        })
    }

    /// `node_name`, or the host name. `None` once reported.
    fn node_name(
        &mut self,
        raw: Option<Spanned<String>>,
        table: Option<&Range<usize>>,
    ) -> Option<String> {
        if raw.is_some() {
            return self
                .field(raw, "node_name", |n| {
                    if valid_name(n) {
                        Ok(n.clone())
                    } else {
                        Err(format!(
                            "{n:?} must be 1 to 64 letters, digits, `-`, `_` or `.`"
                        ))
                    }
                })
                .ok()
                .flatten();
        }
        let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned());
        match host {
            Ok(h) if valid_name(&h) => Some(h),
            other => {
                let why = match other {
                    Ok(h) => format!(
                        "the host name {h:?} is not 1 to 64 letters, digits, `-`, `_` or `.`"
                    ),
                    Err(e) => format!("cannot read the host name: {e}"),
                };
                let message = format!("node_name: {why}; set node_name in [store]");
                match table {
                    Some(t) => self.error(t.clone(), message),
                    None => self.error_without_place(message),
                }
                None
            }
        }
    }

    /// `lease`: [`DEFAULT_LEASE`] or the minimum for `kill_grace`, whichever is longer,
    /// when absent; refused when shorter than the minimum. `None` once reported.
    fn lease(
        &mut self,
        raw: Option<Spanned<String>>,
        kill_grace: Option<Duration>,
    ) -> Option<Duration> {
        let Some(raw) = raw else {
            return Some(kill_grace.map_or(DEFAULT_LEASE, |k| min_lease(k).max(DEFAULT_LEASE)));
        };
        self.field(Some(raw), "lease", |s| {
            let lease = nonzero_duration(s)?;
            match kill_grace {
                Some(kill_grace) if lease < min_lease(kill_grace) => Err(format!(
                    "{s:?} is too short: a replica that cannot reach the database stops its running jobs before its lease runs out, which takes up to two heartbeats ({}) and kill_grace ({}), plus {} of margin; set lease = \"{}\" or more",
                    format_duration(HEARTBEAT * 2),
                    format_duration(kill_grace),
                    format_duration(LEASE_MARGIN),
                    format_duration(min_lease(kill_grace)),
                )),
                _ => Ok(lease),
            }
        })
        .ok()
        .flatten()
    }

    /// A hook's `run_on`: node names, at least one, no repeats; with the sqlite store
    /// (`sqlite_node` set) it must name this daemon. `Ok(None)`: absent, every
    /// replica; `Err(())`: a problem was reported.
    pub(super) fn run_on(
        &mut self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
        hook: Option<&str>,
    ) -> Result<Option<Vec<String>>, ()> {
        let Some(list) = raw else {
            return Ok(None);
        };
        let span = list.span();
        if list.get_ref().is_empty() {
            self.error(
                span,
                "run_on = [] would run this hook's jobs nowhere; name at least one node, or remove run_on to run them on every replica",
            );
            return Err(());
        }
        let before = self.errors();
        let mut names: Vec<String> = Vec::new();
        for n in list.into_inner() {
            if !valid_name(n.get_ref()) {
                let message = format!(
                    "run_on: node name {:?} must be 1 to 64 letters, digits, `-`, `_` or `.`",
                    n.get_ref()
                );
                self.error(n.span(), message);
            } else if names.contains(n.get_ref()) {
                let message = format!("run_on: `{}` is named twice", n.get_ref());
                self.error(n.span(), message);
            } else {
                names.push(n.into_inner());
            }
        }
        if self.errors() > before {
            return Err(());
        }
        if let Some(node) = self.sqlite_node.clone()
            && !names.contains(&node)
        {
            let hook = hook.map_or_else(|| "this hook".to_owned(), |h| format!("hook `{h}`"));
            self.error(
                span,
                format!(
                    "run_on: this daemon (node `{node}`) would never run {hook}'s jobs: with the sqlite store it is the only one; add \"{node}\" to run_on, or remove run_on"
                ),
            );
            return Err(());
        }
        Ok(Some(names))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, Severity, load_str};

    const HOOK: &str = r#"
[[hook]]
id = "site"
forge = "generic"
secret = "whsec_ZGVtby1rZXktZm9yLXRoZS1kZXBsb3lob29rLXJlYWRtZQ=="
repository = "acme/site"
clone_url = "https://example.com/site.git"
"#;

    const RULE: &str = r#"
[[hook.rule]]
branches = ["main"]
commands = [["true"]]
"#;

    /// A self-signed CA certificate (only read as PEM here, never used).
    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBkTCCATegAwIBAgIUdOs5vp18JaFBNd7glrHiF4u/y2QwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSZGVwbG95aG9vayB0ZXN0IENBMCAXDTI2MTIwMjE0MjcyM1oY
DzIxMjYxMTA4MTQyNzIzWjAdMRswGQYDVQQDDBJkZXBsb3lob29rIHRlc3QgQ0Ew
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARkgRGomyRNWMvkp4Ngfp2w/BzTfrsM
8EHbhlC3BIazcqcIx9Hj0q9R5DDNKYEZyJ8bPdfgT9p25UL6Ol+NEpsGo1MwUTAd
BgNVHQ4EFgQUAuFzZKUlUxsl8CQQHWsBLF+icNIwHwYDVR0jBBgwFoAUAuFzZKUl
Uxsl8CQQHWsBLF+icNIwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF
AiB+b6Gp0m8UDPygORS1k8/tQ/dxfzB9ZM115uKmG5qfKwIhAKKpaTtiJAwaVnbu
fPlGcb77NX2/wyW/h686gao4SNOI
-----END CERTIFICATE-----
";

    /// A temp dir with `hooks.toml` (`text`, then one hook with `hook_keys` and a rule),
    /// `pg-password`, `creds/pg-password` (a systemd credential), `ca.pem` and an empty
    /// `empty`.
    struct Dir(tempfile::TempDir);

    impl Dir {
        fn new() -> Dir {
            let dir = tempfile::tempdir().unwrap();
            let write = |name: &str, text: &str| {
                let path = dir.path().join(name);
                std::fs::write(&path, text).unwrap();
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .unwrap();
            };
            std::fs::create_dir(dir.path().join("creds")).unwrap();
            write("pg-password", "s3cret-pw\n");
            write("creds/pg-password", "from-systemd\n");
            write("ca.pem", CA_PEM);
            write("empty", "\n");
            Dir(dir)
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        fn load(&self, text: &str, hook_keys: &str) -> Result<Config, Vec<String>> {
            let config = self.path().join("hooks.toml");
            let creds = self.path().join("creds").display().to_string();
            let text = format!("{text}{HOOK}{hook_keys}\n{RULE}");
            let env = move |name: &str| (name == "CREDENTIALS_DIRECTORY").then(|| creds.clone());
            match load_str(&config, &text, &env) {
                Ok(loaded) => Ok(loaded.config),
                Err(invalid) => {
                    let file = format!("{}:", config.display());
                    Err(invalid
                        .diagnostics
                        .iter()
                        .filter(|d| d.severity == Severity::Error)
                        .map(|d| {
                            let line = d.to_string();
                            line.strip_prefix(&file).unwrap_or(&line).to_owned()
                        })
                        .collect())
                }
            }
        }

        fn errors(&self, text: &str, hook_keys: &str) -> Vec<String> {
            self.load(text, hook_keys)
                .expect_err("the config has errors")
        }
    }

    fn host_name() -> String {
        nix::unistd::gethostname().unwrap().into_string().unwrap()
    }

    #[test]
    fn without_a_store_table_it_is_sqlite_for_this_host() {
        let dir = Dir::new();
        let config = dir.load("", "").unwrap();
        assert_eq!(
            config.store,
            StoreSettings {
                backend: StoreBackend::Sqlite,
                lease: DEFAULT_LEASE,
                node_name: host_name(),
            }
        );
        assert_eq!(config.hooks[0].run_on, None);
        assert_eq!(DEFAULT_LEASE, Duration::from_secs(30));
        assert_eq!(min_lease(Duration::from_secs(10)), Duration::from_secs(25));
    }

    #[test]
    fn postgres_with_every_key() {
        let dir = Dir::new();
        let config = dir
            .load(
                r#"[store]
backend = "postgres"
url = "postgres://deployhook@db1.internal/deployhook"
password_file = "pg-password"
ca_file = "ca.pem"
node_name = "deploy-a"
lease = "1m"
"#,
                r#"run_on = ["deploy-b", "deploy-c"]"#,
            )
            .unwrap();
        let StoreBackend::Postgres(pg) = &config.store.backend else {
            panic!("{:?}", config.store.backend)
        };
        assert_eq!(
            pg.target.describe(),
            "postgres deployhook@db1.internal:5432/deployhook"
        );
        assert!(pg.target.needs_tls());
        assert_eq!(pg.password.as_ref().unwrap().expose(), b"s3cret-pw");
        let ca = dir.path().join("ca.pem");
        assert_eq!(pg.ca_file.as_ref(), Some(&ca));
        assert_eq!(config.store.node_name, "deploy-a");
        assert_eq!(config.store.lease, Duration::from_secs(60));
        assert_eq!(
            config.hooks[0].run_on,
            Some(vec!["deploy-b".to_owned(), "deploy-c".to_owned()])
        );
        // Sandboxed commands may read neither.
        for private in [&ca, &dir.path().join("pg-password")] {
            assert!(config.private_paths.contains(private), "{private:?}");
        }
    }

    #[test]
    fn a_password_can_be_a_systemd_credential_and_a_socket_needs_no_ca() {
        let dir = Dir::new();
        let config = dir
            .load(
                r#"[store]
backend = "postgres"
url = "postgres:///deployhook?host=/run/postgresql&user=deployhook"
password_file = "%d/pg-password"
"#,
                "",
            )
            .unwrap();
        let StoreBackend::Postgres(pg) = &config.store.backend else {
            panic!("{:?}", config.store.backend)
        };
        assert!(!pg.target.needs_tls());
        assert_eq!(pg.password.as_ref().unwrap().expose(), b"from-systemd");
        assert_eq!(pg.ca_file, None);
        assert!(config.private_paths.contains(&dir.path().join("creds")));
    }

    #[test]
    fn postgres_problems_are_all_reported_at_their_keys() {
        let dir = Dir::new();
        let errors = dir.errors(
            r#"[store]
backend = "postgres"
url = "postgres://deployhook:hunter2@db1.internal/deployhook"
password_file = "empty"
ca_file = "pg-password"
lease = "20s"
node_name = "deploy a"
"#,
            "",
        );
        let dir = dir.path().display();
        assert_eq!(
            errors,
            [
                "3:7: url: holds a password: remove it from the URL and put it in password_file (a file, or \"%d/NAME\" for a systemd credential)".to_owned(),
                format!("4:17: secret file {dir}/empty is empty"),
                format!("5:11: ca_file {dir}/pg-password: holds no PEM certificate"),
                "6:9: lease: \"20s\" is too short: a replica that cannot reach the database stops its running jobs before its lease runs out, which takes up to two heartbeats (10s) and kill_grace (10s), plus 5s of margin; set lease = \"25s\" or more".to_owned(),
                "7:13: node_name: \"deploy a\" must be 1 to 64 letters, digits, `-`, `_` or `.`".to_owned(),
            ]
        );
    }

    #[test]
    fn postgres_needs_a_url_and_tls_over_tcp() {
        let dir = Dir::new();
        assert_eq!(
            dir.errors("[store]\nbackend = \"postgres\"\n", ""),
            [
                "1:1: [store] backend = \"postgres\" needs `url` (for example: url = \"postgres://deployhook@db.example.com/deployhook\")"
            ]
        );
        assert_eq!(
            dir.errors(
                "[store]\nbackend = \"postgres\"\nurl = \"postgres://deployhook@db1.internal/deployhook?sslmode=prefer\"\n",
                ""
            ),
            ["3:7: url: sslmode=prefer would fall back to an unencrypted connection, and TLS is required for TCP hosts; remove sslmode (require is used)"]
        );
        assert_eq!(
            dir.errors(
                "[store]\nbackend = \"postgres\"\nurl = \"postgres://db1.internal\"\nca_file = \"missing.pem\"\n",
                ""
            ),
            [
                "3:7: url: names no user: add user, like postgres://deployhook@db.example.com/deployhook (or ?user=deployhook)".to_owned(),
                format!(
                    "4:11: ca_file {}/missing.pem: No such file or directory (os error 2)",
                    dir.path().display()
                ),
            ]
        );
    }

    #[test]
    fn the_backend_is_sqlite_or_postgres() {
        let dir = Dir::new();
        assert_eq!(
            dir.errors("[store]\nbackend = \"postgress\"\n", ""),
            [
                "2:11: unknown store backend \"postgress\"; did you mean `postgres`? backend is \"sqlite\" (the default) or \"postgres\""
            ]
        );
        assert_eq!(
            dir.errors("[store]\nbackend = \"mysql\"\nurll = \"x\"\n", ""),
            [
                "2:11: unknown store backend \"mysql\"; backend is \"sqlite\" (the default) or \"postgres\"",
                "3:1: unknown key `urll` in [store]; did you mean `url`?",
            ]
        );
    }

    #[test]
    fn postgres_keys_are_refused_with_sqlite() {
        let dir = Dir::new();
        assert_eq!(
            dir.errors(
                r#"[store]
url = "postgres://deployhook@db1.internal/deployhook"
password_file = "pg-password"
ca_file = "ca.pem"
"#,
                ""
            ),
            [
                "2:7: url: only for backend = \"postgres\"; the sqlite store lives in [server] state_dir",
                "3:17: password_file: only for backend = \"postgres\"; the sqlite store lives in [server] state_dir",
                "4:11: ca_file: only for backend = \"postgres\"; the sqlite store lives in [server] state_dir",
            ]
        );
        let config = dir
            .load("[store]\nbackend = \"sqlite\"\nlease = \"1m\"\n", "")
            .unwrap();
        assert_eq!(config.store.backend, StoreBackend::Sqlite);
        assert_eq!(config.store.lease, Duration::from_secs(60));
    }

    #[test]
    fn the_lease_minimum_follows_kill_grace() {
        let dir = Dir::new();
        // The default grows with it rather than refusing a config that never set a lease.
        let config = dir.load("[server]\nkill_grace = \"1m\"\n", "").unwrap();
        assert_eq!(config.store.lease, Duration::from_secs(75));
        let errors = dir.errors(
            "[server]\nkill_grace = \"1500ms\"\n[store]\nlease = \"15s\"\n",
            "",
        );
        assert_eq!(
            errors,
            [
                "4:9: lease: \"15s\" is too short: a replica that cannot reach the database stops its running jobs before its lease runs out, which takes up to two heartbeats (10s) and kill_grace (1500ms), plus 5s of margin; set lease = \"16500ms\" or more"
            ]
        );
        assert_eq!(
            dir.errors("[store]\nlease = \"soon\"\n", ""),
            [
                "2:9: lease: \"soon\" is not a duration: write a number and a unit (ms, s, m, h, d), like \"10m\" or \"1h30m\""
            ]
        );
    }

    #[test]
    fn run_on_names_nodes_once_each() {
        let dir = Dir::new();
        let postgres = "[store]\nbackend = \"postgres\"\nurl = \"postgres://deployhook@db1.internal/deployhook\"\nnode_name = \"deploy-a\"\n";
        assert_eq!(
            dir.errors(postgres, "run_on = []"),
            [
                "12:10: run_on = [] would run this hook's jobs nowhere; name at least one node, or remove run_on to run them on every replica"
            ]
        );
        assert_eq!(
            dir.errors(postgres, r#"run_on = ["deploy-b", "deploy b", "deploy-b"]"#),
            [
                "12:23: run_on: node name \"deploy b\" must be 1 to 64 letters, digits, `-`, `_` or `.`",
                "12:35: run_on: `deploy-b` is named twice",
            ]
        );
    }

    #[test]
    fn with_sqlite_run_on_must_name_this_daemon() {
        let dir = Dir::new();
        let sqlite = "[store]\nnode_name = \"deploy-a\"\n";
        assert_eq!(
            dir.errors(sqlite, r#"run_on = ["deploy-b"]"#),
            [
                "10:10: run_on: this daemon (node `deploy-a`) would never run hook `site`'s jobs: with the sqlite store it is the only one; add \"deploy-a\" to run_on, or remove run_on"
            ]
        );
        let config = dir
            .load(sqlite, r#"run_on = ["deploy-b", "deploy-a"]"#)
            .unwrap();
        assert_eq!(
            config.hooks[0].run_on,
            Some(vec!["deploy-b".to_owned(), "deploy-a".to_owned()])
        );
        // Without [store], this daemon is its host name.
        let me = host_name();
        assert!(dir.load("", &format!("run_on = [\"{me}\"]")).is_ok());
        assert!(
            dir.errors("", r#"run_on = ["not-this-host.invalid"]"#)[0]
                .contains(&format!("this daemon (node `{me}`)"))
        );
    }
}
