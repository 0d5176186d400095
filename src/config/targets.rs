//! `[hook.status]` and `[[notify]]`: who is told how a deploy went, checked into
//! [`StatusReport`] and [`NotifyTarget`] (tokens and chat URLs read, URLs checked,
//! `on` lists turned into the job events each one hears about).

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawNotify, RawStatus};
use super::validate::Validator;
use crate::event::Forge;
use crate::notify::forge_api::{self, ApiKind};
use crate::secret::Secret;
use crate::store::EventKind;

/// How a target's messages are sent.
#[derive(Debug, Clone)]
pub struct Sending {
    /// A private CA's certificates, the only roots then trusted for this target.
    pub ca_file: Option<PathBuf>,
    /// Each attempt's deadline.
    pub timeout: Duration,
    /// Retried until this long after the event.
    pub give_up_after: Duration,
}

/// `[hook.status]`: commit statuses (and, on GitHub, deployments) on the hook's forge.
#[derive(Debug)]
pub struct StatusReport {
    pub api: ApiKind,
    /// Without a trailing `/`.
    pub api_url: String,
    pub token: Secret,
    /// With `{hook}` and `{rule}` still to fill in.
    pub context: String,
    /// The job events that post a status.
    pub on: Vec<EventKind>,
    /// GitHub: also a Deployment to this environment.
    pub deployment_environment: Option<String>,
    pub sending: Sending,
}

/// `[[notify]]`: one named target.
#[derive(Debug)]
pub struct NotifyTarget {
    pub name: String,
    pub kind: TargetKind,
    /// The job events it hears about.
    pub on: Vec<EventKind>,
    pub sending: Sending,
}

/// Where a target's messages go, per kind. URLs of chat webhooks are secrets (whoever
/// has one can post), so they are kept as [`Secret`]s and never logged.
#[derive(Debug)]
pub enum TargetKind {
    Slack {
        url: Secret,
    },
    Discord {
        url: Secret,
    },
    Teams {
        url: Secret,
    },
    Ntfy {
        url: Secret,
        token: Option<Secret>,
    },
    /// deployhook's own JSON, signed per Standard Webhooks with each key.
    Webhook {
        url: Secret,
        keys: Vec<Secret>,
    },
    Matrix {
        homeserver: String,
        room: String,
        token: Secret,
    },
}

impl TargetKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TargetKind::Slack { .. } => "slack",
            TargetKind::Discord { .. } => "discord",
            TargetKind::Teams { .. } => "teams",
            TargetKind::Ntfy { .. } => "ntfy",
            TargetKind::Webhook { .. } => "webhook",
            TargetKind::Matrix { .. } => "matrix",
        }
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_GIVE_UP: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_CONTEXT: &str = "deployhook/{hook}/{rule}";

/// The final states, as the events that record them.
const FINAL: [EventKind; 6] = [
    EventKind::Succeeded,
    EventKind::Failed,
    EventKind::TimedOut,
    EventKind::Cancelled,
    EventKind::Superseded,
    EventKind::Interrupted,
];

/// What a `[[notify]]` `on` list may name.
const NOTIFY_EVENTS: [EventKind; 8] = [
    EventKind::Queued,
    EventKind::Started,
    EventKind::Succeeded,
    EventKind::Failed,
    EventKind::TimedOut,
    EventKind::Cancelled,
    EventKind::Superseded,
    EventKind::Interrupted,
];

/// An API or target URL: `https://`, or `http://` to a loopback address only (anything
/// else would send a token or a message in the clear). Returned without a trailing `/`.
pub(super) fn outbound_url(u: &str) -> Result<String, String> {
    let (secure, rest) = if let Some(r) = u.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = u.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("is not an https:// URL".to_owned());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') || u.contains(char::is_whitespace) {
        return Err("is not a URL with a host (and no user name or spaces)".to_owned());
    }
    if !secure && !is_loopback(authority) {
        return Err(
            "is http://, which would send the token and messages in the clear; use https:// (http:// is allowed only for loopback addresses)"
                .to_owned(),
        );
    }
    Ok(u.trim_end_matches('/').to_owned())
}

