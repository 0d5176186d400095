//! Reads the parts of a clone URL this module needs: host and port for host-key checks,
//! a redacted form for messages, relative submodule URLs, and the cache folder name.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// How a URL reaches its repository, as far as authentication cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Scheme {
    /// `ssh://`, `git+ssh://`, `ssh+git://` or scp-like `user@host:path`.
    Ssh,
    Https,
    Http,
    Git,
    File,
    /// A local path, without a scheme.
    Local,
    /// Any other `scheme://`, as written.
    Other(String),
}

/// The parts of a clone URL that say where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint {
    pub scheme: Scheme,
    pub user: Option<String>,
    /// Without brackets for IPv6 literals, as libgit2 reports it to the certificate check.
    pub host: Option<String>,
    pub port: Option<u16>,
}

impl Endpoint {
    pub fn parse(url: &str) -> Endpoint {
        if let Some((scheme, rest)) = url.split_once("://") {
            let scheme = match scheme.to_ascii_lowercase().as_str() {
                "ssh" | "git+ssh" | "ssh+git" => Scheme::Ssh,
                "https" => Scheme::Https,
                "http" => Scheme::Http,
                "git" => Scheme::Git,
                "file" => Scheme::File,
                _ => Scheme::Other(scheme.to_owned()),
            };
            let authority = rest.split('/').next().unwrap_or_default();
            let (user, host_port) = match authority.rsplit_once('@') {
                Some((userinfo, hp)) => {
                    let user = userinfo.split(':').next().unwrap_or_default();
                    (Some(user.to_owned()), hp)
                }
                None => (None, authority),
            };
            let (host, port) = split_host_port(host_port);
            return Endpoint {
                scheme,
                user: user.filter(|u| !u.is_empty()),
                host: (!host.is_empty()).then(|| host.to_owned()),
                port,
            };
        }
        if let Some((user, host)) = scp_like(url) {
            return Endpoint {
                scheme: Scheme::Ssh,
                user: user.map(str::to_owned),
                host: Some(host.to_owned()),
                port: None,
            };
        }
        Endpoint {
            scheme: Scheme::Local,
            user: None,
            host: None,
            port: None,
        }
    }

    /// The port an SSH connection goes to.
    pub fn ssh_port(&self) -> u16 {
        self.port.unwrap_or(22)
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(host_port: &str) -> (&str, Option<u16>) {
    if let Some(inner) = host_port.strip_prefix('[') {
        if let Some((host, after)) = inner.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port);
        }
        return (host_port, None);
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, port.parse().ok())
        }
        _ => (host_port, None),
    }
}

/// git's rule for `[user@]host:path`: a colon before any slash, and not a local path.
fn scp_like(url: &str) -> Option<(Option<&str>, &str)> {
    if url.starts_with('/') || url.starts_with('.') {
        return None;
    }
    let colon = url.find(':')?;
    if url.find('/').is_some_and(|slash| slash < colon) {
        return None;
    }
    let user_host = &url[..colon];
    let (user, host) = match user_host.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, user_host),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some((user, host))
}

/// The password of `scheme://user:password@host/...`, if the URL carries one.
fn password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// The URL as it may appear in a message or a log line: an embedded password is masked.
pub(super) fn redact(url: &str) -> String {
    scrub(url, url)
}

/// Masks the URL's embedded password wherever it occurs in `text` (libgit2 messages
/// sometimes quote the URL they failed on).
pub(super) fn scrub(text: &str, url: &str) -> String {
    match password(url) {
        Some(secret) => text.replace(secret, "***"),
        None => text.to_owned(),
    }
}

/// Resolves a submodule URL from `.gitmodules` the way git does: `./x` and `../x` are
/// relative to the superproject's remote URL, anything else is used as written.
pub(super) fn resolve_relative(base: &str, relative: &str) -> String {
    if !relative.starts_with("./") && !relative.starts_with("../") {
        return relative.to_owned();
    }
    let mut base = base.trim_end_matches('/').to_owned();
    // Where the path starts: a `..` never climbs into the scheme and host.
    let path_start = match base.find("://") {
        Some(i) => base[i + 3..].find('/').map_or(base.len(), |j| i + 3 + j),
        None => 0,
    };
    // scp-like bases have no slash to strip at the top level: `host:repo` + `../x` is `host:x`.
    let mut separator = '/';
    let mut rest = relative;
    loop {
        if let Some(r) = rest.strip_prefix("./") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix("../") {
            rest = r;
            if let Some(slash) = base[path_start..].rfind('/') {
                base.truncate(path_start + slash);
                separator = '/';
            } else if let Some(colon) = base[path_start..].rfind(':') {
                base.truncate(path_start + colon + 1);
                separator = ':';
            } else {
                base.truncate(path_start);
            }
        } else {
            break;
        }
    }
    if base.ends_with(':') && separator == ':' {
        format!("{base}{rest}")
    } else {
        format!("{base}/{rest}")
    }
}

