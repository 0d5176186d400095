//! Turns the raw document into a [`Config`], collecting every problem (with its place in
//! the file) instead of stopping at the first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{GlobBuilder, GlobSetBuilder};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeTable;

use super::diag::{Diagnostic, Severity, Source, did_you_mean};
use super::raw::{
    RawCommand, RawConfig, RawHook, RawLimits, RawRule, RawServer, RawTls, StringList,
};
use super::units::{parse_duration, parse_size};
use super::{
    Command, Config, Globs, Hook, Invalid, Limits, Loaded, Matching, Nice, QueueMode, RemoteAuth,
    Rule, Server, StoreBackend, Tls, TreeLimits, keys,
};
use crate::access::Cidr;
use crate::event::{Forge, is_valid_ref_path};
use crate::secret::Secret;
use crate::verify::{Auth, decode_whsec};

const DEFAULT_LISTEN: &str = "127.0.0.1:9000";
const DEFAULT_STATE_DIR: &str = "state";
/// `max_queued` when a hook does not say.
const DEFAULT_MAX_QUEUED: usize = 1000;

/// Secrets and tokens shorter than this draw a warning: they can be guessed.
const MIN_SECRET_BYTES: usize = 16;

/// `[server] public_url`, without a trailing `/`.
fn public_url(u: &str) -> Result<String, String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.contains(['?', '#', ' ']) => {
            Ok(u.trim_end_matches('/').to_owned())
        }
        _ => Err(format!(
            "{u:?} is not an http:// or https:// URL (for example https://deploy.example.com)"
        )),
    }
}

fn weak(bytes: usize) -> String {
    format!(
        "a secret of {bytes} bytes can be guessed: use at least {MIN_SECRET_BYTES} random bytes (for example `openssl rand -hex 32`)"
    )
}

/// Created by the packages; see `[server] command_user`.
const DEFAULT_COMMAND_USER: &str = "deployhook-run";
const DEFAULT_MAX_BODY: u64 = 25 << 20;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

pub fn validate(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Invalid> {
    let src = Source {
        file: path.display().to_string(),
        text,
    };
    let mut doc = DeTable::parse(text).map_err(|e| Invalid {
        diagnostics: vec![src.error(e.span().unwrap_or(0..0), e.message().trim().to_owned())],
    })?;
    let mut diags = keys::strip_unknown(doc.get_mut(), &src);
    let raw = match RawConfig::deserialize(toml::de::Deserializer::from(doc)) {
        Ok(raw) => raw,
        Err(e) => {
            diags.push(src.error(e.span().unwrap_or(0..0), e.message().trim().to_owned()));
            return Err(Invalid { diagnostics: diags });
        }
    };
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
    let mut v = Validator {
        src: &src,
        base,
        env,
        diags,
        named: std::cell::RefCell::new(Vec::new()),
        notify_names: Vec::new(),
        sqlite_node: None,
    };
    let server = v.server(raw.server);
    let store = v.store(raw.store, server.as_ref().map(|s| s.kill_grace));
    if let Some(s) = &store
        && s.backend == StoreBackend::Sqlite
    {
        v.sqlite_node = Some(s.node_name.clone());
    }
    let notify = v.notify_targets(raw.notify);
    let hooks = v.hooks(raw.hook);
    let mut private_paths = v.named.into_inner();
    private_paths.push(v.base.clone());
    if let Some(dir) = env("CREDENTIALS_DIRECTORY") {
        private_paths.push(PathBuf::from(dir));
    }
    private_paths.sort();
    private_paths.dedup();
    let mut diags = v.diags;
    diags.sort_by_key(|d| d.position);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        return Err(Invalid { diagnostics: diags });
    }
    Ok(Loaded {
        config: Config {
            path: path.to_path_buf(),
            server: server.expect("no errors means the server section was valid"),
            store: store.expect("no errors means the store section was valid"),
            hooks,
            notify,
            private_paths,
        },
        warnings: diags,
    })
}

pub(super) struct Validator<'a> {
    src: &'a Source<'a>,
    base: PathBuf,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    diags: Vec<Diagnostic>,
    /// Every path the config named and [`Validator::resolve`] resolved (the daemon's own
    /// files), for [`Config::private_paths`]; `read_paths` are resolved without it.
    named: std::cell::RefCell<Vec<PathBuf>>,
    /// The `[[notify]]` names seen, for the hooks' and rules' `notify` lists.
    pub(super) notify_names: Vec<String>,
    /// With the sqlite store, this daemon's node name, which every `run_on` must name.
    pub(super) sqlite_node: Option<String>,
}