/// `host[:port]` names this machine: `localhost`, 127.0.0.0/8 or `[::1]`.
fn is_loopback(authority: &str) -> bool {
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Validator<'_> {
    /// The `[[notify]]` targets; their names are remembered for the hooks' `notify`.
    pub(super) fn notify_targets(&mut self, raw: Vec<Spanned<RawNotify>>) -> Vec<NotifyTarget> {
        let mut out: Vec<NotifyTarget> = Vec::new();
        for t in raw {
            let span = t.span();
            let t = t.into_inner();
            let name = match &t.name {
                None => {
                    self.error(
                        span.clone(),
                        r#"[[notify]] is missing `name` (for example: name = "team-chat")"#,
                    );
                    None
                }
                Some(n) if !valid_name(n.get_ref()) => {
                    self.error(
                        n.span(),
                        format!(
                            "notify name {:?} must be 1 to 64 letters, digits, `-`, `_` or `.`",
                            n.get_ref()
                        ),
                    );
                    None
                }
                Some(n) if self.notify_names.iter().any(|k| k == n.get_ref()) => {
                    self.error(
                        n.span(),
                        format!(
                            "duplicate [[notify]] name `{}`; each target needs its own",
                            n.get_ref()
                        ),
                    );
                    None
                }
                Some(n) => Some(n.get_ref().clone()),
            };
            if let Some(n) = &name {
                self.notify_names.push(n.clone());
            }
            let target = self.notify_target(t, &span);
            if let (Some(name), Some((kind, on, sending))) = (name, target) {
                out.push(NotifyTarget {
                    name,
                    kind,
                    on,
                    sending,
                });
            }
        }
        out
    }

    fn notify_target(
        &mut self,
        t: RawNotify,
        span: &Range<usize>,
    ) -> Option<(TargetKind, Vec<EventKind>, Sending)> {
        let sending = self.sending(t.ca_file, t.timeout, t.give_up_after);
        let on = self.notify_on(t.on);
        let Some(kind) = t.kind else {
            self.error(
                span.clone(),
                "[[notify]] is missing `kind` (one of slack, discord, teams, matrix, ntfy, webhook)",
            );
            return None;
        };
        let kind_name = kind.get_ref().as_str();
        let kind = match kind_name {
            "slack" | "discord" | "teams" | "ntfy" | "webhook" => {
                let url = self.target_url(t.url, t.url_file, span, kind_name)?;
                match kind_name {
                    "slack" => TargetKind::Slack { url },
                    "discord" => TargetKind::Discord { url },
                    "teams" => TargetKind::Teams { url },
                    "ntfy" => TargetKind::Ntfy {
                        url,
                        token: match t.token_file {
                            Some(f) => {
                                Some(Secret::new(self.secret_from_file(f.get_ref(), &f.span())?))
                            }
                            None => None,
                        },
                    },
                    _ => TargetKind::Webhook {
                        url,
                        keys: self.webhook_keys(t.secret_file, span)?,
                    },
                }
            }
            "matrix" => {
                let Some(h) = t.homeserver else {
                    self.error(
                        span.clone(),
                        r#"a matrix target needs `homeserver` (for example: homeserver = "https://matrix.example.org")"#,
                    );
                    return None;
                };
                let homeserver = self
                    .field(Some(h), "homeserver", |h| outbound_url(h))
                    .ok()??;
                let room = match t.room {
                    Some(r) if r.get_ref().starts_with('!') && r.get_ref().contains(':') => {
                        r.into_inner()
                    }
                    Some(r) => {
                        self.error(
                            r.span(),
                            format!(
                                "room {:?} is not a room id like \"!abc123:example.org\" (Element: Room settings, Advanced)",
                                r.get_ref()
                            ),
                        );
                        return None;
                    }
                    None => {
                        self.error(span.clone(), "a matrix target needs `room`");
                        return None;
                    }
                };
                let Some(f) = t.token_file else {
                    self.error(
                        span.clone(),
                        "a matrix target needs `token_file`, a file holding the bot's access token",
                    );
                    return None;
                };
                let token = Secret::new(self.secret_from_file(f.get_ref(), &f.span())?);
                TargetKind::Matrix {
                    homeserver,
                    room,
                    token,
                }
            }
            other => {
                self.error(
                    kind.span(),
                    format!(
                        "unknown notify kind {other:?}; use slack, discord, teams, matrix, ntfy or webhook"
                    ),
                );
                return None;
            }
        };
        Some((kind, on?, sending?))
    }

    /// A target's URL, inline (warned about for chat webhooks, whose URL is the
    /// credential) or from `url_file`.
    fn target_url(
        &mut self,
        url: Option<Spanned<String>>,
        file: Option<Spanned<String>>,
        span: &Range<usize>,
        kind: &str,
    ) -> Option<Secret> {
        let (text, at) = match (url, file) {
            (Some(_), Some(f)) => {
                self.error(f.span(), "set only one of url and url_file");
                return None;
            }
            (Some(u), None) => {
                if matches!(kind, "slack" | "discord" | "teams") {
                    self.warning(
                        u.span(),
                        format!("inline {kind} URL: whoever reads this file can post as deployhook; prefer url_file"),
                    );
                }
                (u.get_ref().clone(), u.span())
            }
            (None, Some(f)) => {
                let bytes = self.secret_from_file(f.get_ref(), &f.span())?;
                let Ok(text) = String::from_utf8(bytes) else {
                    self.error(f.span(), "the URL file is not UTF-8 text");
                    return None;
                };
                (text, f.span())
            }
            (None, None) => {
                self.error(
                    span.clone(),
                    format!("a {kind} target needs `url_file` (or `url`)"),
                );
                return None;
            }
        };
        match outbound_url(text.trim()) {
            // The message says what is wrong, never the URL (it may be the secret).
            Err(e) => {
                self.error(at, format!("the {kind} URL {e}"));
                None
            }
            Ok(u) => Some(Secret::new(u.into_bytes())),
        }
    }

    fn webhook_keys(
        &mut self,
        files: Option<Spanned<super::raw::StringList>>,
        span: &Range<usize>,
    ) -> Option<Vec<Secret>> {
        let Some(files) = files else {
            self.error(
                span.clone(),
                "a webhook target needs `secret_file`: a file holding a whsec_... secret, so that receivers can check who sent it",
            );
            return None;
        };
        let at = files.span();
        let mut keys = Vec::new();
        for f in files.into_inner().0 {
            let bytes = self.secret_from_file(&f, &at)?;
            let key = std::str::from_utf8(&bytes)
                .ok()
                .and_then(crate::verify::decode_whsec);
            let Some(key) = key else {
                self.error(
                    at.clone(),
                    format!("{f} does not hold a whsec_<base64> secret (Standard Webhooks)"),
                );
                return None;
            };
            keys.push(Secret::new(key));
        }
        if keys.is_empty() {
            self.error(at, "secret_file names no file");
            return None;
        }
        Some(keys)
    }

    fn notify_on(&mut self, on: Option<Spanned<super::raw::StringList>>) -> Option<Vec<EventKind>> {
        let Some(on) = on else {
            return Some(
                FINAL
                    .into_iter()
                    .filter(|k| *k != EventKind::Superseded)
                    .collect(),
            );
        };
        let span = on.span();
        let names = on.into_inner().0;
        if names == ["all"] {
            return Some(NOTIFY_EVENTS.to_vec());
        }
        let mut out = Vec::new();
        for n in &names {
            let Some(k) = EventKind::parse(n).filter(|k| NOTIFY_EVENTS.contains(k)) else {
                self.error(
                    span.clone(),
                    format!(
                        "on: unknown event {n:?}; use \"all\" or a list of queued, started, succeeded, failed, timed_out, cancelled, superseded, interrupted"
                    ),
                );
                return None;
            };
            out.push(k);
        }
        Some(out)
    }

    fn sending(
        &mut self,
        ca_file: Option<Spanned<String>>,
        timeout: Option<Spanned<String>>,
        give_up_after: Option<Spanned<String>>,
    ) -> Option<Sending> {
        let ca_file = match ca_file {
            None => Some(None),
            Some(f) => self.ca_file(&f).map(Some),
        };
        let timeout = self.field(timeout, "timeout", |s| super::validate::nonzero_duration(s));
        let give_up = self.field(give_up_after, "give_up_after", |s| {
            super::validate::nonzero_duration(s)
        });
        Some(Sending {
            ca_file: ca_file?,
            timeout: timeout.ok()?.unwrap_or(DEFAULT_TIMEOUT),
            give_up_after: give_up.ok()?.unwrap_or(DEFAULT_GIVE_UP),
        })
    }

    /// A `ca_file` (of a target, a forge API or the database): resolved against the
    /// config's folder, and holding at least one PEM certificate. `None` once reported.
    pub(super) fn ca_file(&mut self, f: &Spanned<String>) -> Option<PathBuf> {
        let path = self.resolve(f.get_ref());
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|pem| crate::http_client::Client::with_ca(DEFAULT_TIMEOUT, &pem).map(drop))
        {
            Ok(()) => Some(path),
            Err(e) => {
                self.error(f.span(), format!("ca_file {}: {e}", path.display()));
                None
            }
        }
    }

    /// `[hook.status]` of a hook on `forge`.
    pub(super) fn status(
        &mut self,
        raw: Spanned<RawStatus>,
        forge: Option<Forge>,
    ) -> Option<StatusReport> {
        let span = raw.span();
        let s = raw.into_inner();
        let sending = self.sending(s.ca_file, s.timeout, s.give_up_after);
        let token = match (s.token_file, s.token_env) {
            (Some(f), None) => self
                .secret_from_file(f.get_ref(), &f.span())
                .map(Secret::new),
            (None, Some(e)) => {
                let value = (self.env)(e.get_ref()).filter(|v| !v.trim().is_empty());
                if value.is_none() {
                    self.error(
                        e.span(),
                        format!("environment variable {} is not set or empty", e.get_ref()),
                    );
                }
                value.map(|v| Secret::new(v.trim().as_bytes().to_vec()))
            }
            (Some(_), Some(e)) => {
                self.error(e.span(), "set only one of token_file and token_env");
                None
            }
            (None, None) => {
                self.error(
                    span.clone(),
                    "[hook.status] needs token_file (or token_env): a forge API token that may set commit statuses",
                );
                None
            }
        };
        let api_url = self.field(s.api_url, "api_url", |u| outbound_url(u));
        let context = s
            .context
            .map_or_else(|| DEFAULT_CONTEXT.to_owned(), Spanned::into_inner);
        let on = self.status_on(s.on);
        let forge = forge?;
        let api_url = api_url.ok()?;
        let api = match forge {
            Forge::Github => ApiKind::Github,
            Forge::Gitlab => ApiKind::Gitlab,
            Forge::Gitea | Forge::Forgejo => ApiKind::Gitea,
            Forge::Bitbucket => match &api_url {
                Some(u) if !is_bitbucket_cloud(u) => ApiKind::BitbucketDataCenter,
                _ => ApiKind::BitbucketCloud,
            },
            Forge::Gogs | Forge::Generic => {
                self.error(
                    span,
                    format!(
                        "[hook.status]: forge = \"{}\" has no commit status API; remove [hook.status] (a [[notify]] webhook can report instead)",
                        forge.as_str()
                    ),
                );
                return None;
            }
        };
        let Some(api_url) = api_url.or_else(|| forge_api::default_api_url(api).map(str::to_owned))
        else {
            self.error(
                span,
                format!(
                    "[hook.status] needs api_url for a self-hosted {} (for example \"https://git.example.com/api/v1\")",
                    forge.as_str()
                ),
            );
            return None;
        };
        let deployment_environment = match s.deployment_environment {
            Some(e) if api != ApiKind::Github => {
                self.error(
                    e.span(),
                    "deployment_environment is for GitHub only (GitHub Deployments)",
                );
                None
            }
            Some(e) if e.get_ref().trim().is_empty() => {
                self.error(e.span(), "deployment_environment is empty");
                None
            }
            e => e.map(Spanned::into_inner),
        };
        Some(StatusReport {
            api,
            api_url,
            token: token?,
            context,
            on: on?,
            deployment_environment,
            sending: sending?,
        })
    }

    /// `on` of `[hook.status]`: `final` is every final state; `superseded` among them
    /// only when `queued` is posted too (else the commit has no status to close).
    fn status_on(&mut self, on: Option<Spanned<Vec<Spanned<String>>>>) -> Option<Vec<EventKind>> {
        let names: Vec<Spanned<String>> = on.map_or_else(
            || {
                ["started", "final"]
                    .into_iter()
                    .map(|n| Spanned::new(0..0, n.to_owned()))
                    .collect()
            },
            Spanned::into_inner,
        );
        let queued = names.iter().any(|n| n.get_ref() == "queued");
        let mut out = Vec::new();
        for n in names {
            match n.get_ref().as_str() {
                "queued" => out.push(EventKind::Queued),
                "started" => out.push(EventKind::Started),
                "final" => out.extend(
                    FINAL
                        .into_iter()
                        .filter(|k| queued || *k != EventKind::Superseded),
                ),
                other => {
                    self.error(
                        n.span(),
                        format!("on: {other:?} is not one of queued, started, final"),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// Checks that every name in a `notify` list is a `[[notify]]` target.
    pub(super) fn notify_names(
        &mut self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for n in raw.map(Spanned::into_inner).unwrap_or_default() {
            if self.notify_names.iter().any(|k| k == n.get_ref()) {
                if !out.contains(n.get_ref()) {
                    out.push(n.into_inner());
                }
            } else {
                let known: Vec<&str> = self.notify_names.iter().map(String::as_str).collect();
                let hint = match super::diag::did_you_mean(n.get_ref(), &known) {
                    Some(k) => format!("; did you mean `{k}`?"),
                    None if known.is_empty() => "; define it in a [[notify]] table".to_owned(),
                    None => format!("; the [[notify]] targets are {}", known.join(", ")),
                };
                self.error(
                    n.span(),
                    format!(
                        "notify: no [[notify]] target is named `{}`{hint}",
                        n.get_ref()
                    ),
                );
            }
        }
        out
    }
}

/// A `[[notify]]` name or a node name: 1 to 64 letters, digits, `-`, `_` or `.`.
pub(super) fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Bitbucket Cloud's API is `https://api.bitbucket.org/2.0`; a Data Center server's is
/// its base URL, whose REST paths start `/rest/api/`. An `api_url` on another host that
/// ends in `/2.0` is Cloud's too (a proxy in front of it, or a test's fake).
fn is_bitbucket_cloud(api_url: &str) -> bool {
    api_url.ends_with("/2.0")
        || api_url
            .split("://")
            .nth(1)
            .and_then(|r| r.split(['/', ':']).next())
            .is_some_and(|h| h.eq_ignore_ascii_case("api.bitbucket.org"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_urls_are_https_or_loopback() {
        assert_eq!(
            outbound_url("https://api.github.com/").unwrap(),
            "https://api.github.com"
        );
        for ok in [
            "http://127.0.0.1:8080/api",
            "http://localhost/x",
            "http://[::1]:9/",
        ] {
            assert!(outbound_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/api",
            "http://10.0.0.1/",
            "ftp://x",
            "https://",
            "https://user:pw@host/",
            "http://localhost.example.com/",
        ] {
            assert!(outbound_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bitbucket_cloud_is_told_by_its_api_host() {
        assert!(is_bitbucket_cloud("https://api.bitbucket.org/2.0"));
        assert!(is_bitbucket_cloud("https://api.bitbucket.org"));
        assert!(is_bitbucket_cloud("http://127.0.0.1:8080/2.0"));
        assert!(!is_bitbucket_cloud("https://bitbucket.example.com"));
        assert!(!is_bitbucket_cloud("https://bitbucket.example.com/stash"));
    }
}
