//! A job's secrets: the rule's `secrets` read from their files when the job starts (into
//! the commands' environment), and the [`Mask`] that keeps them, and the daemon's other
//! secrets a command could come by (the hook's webhook secrets, its git token, status
//! and notification tokens and chat URLs), out of the job's log.

use crate::config::{Config, Hook, Rule, TargetKind};
use crate::git::RemoteAuth;
use crate::joblog::Mask;

/// The rule's secrets as `(variable, value)`: each file's content, without the line
/// break it ends with. A file that cannot be read, or holds a NUL, fails the job.
pub(super) fn read(rule: &Rule) -> Result<Vec<(String, String)>, String> {
    rule.secrets
        .iter()
        .map(|(name, path)| {
            let bytes = std::fs::read(path).map_err(|e| {
                format!("cannot read the secret {name} from {}: {e}", path.display())
            })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                format!("the secret {name} in {} is not UTF-8 text", path.display())
            })?;
            if text.contains('\0') {
                return Err(format!(
                    "the secret {name} in {} holds a NUL byte, which no environment variable can",
                    path.display()
                ));
            }
            let value = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text)
                .to_owned();
            Ok((name.clone(), value))
        })
        .collect()
}

/// Everything to mask in the log of a job of `rule` of `hook`, given its `secrets`.
pub(super) fn mask(
    config: &Config,
    hook: &Hook,
    rule: &Rule,
    secrets: &[(String, String)],
) -> Mask {
    let mut values: Vec<Vec<u8>> = secrets.iter().map(|(_, v)| v.as_bytes().to_vec()).collect();
    values.extend(hook.auth.secret_texts());
    if let RemoteAuth::Token { token_file, .. } = &hook.git_auth
        && let Ok(token) = std::fs::read(token_file)
    {
        values.push(token);
    }
    if let Some(s) = &hook.status {
        values.push(s.token.expose().to_vec());
    }
    for name in hook.notify.iter().chain(&rule.notify) {
        let Some(t) = config.notify_target(name) else {
            continue;
        };
        match &t.kind {
            TargetKind::Slack { url } | TargetKind::Discord { url } | TargetKind::Teams { url } => {
                values.push(url.expose().to_vec());
            }
            TargetKind::Ntfy { url, token } => {
                values.push(url.expose().to_vec());
                values.extend(token.iter().map(|t| t.expose().to_vec()));
            }
            TargetKind::Webhook { keys, .. } => {
                values.extend(keys.iter().map(|k| k.expose().to_vec()));
            }
            TargetKind::Matrix { token, .. } => values.push(token.expose().to_vec()),
        }
    }
    Mask::new(values.iter().map(Vec::as_slice))
}