/// The cache folder's name: a readable stem from the URL's last segment, and a hash of
/// the whole URL so two repositories with the same name never share a cache.
pub(super) fn cache_name(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    let hash = digest[..12].iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or_default();
    let last = last.strip_suffix(".git").unwrap_or(last);
    let stem: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    let stem = stem.trim_start_matches('.');
    if stem.is_empty() {
        format!("{hash}.git")
    } else {
        format!("{stem}-{hash}.git")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(url: &str) -> (Scheme, Option<String>, Option<String>, Option<u16>) {
        let e = Endpoint::parse(url);
        (e.scheme, e.user, e.host, e.port)
    }

    fn want(
        scheme: Scheme,
        user: Option<&str>,
        host: &str,
        port: Option<u16>,
    ) -> (Scheme, Option<String>, Option<String>, Option<u16>) {
        (scheme, user.map(str::to_owned), Some(host.to_owned()), port)
    }

    #[test]
    fn parses_every_url_form() {
        assert_eq!(
            ep("https://github.com/acme/app.git"),
            want(Scheme::Https, None, "github.com", None)
        );
        assert_eq!(
            ep("https://deploy:s3cret@git.example.com:8443/acme/app"),
            want(Scheme::Https, Some("deploy"), "git.example.com", Some(8443))
        );
        assert_eq!(
            ep("ssh://git@example.com:2222/acme/app.git"),
            want(Scheme::Ssh, Some("git"), "example.com", Some(2222))
        );
        assert_eq!(
            ep("ssh://[::1]:2222/srv/app"),
            want(Scheme::Ssh, None, "::1", Some(2222))
        );
        assert_eq!(
            ep("git@github.com:acme/app.git"),
            want(Scheme::Ssh, Some("git"), "github.com", None)
        );
        assert_eq!(
            ep("example.com:app.git"),
            want(Scheme::Ssh, None, "example.com", None)
        );
        assert_eq!(
            ep("git://127.0.0.1:9418/app"),
            want(Scheme::Git, None, "127.0.0.1", Some(9418))
        );
        assert_eq!(ep("file:///srv/git/app").0, Scheme::File);
        assert_eq!(ep("/srv/git/app").0, Scheme::Local);
        assert_eq!(ep("./app:with-colon").0, Scheme::Local);
        assert_eq!(ep("dir/app:x").0, Scheme::Local);
    }

    #[test]
    fn redaction_masks_only_the_password() {
        assert_eq!(
            redact("https://deploy:s3cret@example.com/a.git"),
            "https://deploy:***@example.com/a.git"
        );
        assert_eq!(
            redact("https://example.com/a.git"),
            "https://example.com/a.git"
        );
        assert_eq!(
            scrub(
                "failed to fetch https://deploy:s3cret@example.com/a.git: 401",
                "https://deploy:s3cret@example.com/a.git"
            ),
            "failed to fetch https://deploy:***@example.com/a.git: 401"
        );
    }

    #[test]
    fn relative_submodule_urls_resolve_like_git() {
        assert_eq!(
            resolve_relative("https://h/org/app.git", "../lib.git"),
            "https://h/org/lib.git"
        );
        assert_eq!(
            resolve_relative("https://h/org/app/", "./sub"),
            "https://h/org/app/sub"
        );
        assert_eq!(
            resolve_relative("https://h/org/app", "../../other/lib"),
            "https://h/other/lib"
        );
        assert_eq!(
            resolve_relative("git@h:org/app.git", "../lib.git"),
            "git@h:org/lib.git"
        );
        assert_eq!(
            resolve_relative("git@h:app.git", "../lib.git"),
            "git@h:lib.git"
        );
        assert_eq!(resolve_relative("/srv/git/app", "../lib"), "/srv/git/lib");
        assert_eq!(
            resolve_relative("file:///srv/git/app", "../lib"),
            "file:///srv/git/lib"
        );
        assert_eq!(
            resolve_relative("https://h/org/app", "https://other/lib"),
            "https://other/lib"
        );
    }

    #[test]
    fn cache_names_are_readable_and_distinct() {
        let a = cache_name("https://github.com/acme/app.git");
        let b = cache_name("https://gitlab.com/acme/app.git");
        assert!(a.starts_with("app-"), "{a}");
        assert_eq!(std::path::Path::new(&a).extension(), Some("git".as_ref()));
        assert_ne!(a, b);
        assert_eq!(a, cache_name("https://github.com/acme/app.git"));
        assert!(!cache_name("/").starts_with('-'));
        assert!(!cache_name("https://h/..").contains(".."));
    }
}
