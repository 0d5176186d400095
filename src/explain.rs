//! `deployhook explain`: why a push did or did not deploy, rule by rule, without
//! deploying or recording anything. For a payload pasted from the forge's delivery page,
//! read against the config here; for a recorded delivery, its record (whose reason holds
//! the same verdicts, made when it arrived).

use crate::config::Hook;
use crate::event::Forge;
use crate::forge::{self, DeliveryKind};
use crate::routing::{Route, route};
use crate::verify::Verified;

/// The header each forge names its event in (none for generic hooks: every generic
/// delivery is a push).
fn event_header(forge: Forge) -> Option<&'static str> {
    match forge {
        Forge::Github => Some("X-GitHub-Event"),
        Forge::Gitlab => Some("X-Gitlab-Event"),
        Forge::Gitea => Some("X-Gitea-Event"),
        Forge::Forgejo => Some("X-Forgejo-Event"),
        Forge::Gogs => Some("X-Gogs-Event"),
        Forge::Bitbucket => Some("X-Event-Key"),
        Forge::Generic => None,
    }
}

/// What each rule of `hook` makes of `body`, a delivery of `event`: one line per rule
/// and push, or why the delivery deploys nothing at all.
pub fn payload(hook: &Hook, event: &str, body: &[u8]) -> Result<Vec<String>, String> {
    let headers: Vec<(&str, &str)> = event_header(hook.forge)
        .map(|h| vec![(h, event)])
        .unwrap_or_default();
    let delivery =
        forge::parse(hook.forge, &headers, &Verified::for_explain(body)).map_err(|e| {
            format!(
                "the payload cannot be read as a {} delivery: {e}",
                hook.forge.as_str()
            )
        })?;
    let events = match delivery.kind {
        DeliveryKind::Ping => {
            return Ok(vec![
                "a ping: the forge testing the hook; nothing deploys".to_owned(),
            ]);
        }
        DeliveryKind::Other(name) => {
            return Ok(vec![format!(
                "{name:?} is not a push event; only pushes deploy"
            )]);
        }
        DeliveryKind::Push(events) => events,
    };
    if events.is_empty() {
        return Ok(vec!["the delivery updates no branch or tag".to_owned()]);
    }
    let mut out = Vec::new();
    for e in &events {
        let at = format!("{} at {}", e.git_ref, &e.after.as_str()[..7]);
        match route(hook, e) {
            Route::Ignore(why) => {
                out.push(format!("{at}: does not deploy: {why}"));
            }
            Route::Deploy { rules, others } => {
                for r in rules {
                    out.push(format!("{at}: rule {}: deploys", describe(r)));
                }
                for n in others {
                    let shown = hook.rule(&n.rule).map_or(n.rule.clone(), describe);
                    out.push(format!("{at}: rule {shown}: {}", n.reason));
                }
            }
        }
    }
    Ok(out)
}

/// `0` or `1 \`web\``: a rule's index, and its name when it has one.
fn describe(rule: &crate::config::Rule) -> String {
    match &rule.name {
        Some(n) => format!("{} `{n}`", rule.index),
        None => rule.index.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::load_str;

    #[test]
    fn each_rule_says_whether_it_deploys_and_why_not() {
        let text = r#"
[[hook]]
id = "site"
forge = "github"
secret = "a secret of some length"
repository = "acme/website"
clone_url = "https://example.invalid/x.git"
[[hook.rule]]
name = "site"
branches = ["main", "release/*"]
commands = [["true"]]
[[hook.rule]]
branches = ["dev"]
paths = ["site/**"]
commands = [["true"]]
"#;
        let loaded = load_str(Path::new("/etc/deployhook/hooks.toml"), text, &|_| None).unwrap();
        let hook = &loaded.config.hooks[0];
        let push = |branch: &str, file: &str| {
            serde_json::json!({
                "ref": format!("refs/heads/{branch}"),
                "before": "1".repeat(40), "after": "2".repeat(40),
                "repository": { "full_name": "acme/website" },
                "commits": [{ "added": [file], "modified": [], "removed": [] }],
            })
            .to_string()
        };
        assert_eq!(
            payload(hook, "push", push("dev", "README.md").as_bytes()).unwrap(),
            [
                "refs/heads/dev at 2222222: does not deploy: no rule matches refs/heads/dev: \
                 rule site: branch \"dev\" matches none of main, release/*; \
                 rule 1: no changed file matches site/**"
            ]
        );
        assert_eq!(
            payload(hook, "push", push("main", "x").as_bytes()).unwrap(),
            [
                "refs/heads/main at 2222222: rule 0 `site`: deploys",
                "refs/heads/main at 2222222: rule 1: branch \"main\" matches none of dev",
            ]
        );
        assert_eq!(
            payload(hook, "issues", b"{}").unwrap(),
            ["\"issues\" is not a push event; only pushes deploy"]
        );
        assert!(payload(hook, "push", b"not json").is_err());
    }
}