impl Validator<'_> {
    pub(super) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = self.src.error(span, message);
        self.diags.push(d);
    }

    /// A problem with no place in the file (a default that does not fit this machine).
    pub(super) fn error_without_place(&mut self, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            severity: Severity::Error,
            file: self.src.file.clone(),
            position: None,
            message: message.into(),
        });
    }

    pub(super) fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = self.src.warning(span, message);
        self.diags.push(d);
    }

    pub(super) fn errors(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub(super) fn resolve(&self, p: &str) -> PathBuf {
        let path = self.base.join(p);
        self.named.borrow_mut().push(path.clone());
        path
    }

    fn server(&mut self, raw: Option<Spanned<RawServer>>) -> Option<Server> {
        let s = raw.map_or_else(RawServer::default, Spanned::into_inner);
        let listen = self.field(s.listen, "listen", |l| {
            l.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "{l:?} is not address:port; write it like \"127.0.0.1:9000\" or \"[::]:9000\""
                )
            })
        });
        let state_dir = self.field(s.state_dir, "state_dir", |d| {
            if d.trim().is_empty() {
                Err("is empty; name a directory, like \"state\"".to_owned())
            } else {
                Ok(d.clone())
            }
        });
        let api_token = self.api_token(s.api_token_file);
        // Every key is checked before any `?`, so that all their problems are reported.
        let max_body = self.field(s.max_body, "max_body", |s| nonzero_size(s));
        let max_jobs = self.field(s.max_concurrent_jobs, "max_concurrent_jobs", |n| {
            positive(*n)
        });
        let kill_grace = self.field(s.kill_grace, "kill_grace", |s| nonzero_duration(s));
        let max_log_size = self.field(s.max_log_size, "max_log_size", |s| nonzero_size(s));
        let keep_jobs = self.field(s.keep_jobs, "keep_jobs", |n| positive(*n));
        let keep_for = self.field(s.keep_for, "keep_for", |s| nonzero_duration(s));
        let shutdown_grace =
            self.field(s.shutdown_grace, "shutdown_grace", |s| nonzero_duration(s));
        let log_level = self.field(s.log_level, "log_level", |l| {
            tracing_subscriber::EnvFilter::try_new(l)
                .map(|_| l.clone())
                .map_err(|e| {
                    format!(
                        "{l:?} is not a log filter ({e}); use error, warn, info, debug or trace"
                    )
                })
        });
        let allow_from = self.cidrs(s.allow_from, "allow_from");
        let trusted_proxies = self.cidrs(s.trusted_proxies, "trusted_proxies");
        let tls = s.tls.map(|t| self.tls(t));
        let command_user = self.field(s.command_user, "command_user", |u| {
            if u.is_empty() {
                Err("must name a user".to_owned())
            } else {
                Ok(u.clone())
            }
        });
        let public_url = self.field(s.public_url, "public_url", |u| public_url(u));
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let server = Server {
            listen: listen
                .ok()?
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            state_dir: self.resolve(
                &state_dir
                    .ok()?
                    .unwrap_or_else(|| DEFAULT_STATE_DIR.to_owned()),
            ),
            max_body: max_body.ok()?.unwrap_or(DEFAULT_MAX_BODY),
            max_concurrent_jobs: to_usize(max_jobs.ok()?.unwrap_or(4)),
            api_token: api_token.ok()?,
            kill_grace: kill_grace.ok()?.unwrap_or(Duration::from_secs(10)),
            max_log_size: max_log_size.ok()?.unwrap_or(1 << 20),
            keep_jobs: to_usize(keep_jobs.ok()?.unwrap_or(100)),
            keep_for: keep_for.ok()?.unwrap_or(Duration::from_secs(30 * 86_400)),
            shutdown_grace: shutdown_grace.ok()?.unwrap_or(Duration::from_secs(30)),
            watch_config: s.watch_config.is_some_and(Spanned::into_inner),
            log_level: log_level.ok()?,
            allow_from: allow_from?,
            trusted_proxies: trusted_proxies?,
            tls: match tls {
                None => None,
                Some(t) => Some(t?),
            },
            command_user: command_user
                .ok()?
                .unwrap_or_else(|| DEFAULT_COMMAND_USER.to_owned()),
            public_url: public_url.ok()?,
            metrics_auth: s.metrics_auth.is_some_and(Spanned::into_inner),
            allowed_hosts: s
                .allowed_hosts
                .map(|h| {
                    h.into_inner()
                        .into_iter()
                        .map(|n| n.into_inner().trim().to_ascii_lowercase())
                        .collect()
                })
                .unwrap_or_default(),
        };
        Some(server)
    }

    /// The API token in `api_token_file`, if one is named; `Err` once reported.
    fn api_token(&mut self, file: Option<Spanned<String>>) -> Result<Option<Secret>, ()> {
        let Some(f) = file else {
            return Ok(None);
        };
        let token = self.secret_from_file(f.get_ref(), &f.span());
        if let Some(t) = &token
            && t.len() < MIN_SECRET_BYTES
        {
            self.warning(f.span(), weak(t.len()));
        }
        token.map(|bytes| Some(Secret::new(bytes))).ok_or(())
    }

    fn cidrs(
        &mut self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
        key: &str,
    ) -> Option<Vec<Cidr>> {
        let before = self.errors();
        let mut out = Vec::new();
        for c in raw.map(Spanned::into_inner).unwrap_or_default() {
            match Cidr::parse(c.get_ref()) {
                Ok(cidr) => out.push(cidr),
                Err(e) => self.error(c.span(), format!("{key}: {e}")),
            }
        }
        (self.errors() == before).then_some(out)
    }

    /// Checks that the certificate and key exist and are what rustls can use.
    fn tls(&mut self, raw: Spanned<RawTls>) -> Option<Tls> {
        let span = raw.span();
        let t = raw.into_inner();
        let (Some(cert), Some(key)) = (t.cert_file, t.key_file) else {
            self.error(span, "[server.tls] needs both cert_file and key_file");
            return None;
        };
        let tls = Tls {
            cert_file: self.resolve(cert.get_ref()),
            key_file: self.resolve(key.get_ref()),
        };
        if let Err(e) = crate::tls::load(&tls) {
            self.error(cert.span(), format!("[server.tls]: {e}"));
            return None;
        }
        Some(tls)
    }

    /// Parses an optional key with `parse`, reporting a failure at the key's value as
    /// `key: message`. `Ok(None)`: the key is absent; `Err(())`: a problem was reported.
    pub(super) fn field<S, T>(
        &mut self,
        value: Option<Spanned<S>>,
        key: &str,
        parse: impl FnOnce(&S) -> Result<T, String>,
    ) -> Result<Option<T>, ()> {
        let Some(v) = value else { return Ok(None) };
        parse(v.get_ref())
            .map(Some)
            .map_err(|e| self.error(v.span(), format!("{key}: {e}")))
    }

    fn hooks(&mut self, raw: Vec<Spanned<RawHook>>) -> Vec<Hook> {
        let mut hooks: Vec<Hook> = Vec::new();
        let mut seen: Vec<(String, usize)> = Vec::new();
        for h in raw {
            if let Some(id) = &h.get_ref().id {
                let line = self.src.position(id.span().start).0;
                if let Some((_, first)) = seen.iter().find(|(s, _)| s == id.get_ref()) {
                    let msg = format!(
                        "duplicate hook id `{}` (first defined at line {first}); each hook needs its own id",
                        id.get_ref()
                    );
                    self.error(id.span(), msg);
                } else {
                    seen.push((id.get_ref().clone(), line));
                }
            }
            // Checked even when its id is taken, so that all its problems show at once.
            if let Some(hook) = self.hook(h) {
                hooks.push(hook);
            }
        }
        hooks
    }

    fn required<T>(
        &mut self,
        field: Option<Spanned<T>>,
        table: &Range<usize>,
        key: &str,
        example: &str,
    ) -> Option<Spanned<T>> {
        if field.is_none() {
            self.error(
                table.clone(),
                format!("[[hook]] is missing `{key}` (for example: {example})"),
            );
        }
        field
    }

    fn hook(&mut self, raw: Spanned<RawHook>) -> Option<Hook> {
        let span = raw.span();
        let h = raw.into_inner();
        let before = self.errors();

        let id = self.required(h.id, &span, "id", r#"id = "website""#);
        if let Some(id) = &id
            && !valid_hook_id(id.get_ref())
        {
            self.error(
                id.span(),
                format!(
                    "hook id {:?} must be 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit (it becomes the URL /hooks/<id>)",
                    id.get_ref()
                ),
            );
        }
        let forge = self.required(h.forge, &span, "forge", r#"forge = "github""#);
        let forge = forge.and_then(|f| self.forge(&f));
        let repository = self.required(
            h.repository,
            &span,
            "repository",
            r#"repository = "acme/website""#,
        );
        if let Some(r) = &repository
            && !valid_repository(r.get_ref())
        {
            self.error(
                r.span(),
                format!(
                    "repository {:?} must be owner/name as the forge names it (GitLab: the project's path with namespace)",
                    r.get_ref()
                ),
            );
        }
        let clone_url = self.required(
            h.clone_url,
            &span,
            "clone_url",
            r#"clone_url = "https://github.com/acme/website.git""#,
        );
        let clone_url = clone_url.and_then(|u| self.clone_url(&u));
        let git_auth = self.git_auth(
            h.ssh_key_file,
            h.known_hosts_file,
            h.token_file,
            h.token_user,
        );

        let secrets = self.secrets(&span, h.secret_file, h.secret_env, h.secret);
        let legacy_sha1 = h.legacy_sha1.as_ref().is_some_and(|b| *b.get_ref());
        if let (Some(flag), Some(f)) = (&h.legacy_sha1, forge)
            && f != Forge::Github
        {
            self.error(
                flag.span(),
                "legacy_sha1 applies only to forge = \"github\"",
            );
        }
        let auth = match (forge, secrets) {
            (Some(f), Some((secrets, secret_span))) => {
                self.auth(f, secrets, legacy_sha1, secret_span)
            }
            _ => None,
        };

        let checkout_limits =
            self.checkout_limits(h.max_checkout_size, h.max_checkout_files, h.max_tree_depth);
        let max_queued = self.field(h.max_queued, "max_queued", |n| positive(*n));
        let matching = self.matching(h.match_mode);
        let rules = self.rules(h.rule, &span, matching);
        let status = h.status.map(|s| self.status(s, forge));
        let notify = self.notify_names(h.notify);
        let run_on = self.run_on(h.run_on, id.as_ref().map(|i| i.get_ref().as_str()));

        if self.errors() > before {
            return None;
        }
        Some(Hook {
            id: id?.into_inner(),
            forge: forge?,
            auth: auth?,
            repository: repository?.into_inner(),
            clone_url: clone_url?,
            git_auth: git_auth?,
            shallow: h.shallow.is_some_and(Spanned::into_inner),
            submodules: h.submodules.is_some_and(Spanned::into_inner),
            submodule_urls: strings(h.submodule_urls),
            checkout_limits: checkout_limits?,
            max_queued: max_queued.ok()?.map_or(DEFAULT_MAX_QUEUED, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            }),
            rules,
            matching,
            status: status.flatten(),
            notify,
            run_on: run_on.ok()?,
        })
    }

    /// `match`; `First` when absent (or wrong, which is reported).
    fn matching(&mut self, raw: Option<Spanned<String>>) -> Matching {
        let matching = self.field(raw, "match", |m| match m.as_str() {
            "first" => Ok(Matching::First),
            "all" => Ok(Matching::All),
            other => Err(format!("{other:?} is not a match mode: use \"first\" (the first rule that matches deploys) or \"all\" (every rule that matches, each a job of its own)")),
        });
        matching.ok().flatten().unwrap_or(Matching::First)
    }

    fn checkout_limits(
        &mut self,
        size: Option<Spanned<String>>,
        files: Option<Spanned<i64>>,
        depth: Option<Spanned<i64>>,
    ) -> Option<TreeLimits> {
        let default = TreeLimits::default();
        let max_bytes = self.field(size, "max_checkout_size", |s| nonzero_size(s));
        let max_files = self.field(files, "max_checkout_files", |n| positive(*n));
        let max_depth = self.field(depth, "max_tree_depth", |n| {
            positive(*n).and_then(|n| {
                u32::try_from(n).map_err(|_| format!("must be at most {}, not {n}", u32::MAX))
            })
        });
        Some(TreeLimits {
            max_bytes: max_bytes.ok()?.unwrap_or(default.max_bytes),
            max_files: max_files.ok()?.unwrap_or(default.max_files),
            max_depth: max_depth.ok()?.unwrap_or(default.max_depth),
        })
    }

    fn forge(&mut self, f: &Spanned<String>) -> Option<Forge> {
        let parsed = Forge::from_name(f.get_ref());
        if parsed.is_none() {
            let names: Vec<&str> = Forge::ALL.iter().map(|f| f.as_str()).collect();
            let hint = did_you_mean(f.get_ref(), &names)
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            self.error(
                f.span(),
                format!(
                    "unknown forge {:?}; {hint}forge is one of {}",
                    f.get_ref(),
                    names.join(", ")
                ),
            );
        }
        parsed
    }

    fn rules(
        &mut self,
        raw: Vec<Spanned<RawRule>>,
        hook: &Range<usize>,
        matching: Matching,
    ) -> Vec<Rule> {
        if raw.is_empty() {
            self.error(
                hook.clone(),
                "hook has no [[hook.rule]]: every push would be ignored; add a rule with branches and commands",
            );
        }
        let mut rules: Vec<(Range<usize>, Rule)> = Vec::new();
        for (i, r) in raw.into_iter().enumerate() {
            let span = r.span();
            if let Some(rule) = self.rule(i, r) {
                if let Some(name) = &rule.name
                    && let Some((_, first)) =
                        rules.iter().find(|(_, o)| o.name.as_ref() == Some(name))
                {
                    let message = format!(
                        "two rules are named `{name}` (the first is rule {}); a rule's name must be unique within its hook",
                        first.index
                    );
                    self.error(span.clone(), message);
                }
                rules.push((span, rule));
            }
        }
        // With `match = "all"` a rule that another covers still gets its own job.
        if matching == Matching::First {
            for (span, message) in shadowed_rules(&rules) {
                self.error(span, message);
            }
        }
        rules.into_iter().map(|(_, r)| r).collect()
    }

    fn clone_url(&mut self, u: &Spanned<String>) -> Option<String> {
        let url = u.get_ref();
        let problem = if url.is_empty() {
            Some("clone_url is empty".to_owned())
        } else if url.starts_with('-') {
            Some("clone_url must not start with `-`".to_owned())
        } else if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("clone_url must not contain spaces or control characters".to_owned())
        } else if has_credentials(url) {
            Some("clone_url contains a password or token; keep credentials out of the URL (and out of logs)".to_owned())
        } else {
            None
        };
        if let Some(p) = problem {
            self.error(u.span(), p);
            return None;
        }
        if url.starts_with("http://") {
            self.warning(
                u.span(),
                "clone_url uses plain http: what gets deployed can be changed in transit; use https or ssh",
            );
        }
        let is_remote = ["https://", "http://", "ssh://", "git://", "file://"]
            .iter()
            .any(|s| url.starts_with(s))
            || is_scp_like(url);
        if is_remote {
            Some(url.clone())
        } else {
            // A local path: resolve it like every other path in the file.
            let path = self.resolve(url);
            Some(
                std::path::absolute(&path)
                    .unwrap_or(path)
                    .display()
                    .to_string(),
            )
        }
    }

    /// Exactly one of the three secret keys; returns the secret values and the span of
    /// the key they came from.
    fn secrets(
        &mut self,
        hook: &Range<usize>,
        file: Option<Spanned<StringList>>,
        env: Option<Spanned<StringList>>,
        inline: Option<Spanned<StringList>>,
    ) -> Option<(Vec<Vec<u8>>, Range<usize>)> {
        let given: Vec<(&str, Spanned<StringList>)> = [
            ("secret_file", file),
            ("secret_env", env),
            ("secret", inline),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        let (key, list) = match given.len() {
            0 => {
                self.error(
                    hook.clone(),
                    "hook has no secret: set one of secret_file, secret_env or secret (an unsigned hook would deploy for anyone)",
                );
                return None;
            }
            1 => given.into_iter().next().expect("one"),
            _ => {
                let names: Vec<&str> = given.iter().map(|(k, _)| *k).collect();
                self.error(
                    given[1].1.span(),
                    format!(
                        "set only one of {}: a hook's secrets all come from one place",
                        names.join(" and ")
                    ),
                );
                return None;
            }
        };
        let span = list.span();
        let values = list.into_inner().0;
        if values.is_empty() {
            self.error(span, format!("{key} is an empty list"));
            return None;
        }
        let mut secrets = Vec::new();
        for v in values {
            let secret = match key {
                "secret_file" => self.secret_from_file(&v, &span),
                "secret_env" => {
                    let value = (self.env)(&v).filter(|s| !s.trim().is_empty());
                    if value.is_none() {
                        self.error(
                            span.clone(),
                            format!("environment variable {v} is not set or empty"),
                        );
                    }
                    value.map(|s| s.trim().as_bytes().to_vec())
                }
                _ => {
                    if v.is_empty() {
                        self.error(span.clone(), "secret is empty");
                        None
                    } else {
                        Some(v.into_bytes())
                    }
                }
            };
            secrets.push(secret?);
        }
        if key == "secret" {
            self.warning(
                span.clone(),
                "inline secret: anyone who can read this file can forge deliveries; prefer secret_file",
            );
        }
        for s in &secrets {
            // A `whsec_` secret's key is what its base64 decodes to.
            let bytes = std::str::from_utf8(s)
                .ok()
                .and_then(decode_whsec)
                .map_or(s.len(), |k| k.len());
            if bytes < MIN_SECRET_BYTES {
                self.warning(span.clone(), weak(bytes));
            }
        }
        Some((secrets, span))
    }

    /// Reads a secret file; `%d/NAME` is a systemd credential (`LoadCredential=NAME:...`),
    /// read from `$CREDENTIALS_DIRECTORY` as systemd's own `%d` specifier means.
    pub(super) fn secret_from_file(&mut self, name: &str, span: &Range<usize>) -> Option<Vec<u8>> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.secret_file_path(name, span)?;
        match std::fs::read(&path) {
            Ok(bytes) => {
                let trimmed = bytes.trim_ascii().to_vec();
                if trimmed.is_empty() {
                    self.error(
                        span.clone(),
                        format!("secret file {} is empty", path.display()),
                    );
                    return None;
                }
                if let Ok(meta) = std::fs::metadata(&path)
                    && meta.permissions().mode() & 0o004 != 0
                {
                    self.warning(
                        span.clone(),
                        format!(
                            "secret file {} is readable by every user; chmod 600 it",
                            path.display()
                        ),
                    );
                }
                Some(trimmed)
            }
            Err(e) => {
                self.error(
                    span.clone(),
                    format!("cannot read secret file {}: {e}", path.display()),
                );
                None
            }
        }
    }

    /// Where the secret file `name` is: `%d/NAME` in `$CREDENTIALS_DIRECTORY`, else
    /// resolved against the config's folder. `None` once reported.
    pub(super) fn secret_file_path(&mut self, name: &str, span: &Range<usize>) -> Option<PathBuf> {
        if let Some(credential) = name.strip_prefix("%d/") {
            let Some(dir) = (self.env)("CREDENTIALS_DIRECTORY") else {
                self.error(
                    span.clone(),
                    format!("{name} names a systemd credential, but $CREDENTIALS_DIRECTORY is not set: add LoadCredential={credential}:<file> to the unit"),
                );
                return None;
            };
            Some(PathBuf::from(dir).join(credential))
        } else {
            Some(self.resolve(name))
        }
    }

    fn auth(
        &mut self,
        forge: Forge,
        secrets: Vec<Vec<u8>>,
        legacy_sha1: bool,
        span: Range<usize>,
    ) -> Option<Auth> {
        let as_keys = |secrets: &[Vec<u8>]| -> Option<Vec<Secret>> {
            secrets
                .iter()
                .map(|s| {
                    std::str::from_utf8(s)
                        .ok()
                        .and_then(decode_whsec)
                        .map(Secret::new)
                })
                .collect()
        };
        let plain =
            |secrets: Vec<Vec<u8>>| secrets.into_iter().map(Secret::new).collect::<Vec<_>>();
        Some(match forge {
            Forge::Github => Auth::Github {
                secrets: plain(secrets),
                legacy_sha1,
            },
            Forge::Gitea => Auth::Gitea {
                secrets: plain(secrets),
                headers: &["X-Gitea-Signature"],
            },
            Forge::Forgejo => Auth::Gitea {
                secrets: plain(secrets),
                headers: &["X-Forgejo-Signature", "X-Gitea-Signature"],
            },
            Forge::Gogs => Auth::Gitea {
                secrets: plain(secrets),
                headers: &["X-Gogs-Signature"],
            },
            Forge::Bitbucket => Auth::Bitbucket {
                secrets: plain(secrets),
            },
            Forge::Gitlab => {
                let signing = secrets.iter().filter(|s| s.starts_with(b"whsec_")).count();
                if signing == 0 {
                    Auth::GitlabToken {
                        tokens: plain(secrets),
                    }
                } else if signing == secrets.len() {
                    let Some(keys) = as_keys(&secrets) else {
                        self.error(span, "a GitLab signing token must be whsec_ followed by base64, as GitLab shows it");
                        return None;
                    };
                    Auth::StandardWebhooks { keys }
                } else {
                    self.error(
                        span,
                        "mix of GitLab secret tokens and whsec_ signing tokens: use one kind for a hook (signing tokens are safer)",
                    );
                    return None;
                }
            }
            Forge::Generic => {
                let Some(keys) = as_keys(&secrets) else {
                    self.error(
                        span,
                        "generic hooks are signed per Standard Webhooks: the secret must be whsec_ followed by base64, e.g. \"whsec_$(openssl rand -base64 32)\"",
                    );
                    return None;
                };
                Auth::StandardWebhooks { keys }
            }
        })
    }

    fn rule(&mut self, index: usize, raw: Spanned<RawRule>) -> Option<Rule> {
        let span = raw.span();
        let r = raw.into_inner();
        let before = self.errors();
        let name = self.field(r.name, "name", |n| {
            if valid_hook_id(n) && !n.bytes().all(|b| b.is_ascii_digit()) {
                Ok(n.clone())
            } else {
                Err(format!("rule name {n:?} must be 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit, and not only digits (an unnamed rule is known by its index)"))
            }
        });
        let branches = r
            .branches
            .as_ref()
            .and_then(|b| self.ref_globs(b, "branch", "refs/heads/"));
        let tags = r
            .tags
            .as_ref()
            .and_then(|t| self.ref_globs(t, "tag", "refs/tags/"));
        if branches.is_none() && tags.is_none() && self.errors() == before {
            self.error(
                span.clone(),
                "rule matches no ref: add branches = [\"main\"] and/or tags = [\"v*\"]",
            );
        }
        let paths = r.paths.as_ref().and_then(|p| self.path_globs(p));
        let commands = self.commands(r.commands, &span);
        let timeout = self.field(r.timeout, "timeout", |s| nonzero_duration(s));
        let queue = self.field(r.queue, "queue", |q| match q.as_str() {
            "supersede" => Ok(QueueMode::Supersede),
            "fifo" => Ok(QueueMode::Fifo),
            other => Err(format!("{other:?} is not a queue mode: use \"supersede\" (a newer push replaces a pending one) or \"fifo\" (every push runs, in order)")),
        });
        let env = self.env(r.env);
        let run_as = self.field(
            r.run_as,
            "run_as",
            |user| match nix::unistd::User::from_name(user) {
                Ok(Some(_)) => Ok(user.clone()),
                _ => Err(format!("no user named {user:?} on this machine")),
            },
        );
        let limits = r.limits.map(Spanned::into_inner).map(|l| self.limits(l));
        let notify = self.notify_names(r.notify);
        let secrets = self.rule_secrets(r.secrets, env.as_ref());
        let lock = self.lock(r.lock);
        let on_failure = r
            .on_failure
            .map(|l| self.command_list(l.into_inner()))
            .unwrap_or_default();
        let finally = r
            .finally
            .map(|l| self.command_list(l.into_inner()))
            .unwrap_or_default();
        let read_paths: Vec<PathBuf> = r
            .read_paths
            .map(Spanned::into_inner)
            .unwrap_or_default()
            .into_iter()
            .map(|p| self.base.join(p.get_ref()))
            .collect();
        if self.errors() > before {
            return None;
        }
        Some(Rule {
            index,
            name: name.ok()?,
            branches,
            tags,
            paths,
            commands: commands?,
            timeout: timeout.ok()?.unwrap_or(DEFAULT_TIMEOUT),
            queue: queue.ok()?.unwrap_or(QueueMode::Supersede),
            retry_interrupted: r.retry_interrupted.is_some_and(Spanned::into_inner),
            env: env?,
            run_as: run_as.ok()?,
            limits: limits.unwrap_or(Some(Limits::default()))?,
            sandbox: r.sandbox.is_some_and(Spanned::into_inner),
            read_paths,
            notify,
            secrets: secrets?,
            lock: lock.ok()?,
            on_failure,
            finally,
        })
    }

    fn env(
        &mut self,
        raw: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    ) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        let before = self.errors();
        for (k, v) in raw.map(Spanned::into_inner).unwrap_or_default() {
            let name = k.get_ref();
            if !valid_var_name(name) {
                self.error(k.span(), format!("env: {name:?} is not a valid variable name (letters, digits and _, not starting with a digit)"));
            } else if name.starts_with("DEPLOYHOOK_") {
                self.error(
                    k.span(),
                    format!("env: {name} is set by deployhook itself for every job"),
                );
            } else if v.get_ref().contains('\0') {
                self.error(
                    v.span(),
                    format!("env: the value of {name} contains a NUL character"),
                );
            } else {
                if looks_secret(name) {
                    self.warning(
                        k.span(),
                        format!("env: {name} looks like a secret, and env values are in hooks.toml for anyone who reads it; put it in a file and name it in secrets = {{ {name} = \"secrets/...\" }} (masked in job logs)"),
                    );
                }
                out.push((name.clone(), v.into_inner()));
            }
        }
        (self.errors() == before).then_some(out)
    }

    fn limits(&mut self, raw: RawLimits) -> Option<Limits> {
        let cpu = self.field(raw.cpu, "limits.cpu", |s| nonzero_duration(s));
        let memory = self.field(raw.memory, "limits.memory", |s| nonzero_size(s));
        let nofile = self.field(raw.nofile, "limits.nofile", |n| positive(*n));
        let nproc = self.field(raw.nproc, "limits.nproc", |n| positive(*n));
        let nice = self.field(raw.nice, "limits.nice", |n| {
            u8::try_from(*n).ok().and_then(Nice::new).ok_or_else(|| {
                format!(
                    "must be 0 (the daemon's own CPU priority) to {} (the lowest), not {n}",
                    Nice::MAX
                )
            })
        });
        Some(Limits {
            nice: nice.ok()?.unwrap_or_default(),
            cpu: cpu.ok()?,
            memory: memory.ok()?,
            nofile: nofile.ok()?,
            nproc: nproc.ok()?,
        })
    }

    fn git_auth(
        &mut self,
        ssh_key: Option<Spanned<String>>,
        known_hosts: Option<Spanned<String>>,
        token: Option<Spanned<String>>,
        token_user: Option<Spanned<String>>,
    ) -> Option<RemoteAuth> {
        let readable = |v: &mut Self, f: &Spanned<String>, key: &str| -> Option<PathBuf> {
            let path = v.resolve(f.get_ref());
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => Some(path),
                Ok(_) => {
                    v.error(f.span(), format!("{key}: {} is not a file", path.display()));
                    None
                }
                Err(e) => {
                    v.error(
                        f.span(),
                        format!("{key}: cannot read {}: {e}", path.display()),
                    );
                    None
                }
            }
        };
        match (ssh_key, known_hosts, token, token_user) {
            (None, None, None, None) => Some(RemoteAuth::None),
            (Some(_), _, Some(t), _) => {
                self.error(t.span(), "set only one of ssh_key_file and token_file");
                None
            }
            (Some(k), None, None, _) => {
                self.error(
                    k.span(),
                    "ssh_key_file needs known_hosts_file: the server's host key is checked against it (get it with ssh-keyscan, then verify it)",
                );
                None
            }
            (Some(k), Some(h), None, user) => {
                if let Some(u) = user {
                    self.error(
                        u.span(),
                        "token_user goes with token_file, not ssh_key_file",
                    );
                }
                let key_file = readable(self, &k, "ssh_key_file");
                let known_hosts = readable(self, &h, "known_hosts_file");
                Some(RemoteAuth::SshKey {
                    key_file: key_file?,
                    known_hosts: known_hosts?,
                })
            }
            (None, Some(h), _, _) => {
                self.error(h.span(), "known_hosts_file is only used with ssh_key_file");
                None
            }
            (None, None, Some(t), user) => {
                let token_file = readable(self, &t, "token_file")?;
                Some(RemoteAuth::Token {
                    token_file,
                    user: user.map_or_else(|| "git".to_owned(), Spanned::into_inner),
                })
            }
            (None, None, None, Some(u)) => {
                self.error(u.span(), "token_user goes with token_file");
                None
            }
        }
    }

    fn ref_globs(
        &mut self,
        list: &Spanned<Vec<Spanned<String>>>,
        what: &str,
        prefix: &str,
    ) -> Option<Globs> {
        if list.get_ref().is_empty() {
            // An empty list is how a rule says "no branches" (or tags); it is only an
            // error if the rule then matches nothing at all, checked by the caller.
            return None;
        }
        let before = self.errors();
        for p in list.get_ref() {
            let pat = p.get_ref();
            if let Some(short) = pat.strip_prefix(prefix) {
                self.error(
                    p.span(),
                    format!("{what} patterns match the name without {prefix}: write `{short}`, not `{pat}`"),
                );
            } else if let Some(why) = never_matches_ref(pat) {
                self.error(
                    p.span(),
                    format!("{what} pattern `{pat}` can never match: {why}"),
                );
            }
        }
        let globs = self.compile(list)?;
        (self.errors() == before).then_some(globs)
    }

    fn path_globs(&mut self, list: &Spanned<Vec<Spanned<String>>>) -> Option<Globs> {
        if list.get_ref().is_empty() {
            self.error(
                list.span(),
                "paths = [] can never match; remove `paths` to deploy whatever files changed",
            );
            return None;
        }
        let before = self.errors();
        for p in list.get_ref() {
            let pat = p.get_ref();
            if pat.starts_with('/') || pat.starts_with("./") {
                let fixed = pat.trim_start_matches("./").trim_start_matches('/');
                self.error(
                    p.span(),
                    format!("path patterns are relative to the repository root: write `{fixed}`, not `{pat}`"),
                );
            }
        }
        let globs = self.compile(list)?;
        (self.errors() == before).then_some(globs)
    }

    fn compile(&mut self, list: &Spanned<Vec<Spanned<String>>>) -> Option<Globs> {
        let mut builder = GlobSetBuilder::new();
        let mut ok = true;
        for p in list.get_ref() {
            match GlobBuilder::new(p.get_ref())
                .literal_separator(true)
                .backslash_escape(true)
                .build()
            {
                Ok(g) => {
                    builder.add(g);
                }
                Err(e) => {
                    ok = false;
                    self.error(p.span(), format!("bad glob: {e}"));
                }
            }
        }
        if !ok {
            return None;
        }
        match builder.build() {
            Ok(set) => Some(Globs {
                patterns: list.get_ref().iter().map(|p| p.get_ref().clone()).collect(),
                set,
            }),
            Err(e) => {
                self.error(list.span(), format!("bad glob: {e}"));
                None
            }
        }
    }

    fn commands(
        &mut self,
        raw: Option<Spanned<Vec<Spanned<RawCommand>>>>,
        rule: &Range<usize>,
    ) -> Option<Vec<Command>> {
        let Some(list) = raw.filter(|l| !l.get_ref().is_empty()) else {
            self.error(
                rule.clone(),
                "rule has no commands: add commands = [[\"make\", \"deploy\"]] (an argv list) or [\"./deploy.sh\"] (run by /bin/sh -c)",
            );
            return None;
        };
        Some(self.command_list(list.into_inner()))
    }

    /// Commands as written, each checked; the bad ones reported and left out.
    pub(super) fn command_list(&mut self, list: Vec<Spanned<RawCommand>>) -> Vec<Command> {
        let mut out = Vec::new();
        for c in list {
            let span = c.span();
            match c.into_inner() {
                RawCommand::Argv(argv) if argv.first().is_none_or(String::is_empty) => {
                    self.error(
                        span,
                        "command is an empty argv list; its first item is the program to run",
                    );
                }
                RawCommand::Shell(s) if s.trim().is_empty() => {
                    self.error(span, "command is an empty string");
                }
                RawCommand::Argv(argv) => out.push(Command::Argv(argv)),
                RawCommand::Shell(s) => out.push(Command::Shell(s)),
            }
        }
        out
    }
}

