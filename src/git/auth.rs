//! The libgit2 callbacks that authenticate one fetch: credentials from the hook's key or
//! token file, and the SSH host-key check against the hook's known_hosts file.

use std::cell::RefCell;
use std::fs;
use std::rc::Rc;

use git2::cert::Cert;
use git2::{
    CertificateCheckStatus, Cred, CredentialType, Error, ErrorClass, ErrorCode, RemoteCallbacks,
};

use super::known_hosts::{self, HostKey, Verdict};
use super::url::Endpoint;
use super::{Abort, Remote, RemoteAuth};

/// Why a callback refused to go on. libgit2 replaces a refused host key's message with
/// its own generic one, so the callbacks leave the operator-facing reason here as well.
#[derive(Debug, Clone, Default)]
pub(super) struct Refusal(Rc<RefCell<Option<String>>>);

impl Refusal {
    /// The reason a callback gave, if one refused.
    pub fn take(&self) -> Option<String> {
        self.0.borrow_mut().take()
    }

    fn refuse(&self, code: ErrorCode, reason: String) -> Error {
        let error = Error::new(code, ErrorClass::Callback, &reason);
        *self.0.borrow_mut() = Some(reason);
        error
    }
}

/// Callbacks for one fetch of `remote`; a refusal's reason lands in `refusal`. Every
/// progress report asks `abort` whether to go on, so a fetch stops soon after its
/// deadline or a cancel once data flows (a remote that sends nothing at all is cut off
/// by libgit2's read timeout, and the worker does not wait for it).
pub(super) fn callbacks<'a>(
    remote: &'a Remote,
    refusal: &Refusal,
    abort: &'a Abort,
) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(credentials(&remote.auth, refusal.clone()));
    callbacks.certificate_check(host_key_check(remote, refusal.clone()));
    callbacks.transfer_progress(|_| abort.go_on());
    callbacks.sideband_progress(|_| abort.go_on());
    callbacks.update_tips(|_, _, _| abort.go_on());
    callbacks
}

/// Offers the hook's key or token, once: libgit2 asks again after the server refuses.
fn credentials(
    auth: &RemoteAuth,
    refusal: Refusal,
) -> impl FnMut(&str, Option<&str>, CredentialType) -> Result<Cred, Error> + '_ {
    // libgit2 asks again after the server refuses a credential; offering the same one again
    // would loop until the server gives up, so the second ask ends the fetch.
    let mut offered = false;
    move |_url, user_from_url, allowed| {
        let refuse = |reason: String| refusal.refuse(ErrorCode::Auth, reason);
        match auth {
            RemoteAuth::None => Err(refuse(
                "the server asks for credentials, but the hook has no ssh key or token configured"
                    .to_owned(),
            )),
            RemoteAuth::SshKey { key_file, .. } => {
                let user = user_from_url.unwrap_or("git");
                if allowed.contains(CredentialType::USERNAME) {
                    return Cred::username(user);
                }
                if !allowed.contains(CredentialType::SSH_KEY) {
                    return Err(refuse(format!(
                        "the server does not accept ssh keys (it offers {allowed:?})"
                    )));
                }
                if std::mem::replace(&mut offered, true) {
                    return Err(refuse(format!(
                        "the server refused ssh key {} for user `{user}`",
                        key_file.display()
                    )));
                }
                if let Err(e) = fs::File::open(key_file) {
                    return Err(refuse(format!(
                        "cannot read ssh key file {}: {e}",
                        key_file.display()
                    )));
                }
                Cred::ssh_key(user, None, key_file, None)
            }
            RemoteAuth::Token { token_file, user } => {
                if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                    return Err(refuse(format!(
                        "the server does not accept a user and token (it offers {allowed:?})"
                    )));
                }
                if std::mem::replace(&mut offered, true) {
                    return Err(refuse(format!(
                        "the server refused the token in {} for user `{user}`",
                        token_file.display()
                    )));
                }
                // Read on every fetch so a rotated token is picked up without a restart.
                let token = fs::read_to_string(token_file).map_err(|e| {
                    refuse(format!(
                        "cannot read token file {}: {e}",
                        token_file.display()
                    ))
                })?;
                let token = token.trim();
                if token.is_empty() {
                    return Err(refuse(format!(
                        "token file {} is empty",
                        token_file.display()
                    )));
                }
                Cred::userpass_plaintext(user, token)
            }
        }
    }
}

/// Accepts an SSH host key only if the hook's known_hosts lists it for this host and port.
fn host_key_check(
    remote: &Remote,
    refusal: Refusal,
) -> impl FnMut(&Cert<'_>, &str) -> Result<CertificateCheckStatus, Error> + '_ {
    let port = Endpoint::parse(&remote.url).ssh_port();
    move |cert, hostname| {
        // TLS certificates keep libgit2's (OpenSSL's) own verification.
        let Some(hostkey) = cert.as_hostkey() else {
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let name = known_hosts::lookup_name(hostname, port);
        let refuse = |reason: String| refusal.refuse(ErrorCode::Certificate, reason);
        let RemoteAuth::SshKey { known_hosts, .. } = &remote.auth else {
            return Err(refuse(format!(
                "cannot verify the ssh host key of {name}: the hook has no known_hosts file (ssh needs a key file and a known_hosts file)"
            )));
        };
        let file = known_hosts.display();
        let contents = fs::read_to_string(known_hosts)
            .map_err(|e| refuse(format!("cannot read known_hosts file {file}: {e}")))?;
        let key = HostKey {
            raw: hostkey.hostkey(),
            sha256: hostkey.hash_sha256(),
        };
        match known_hosts::check(&contents, hostname, port, &key) {
            Verdict::Trusted => Ok(CertificateCheckStatus::CertificateOk),
            Verdict::Unknown => Err(refuse(format!(
                "the ssh host key of {name} is not in {file}; check the server's fingerprint, then add it (`ssh-keyscan -p {port} {hostname} >> {file}`)"
            ))),
            Verdict::Mismatch => {
                let kind = hostkey.hostkey_type().map_or("unknown", |t| t.name());
                Err(refuse(format!(
                    "the ssh host key of {name} ({kind}) does not match the key(s) for it in {file}: the server's key changed, or someone is intercepting the connection"
                )))
            }
            Verdict::Revoked => Err(refuse(format!(
                "the ssh host key of {name} is marked @revoked in {file}"
            ))),
        }
    }
}
