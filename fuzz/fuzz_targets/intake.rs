//! The whole pipeline (`intake::decide`: verify, parse, route) on correctly signed
//! deliveries to a config with a hook per forge: it does not panic, never refuses a true
//! signature, and a decision to deploy names existing rules and carries replay keys, the
//! body key over the bytes the signature covers.

#![no_main]

use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use deployhook::config::{self, Config};
use deployhook::intake::{self, Decision, IntakeError};
use deployhook::verify::Auth;
use deployhook_fuzz::{WHSEC, gitea_signed_bytes, hex, now, sign, split};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const HOOKS: &[(&str, &str, &str)] = &[
    ("gh", "github", "secret = \"It's a Secret to Everybody\""),
    (
        "gh-sha1",
        "github",
        "secret = \"It's a Secret to Everybody\"\nlegacy_sha1 = true",
    ),
    ("gl", "gitlab", "secret = \"gl-token-0123456789\""),
    ("gl-signed", "gitlab", "secret = \"$WHSEC\""),
    ("gitea", "gitea", "secret = \"It's a Secret to Everybody\""),
    (
        "forgejo",
        "forgejo",
        "secret = \"It's a Secret to Everybody\"",
    ),
    ("gogs", "gogs", "secret = \"It's a Secret to Everybody\""),
    ("bb", "bitbucket", "secret = \"It's a Secret to Everybody\""),
    ("ci", "generic", "secret = \"$WHSEC\""),
];

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut text = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
        for (id, forge, secret) in HOOKS {
            let _ = write!(
                text,
                r#"
[[hook]]
id = "{id}"
forge = "{forge}"
{secret}
repository = "acme/website"
clone_url = "https://git.example.invalid/acme/website.git"

[[hook.rule]]
branches = ["main", "release/*"]
commands = [["make", "deploy"]]

[[hook.rule]]
tags = ["v*"]
queue = "fifo"
commands = [["make", "release"]]

[[hook.rule]]
branches = ["docs", "**/docs"]
paths = ["docs/**", "*.md"]
commands = ["make docs"]
"#,
                secret = secret.replace("$WHSEC", WHSEC)
            );
        }
        let path = Path::new("/nonexistent/deployhook-fuzz/hooks.toml");
        config::load_str(path, &text, &|_| None)
            .unwrap_or_else(|e| panic!("{e}"))
            .config
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let cfg = config();
    let hook = &cfg.hooks[usize::from(pick) % cfg.hooks.len()];
    let (mut headers, body) = split(data);
    if !sign(&hook.auth, &mut headers, body) {
        return;
    }
    match intake::decide(hook, &headers, body, now()) {
        Ok(Decision::Deploy {
            delivery,
            replay_keys,
            jobs,
            skipped,
        }) => {
            assert!(!jobs.is_empty());
            assert!(!replay_keys.is_empty());
            if matches!(hook.auth, Auth::StandardWebhooks { .. }) {
                assert!(delivery.is_some(), "a signed delivery without its id");
            } else {
                // The body key is over what the signature covers, however it was sent
                // (Gitea-family forms carry the signed JSON inside a `payload` field).
                let signed = match hook.auth {
                    Auth::Gitea { .. } => gitea_signed_bytes(&headers, body).unwrap(),
                    _ => body.to_vec(),
                };
                let want = format!("body:{}", hex(&Sha256::digest(&signed)));
                assert!(
                    replay_keys.contains(&want),
                    "no replay key over the signed bytes: {replay_keys:?}"
                );
            }
            for job in &jobs {
                assert!(job.rule < hook.rules.len());
                assert!(!job.event.deleted(), "a deleted ref deploys");
                assert!(job.event.repository.eq_ignore_ascii_case(&hook.repository));
            }
            assert!(skipped.iter().all(|s| !s.is_empty()));
        }
        Ok(Decision::Pong { .. }) => {}
        Ok(Decision::Ignore { reason, .. }) => assert!(!reason.is_empty()),
        Err(IntakeError::Unauthorized(e)) => {
            panic!("{}: a correctly signed delivery was refused: {e}", hook.id)
        }
        Err(IntakeError::BadRequest(e)) => assert!(!e.to_string().is_empty()),
    }
});