/// Rules that an earlier rule always wins over, given as errors once all rules exist.
fn shadowed_rules(rules: &[(Range<usize>, Rule)]) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    for (i, (span, rule)) in rules.iter().enumerate() {
        for (_, earlier) in &rules[..i] {
            if earlier.paths.is_none()
                && covers(earlier.branches.as_ref(), rule.branches.as_ref())
                && covers(earlier.tags.as_ref(), rule.tags.as_ref())
            {
                out.push((
                    span.clone(),
                    format!(
                        "this rule can never match: rule {} above it matches every push this one does, and the first matching rule wins",
                        earlier.index + 1
                    ),
                ));
                break;
            }
        }
    }
    out
}

/// Whether globs `a` match at least every name globs `b` match (judged conservatively).
fn covers(a: Option<&Globs>, b: Option<&Globs>) -> bool {
    match (a, b) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => {
            a.patterns.iter().any(|p| p == "**")
                || b.patterns.iter().all(|p| a.patterns.contains(p))
        }
    }
}

/// A list of strings as written, spans dropped; empty when absent.
fn strings(raw: Option<Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
    raw.map(|l| {
        l.into_inner()
            .into_iter()
            .map(Spanned::into_inner)
            .collect()
    })
    .unwrap_or_default()
}

fn positive(n: i64) -> Result<u64, String> {
    u64::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("must be a whole number above 0, not {n}"))
}

