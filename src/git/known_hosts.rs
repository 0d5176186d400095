//! Decides whether an SSH server's host key is trusted by an OpenSSH `known_hosts` file:
//! plain and hashed (`|1|salt|hash`) host entries, `[host]:port`, wildcards, negations and
//! `@revoked` keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The key a server presented, as libgit2 hands it over: the raw public key blob when
/// libssh2 provides it, else only its SHA-256.
#[derive(Debug, Clone, Copy)]
pub(super) struct HostKey<'a> {
    pub raw: Option<&'a [u8]>,
    pub sha256: Option<&'a [u8; 32]>,
}

impl HostKey<'_> {
    fn matches(&self, blob: &[u8]) -> bool {
        match (self.raw, self.sha256) {
            (Some(raw), _) => raw == blob,
            (None, Some(hash)) => Sha256::digest(blob).as_slice() == hash.as_slice(),
            (None, None) => false,
        }
    }
}

/// What the file says about a host and the key it presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A line for this host carries this key.
    Trusted,
    /// No line names this host.
    Unknown,
    /// Lines name this host, with other keys: the key changed, or someone is in between.
    Mismatch,
    /// The key is listed as `@revoked`.
    Revoked,
}

/// The name OpenSSH looks a host up by: the bare host on port 22, `[host]:port` otherwise.
pub(super) fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Checks `key`, presented by `host` on `port`, against the contents of a known_hosts file.
pub(super) fn check(known_hosts: &str, host: &str, port: u16, key: &HostKey<'_>) -> Verdict {
    let name = lookup_name(host, port);
    let mut host_seen = false;
    let mut trusted = false;
    for line in known_hosts.lines() {
        let Some(entry) = Entry::parse(line) else {
            continue;
        };
        if !entry.host_matches(&name) {
            continue;
        }
        let key_matches = key.matches(&entry.blob);
        match entry.marker {
            Marker::Revoked if key_matches => return Verdict::Revoked,
            // libssh2 does not hand over certificates, so a CA line can vouch for nothing.
            Marker::Revoked | Marker::CertAuthority => {}
            Marker::None => {
                host_seen = true;
                trusted |= key_matches;
            }
        }
    }
    match (trusted, host_seen) {
        (true, _) => Verdict::Trusted,
        (false, true) => Verdict::Mismatch,
        (false, false) => Verdict::Unknown,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

/// One usable line: `[@marker] hosts keytype base64-key [comment]`.
struct Entry<'a> {
    marker: Marker,
    hosts: &'a str,
    blob: Vec<u8>,
}

impl<'a> Entry<'a> {
    fn parse(line: &'a str) -> Option<Entry<'a>> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next()?;
        let marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            m if m.starts_with('@') => return None,
            _ => Marker::None,
        };
        if marker != Marker::None {
            first = fields.next()?;
        }
        let _key_type = fields.next()?;
        let blob = STANDARD.decode(fields.next()?).ok()?;
        Some(Entry {
            marker,
            hosts: first,
            blob,
        })
    }

    fn host_matches(&self, name: &str) -> bool {
        if let Some(hashed) = self.hosts.strip_prefix("|1|") {
            return hashed_matches(hashed, name);
        }
        // OpenSSH: one matching negated pattern vetoes the line, whatever else matches.
        let mut positive = false;
        for pattern in self.hosts.split(',') {
            match pattern.strip_prefix('!') {
                Some(negated) if wildcard_match(&negated.to_ascii_lowercase(), name) => {
                    return false;
                }
                Some(_) => {}
                None => positive |= wildcard_match(&pattern.to_ascii_lowercase(), name),
            }
        }
        positive
    }
}

