//! Where a submodule may be fetched from, and with which credentials. Its URL comes from
//! `.gitmodules`, which is repository content, written by whoever can push: left alone,
//! it would reach any local path (a root-only repository, checked out for an unprivileged
//! command), any host (a request from inside the network), and receive the hook's token or
//! key for repositories the operator never configured.
//!
//! The rules:
//! - a relative URL (`./x`, `../x`) is resolved against the parent's URL, and may be
//!   fetched if it stays on the parent's server (same scheme, host and port); a local
//!   parent's relative URLs are local paths, allowed only if listed;
//! - any other URL, a local path or `file://` among them, only if the hook lists it in
//!   `submodule_urls`;
//! - credentials go only to the parent's server: a token to the same host (never
//!   elsewhere, even if listed), an SSH key to the same host or a listed URL (public-key
//!   authentication does not reveal the key; the host key is still checked against the
//!   same known_hosts file).

use super::url::{self, Endpoint, Scheme};
use super::{Remote, RemoteAuth};

/// The remote to fetch the submodule whose `.gitmodules` URL is `raw` from, below
/// `parent`; or why it may not be fetched (a message naming the URL, its password masked).
pub(super) fn remote(parent: &Remote, raw: &str) -> Result<Remote, String> {
    let relative = raw.starts_with("./") || raw.starts_with("../");
    let resolved = if relative {
        url::resolve_relative(&parent.url, raw)
    } else {
        raw.to_owned()
    };
    let listed = parent.submodule_urls.iter().any(|u| same_url(u, &resolved));
    let local = |e: &Endpoint| matches!(e.scheme, Scheme::Local | Scheme::File);
    let (here, there) = (Endpoint::parse(&parent.url), Endpoint::parse(&resolved));
    let allowed = listed || (relative && !local(&here) && same_server(&here, &there));
    if !allowed {
        let why = if relative {
            "it resolves to a local path (or another server), and local paths are only fetched when listed"
        } else {
            "only relative URLs on the parent's server, and URLs listed in the hook's `submodule_urls`, are fetched"
        };
        return Err(format!(
            "submodule URL {} is not allowed: {why}",
            url::redact(&resolved)
        ));
    }
    let auth = match &parent.auth {
        RemoteAuth::Token { .. } if same_server(&here, &there) => parent.auth.clone(),
        RemoteAuth::SshKey { .. } if listed || same_server(&here, &there) => parent.auth.clone(),
        RemoteAuth::None | RemoteAuth::Token { .. } | RemoteAuth::SshKey { .. } => RemoteAuth::None,
    };
    Ok(Remote {
        url: resolved,
        auth,
        // The recorded commit is rarely a branch tip, and fetching a commit by id needs
        // server support: fetch submodules in full.
        shallow: false,
        submodules: true,
        limits: parent.limits,
        submodule_urls: parent.submodule_urls.clone(),
    })
}

/// The same server: scheme, host (ignoring case) and port.
fn same_server(a: &Endpoint, b: &Endpoint) -> bool {
    let host = |e: &Endpoint| e.host.as_deref().map(str::to_ascii_lowercase);
    a.scheme == b.scheme && host(a).is_some() && host(a) == host(b) && a.port == b.port
}

/// Two spellings of one URL: trailing slashes do not count.
fn same_url(listed: &str, url: &str) -> bool {
    listed.trim_end_matches('/') == url.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parent(url: &str, auth: RemoteAuth, listed: &[&str]) -> Remote {
        Remote {
            url: url.to_owned(),
            auth,
            shallow: true,
            submodules: true,
            limits: super::super::TreeLimits::default(),
            submodule_urls: listed.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn token() -> RemoteAuth {
        RemoteAuth::Token {
            token_file: PathBuf::from("/etc/deployhook/token"),
            user: "x-access-token".to_owned(),
        }
    }

    fn key() -> RemoteAuth {
        RemoteAuth::SshKey {
            key_file: PathBuf::from("/etc/deployhook/key"),
            known_hosts: PathBuf::from("/etc/deployhook/known_hosts"),
        }
    }

    #[test]
    fn relative_urls_stay_on_the_parents_server_with_its_credentials() {
        let p = parent("https://git.example.com/acme/site.git", token(), &[]);
        let sub = remote(&p, "../lib.git").unwrap();
        assert_eq!(sub.url, "https://git.example.com/acme/lib.git");
        assert_eq!(sub.auth, token());
        // `..` never climbs out of the path into the host.
        let sub = remote(&p, "../../../../other/x.git").unwrap();
        assert_eq!(sub.url, "https://git.example.com/other/x.git");
        let p = parent("git@git.example.com:acme/site.git", key(), &[]);
        let sub = remote(&p, "../../evil/x.git").unwrap();
        assert_eq!(
            Endpoint::parse(&sub.url).host.as_deref(),
            Some("git.example.com")
        );
        assert_eq!(sub.auth, key());
    }

    /// The attacks: `.gitmodules` naming a local path (a root-only repository), another
    /// host (a request from inside the network), or `file://`.
    #[test]
    fn other_urls_are_refused_unless_listed() {
        let p = parent("https://git.example.com/acme/site.git", token(), &[]);
        for raw in [
            "/root/secret-repo",
            "file:///root/secret-repo",
            "https://169.254.169.254/latest/meta-data",
            "https://git.example.com:8443/acme/lib.git",
            "http://git.example.com/acme/lib.git",
            "ssh://git@attacker.example/x.git",
            "attacker.example:x.git",
        ] {
            let err = remote(&p, raw).unwrap_err();
            assert!(err.contains("is not allowed"), "{raw}: {err}");
        }
        // A local parent's relative URLs are local paths.
        let local = parent("/srv/git/site.git", RemoteAuth::None, &[]);
        assert!(remote(&local, "../other.git").is_err());
        let listed = parent(
            "/srv/git/site.git",
            RemoteAuth::None,
            &["/srv/git/other.git/"],
        );
        assert_eq!(
            remote(&listed, "../other.git").unwrap().url,
            "/srv/git/other.git"
        );
    }

    #[test]
    fn listed_urls_are_fetched_but_a_token_never_leaves_its_host() {
        let listed = [
            "https://mirror.example.org/lib.git",
            "ssh://git@mirror.example.org/lib.git",
        ];
        let p = parent("https://git.example.com/acme/site.git", token(), &listed);
        let sub = remote(&p, "https://mirror.example.org/lib.git").unwrap();
        assert_eq!(sub.auth, RemoteAuth::None);
        let p = parent("ssh://git@git.example.com/acme/site.git", key(), &listed);
        assert_eq!(
            remote(&p, "ssh://git@mirror.example.org/lib.git")
                .unwrap()
                .auth,
            key()
        );
        // The password in a refused URL is not repeated.
        let err = remote(&p, "https://user:hunter2@evil.example/x.git").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