fn nonzero_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err("must be more than 0".to_owned()),
        n => Ok(n),
    }
}

pub(super) fn nonzero_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        Err("must be more than 0".to_owned())
    } else {
        Ok(d)
    }
}

/// Letters, digits and `_`, not starting with a digit.
pub(super) fn valid_var_name(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A variable name like `*_TOKEN`, `*_KEY`, `*_SECRET` or `*PASSWORD*`.
fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["_TOKEN", "_KEY", "_SECRET"]
        .iter()
        .any(|s| upper.ends_with(s))
        || upper.contains("PASSWORD")
        || ["TOKEN", "SECRET"].contains(&upper.as_str())
}

fn valid_hook_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn valid_repository(r: &str) -> bool {
    r.contains('/')
        && !r.starts_with('/')
        && !r.ends_with('/')
        && r.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

fn has_credentials(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// `user@host:path`, the scp-like form git accepts for ssh.
fn is_scp_like(url: &str) -> bool {
    match url.split_once(':') {
        Some((host, _)) => host.contains('@') && !host.contains('/'),
        None => false,
    }
}

/// Why a branch or tag glob can never match a valid ref name, if it cannot.
fn never_matches_ref(pat: &str) -> Option<String> {
    if pat.is_empty() {
        return Some("it is empty".to_owned());
    }
    // Replace glob wildcards by a plain character and check what remains against git's
    // ref-name rules: anything they forbid cannot appear in a name we are sent.
    let literal: String = pat
        .chars()
        .map(|c| {
            if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | ',' | '!') {
                'x'
            } else {
                c
            }
        })
        .collect();
    if is_valid_ref_path(&literal) {
        return None;
    }
    let reason = if pat.contains("..") {
        "git ref names cannot contain `..`"
    } else if pat.chars().any(char::is_whitespace) {
        "git ref names cannot contain spaces"
    } else if pat.as_bytes().ends_with(b".lock") {
        "git ref names cannot end with `.lock`"
    } else if pat.starts_with('/') || pat.ends_with('/') || pat.contains("//") {
        "git ref names cannot start or end with `/` or contain `//`"
    } else {
        "git ref names cannot contain that (see git check-ref-format)"
    };
    Some(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_patterns_that_can_never_match() {
        assert_eq!(never_matches_ref("release/*"), None);
        assert_eq!(never_matches_ref("v[0-9]*"), None);
        assert_eq!(never_matches_ref("**"), None);
        assert!(never_matches_ref("a..b").unwrap().contains("`..`"));
        assert!(never_matches_ref("my branch").unwrap().contains("spaces"));
        assert!(never_matches_ref("x.lock").is_some());
        assert!(never_matches_ref("release/").is_some());
    }

    #[test]
    fn clone_url_helpers() {
        assert!(has_credentials("https://user:tok@host/x.git"));
        assert!(!has_credentials("https://git@host/x.git"));
        assert!(!has_credentials("ssh://git@host:22/x.git"));
        assert!(is_scp_like("git@github.com:acme/website.git"));
        assert!(!is_scp_like("./repo"));
        assert!(!is_scp_like("/srv/a:b"));
    }
}