/// `salt|hash`, both base64: the line is for `name` if HMAC-SHA1(salt, name) is the hash.
fn hashed_matches(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// OpenSSH's `match_pattern`: `*` is any run of characters, `?` exactly one.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and where in the text it started matching: on a mismatch
    // the star takes one more character and matching resumes after it.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real keys made with `ssh-keygen`; the hashed lines were written by `ssh-keygen -H`.
    const ED1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDsEBzVGkyIOVivjbEoEVNgXm3uEGQ64PuKBTwvL4eg8";
    const ED2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDM7KqID/8D753Ss81kjcHWcVUrsA6e4Eq81g4OqW2Ih";
    const ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDZp4QbT7Q4AyqPvdrMI7T6jdtZgqoAH2/KRXtYjYTT5UmVbX9jSa+HqP4mk1bJyOpPOg+WPfCTRfFsRAz5wLxg=";
    /// `git.example.com` with ED1.
    const HASHED_22: &str = "|1|VeBTIvqze9HFf0a6FAM1mwBVXlA=|q9rNODf29j/SM36XUiOfVJL2F0o= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDsEBzVGkyIOVivjbEoEVNgXm3uEGQ64PuKBTwvL4eg8";
    /// `[git.example.com]:2222` with ECDSA.
    const HASHED_2222: &str = "|1|WU0x6x5rGgaDLFg0Os0WkOHK8RQ=|/A7sS8sD13P1LR2G6ow8FyrAyyI= ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDZp4QbT7Q4AyqPvdrMI7T6jdtZgqoAH2/KRXtYjYTT5UmVbX9jSa+HqP4mk1bJyOpPOg+WPfCTRfFsRAz5wLxg=";

    fn blob(b64: &str) -> Vec<u8> {
        STANDARD.decode(b64).unwrap()
    }

    fn verdict(file: &str, host: &str, port: u16, key_b64: &str) -> Verdict {
        let raw = blob(key_b64);
        let key = HostKey {
            raw: Some(&raw),
            sha256: None,
        };
        check(file, host, port, &key)
    }

    #[test]
    fn plain_entries() {
        let file = format!(
            "# comment\n\ngithub.com,140.82.121.4 ssh-ed25519 {ED1} a comment\nother.org ssh-ed25519 {ED2}\n"
        );
        assert_eq!(verdict(&file, "github.com", 22, ED1), Verdict::Trusted);
        assert_eq!(verdict(&file, "GitHub.COM", 22, ED1), Verdict::Trusted);
        assert_eq!(verdict(&file, "140.82.121.4", 22, ED1), Verdict::Trusted);
        assert_eq!(verdict(&file, "github.com", 22, ED2), Verdict::Mismatch);
        assert_eq!(verdict(&file, "gitlab.com", 22, ED1), Verdict::Unknown);
        // A bare host entry is for port 22 only.
        assert_eq!(verdict(&file, "github.com", 2222, ED1), Verdict::Unknown);
    }

    #[test]
    fn bracketed_port_entries() {
        let file = format!("[git.example.com]:2222 ecdsa-sha2-nistp256 {ECDSA}\n");
        assert_eq!(
            verdict(&file, "git.example.com", 2222, ECDSA),
            Verdict::Trusted
        );
        assert_eq!(
            verdict(&file, "git.example.com", 22, ECDSA),
            Verdict::Unknown
        );
        assert_eq!(
            verdict(&file, "git.example.com", 2223, ECDSA),
            Verdict::Unknown
        );
        assert_eq!(
            verdict(&file, "git.example.com", 2222, ED1),
            Verdict::Mismatch
        );
    }

    #[test]
    fn hashed_entries_written_by_openssh() {
        let file = format!("{HASHED_22}\n{HASHED_2222}\n");
        assert_eq!(verdict(&file, "git.example.com", 22, ED1), Verdict::Trusted);
        assert_eq!(
            verdict(&file, "git.example.com", 2222, ECDSA),
            Verdict::Trusted
        );
        assert_eq!(
            verdict(&file, "git.example.com", 22, ED2),
            Verdict::Mismatch
        );
        assert_eq!(
            verdict(&file, "git.example.com", 2222, ED1),
            Verdict::Mismatch
        );
        assert_eq!(verdict(&file, "git.example.org", 22, ED1), Verdict::Unknown);
    }

    #[test]
    fn wildcards_and_negation() {
        let file = format!("*.example.com,!evil.example.com ssh-ed25519 {ED1}\n");
        assert_eq!(verdict(&file, "git.example.com", 22, ED1), Verdict::Trusted);
        assert_eq!(
            verdict(&file, "evil.example.com", 22, ED1),
            Verdict::Unknown
        );
        assert_eq!(verdict(&file, "example.com", 22, ED1), Verdict::Unknown);
        let file = format!("git?.example.com ssh-ed25519 {ED1}\n");
        assert_eq!(
            verdict(&file, "git1.example.com", 22, ED1),
            Verdict::Trusted
        );
        assert_eq!(
            verdict(&file, "git12.example.com", 22, ED1),
            Verdict::Unknown
        );
    }

    #[test]
    fn revoked_key_is_refused_even_when_listed() {
        let file = format!("github.com ssh-ed25519 {ED1}\n@revoked * ssh-ed25519 {ED1}\n");
        assert_eq!(verdict(&file, "github.com", 22, ED1), Verdict::Revoked);
        let file = format!("@cert-authority *.example.com ssh-ed25519 {ED1}\n");
        assert_eq!(verdict(&file, "git.example.com", 22, ED1), Verdict::Unknown);
    }

    #[test]
    fn only_a_hash_of_the_key_is_enough() {
        let file = format!("github.com ssh-ed25519 {ED1}\n");
        let hash: [u8; 32] = Sha256::digest(blob(ED1)).into();
        let key = HostKey {
            raw: None,
            sha256: Some(&hash),
        };
        assert_eq!(check(&file, "github.com", 22, &key), Verdict::Trusted);
        let other: [u8; 32] = Sha256::digest(blob(ED2)).into();
        let key = HostKey {
            raw: None,
            sha256: Some(&other),
        };
        assert_eq!(check(&file, "github.com", 22, &key), Verdict::Mismatch);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let file = format!(
            "github.com\ngithub.com ssh-ed25519 !!notbase64!!\n@weird github.com ssh-ed25519 {ED1}\n|1|bad github.com ssh-ed25519 {ED1}\n"
        );
        assert_eq!(verdict(&file, "github.com", 22, ED1), Verdict::Unknown);
    }

    #[test]
    fn wildcard_matcher() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
        assert!(wildcard_match("[*]:2222", "[h]:2222"));
        assert!(!wildcard_match("?", ""));
    }
}
