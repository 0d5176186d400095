//! Picks what a push event deploys: the hook's first rule whose branch/tag globs and path
//! globs match (`match = "all"`: every such rule), and for every other rule why it does
//! not deploy. Pure: it sees only the validated config and the normalized event.

use std::fmt::Write as _;

use crate::config::{Globs, Hook, Matching, Rule};
use crate::event::{ChangedPaths, PushEvent, RefKind};

/// What to do with one push event.
#[derive(Debug)]
pub enum Route<'h> {
    /// Deploy with these rules (one unless `match = "all"`); `others` says why each other
    /// rule does not.
    Deploy {
        rules: Vec<&'h Rule>,
        others: Vec<NotDeployed>,
    },
    Ignore(Ignored),
}

/// A rule that does not deploy a push, and why, for people: "no changed file matches
/// services/web/**", "also matched; the first match wins".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotDeployed {
    /// The rule's key (its name, or its index).
    pub rule: String,
    pub reason: String,
}

/// Why a push deploys nothing; answered 200 with this as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("repository {got:?} is not this hook's repository {expected:?}")]
    OtherRepository { expected: String, got: String },
    #[error("{0} was deleted; there is nothing to deploy")]
    Deleted(String),
    /// The ref, and why each rule does not match it.
    #[error("no rule matches {git_ref}{}", because(.rules))]
    NoRule {
        git_ref: String,
        rules: Vec<NotDeployed>,
    },
}

fn because(rules: &[NotDeployed]) -> String {
    let mut out = String::new();
    for (i, r) in rules.iter().enumerate() {
        let _ = write!(
            out,
            "{} rule {}: {}",
            if i == 0 { ":" } else { ";" },
            r.rule,
            r.reason
        );
    }
    out
}

pub fn route<'h>(hook: &'h Hook, event: &PushEvent) -> Route<'h> {
    // Forges treat owner/name case-insensitively (and Bitbucket Data Center upper-cases
    // project keys), so compare the same way.
    if !event.repository.eq_ignore_ascii_case(&hook.repository) {
        return Route::Ignore(Ignored::OtherRepository {
            expected: hook.repository.clone(),
            got: event.repository.clone(),
        });
    }
    if event.deleted() {
        return Route::Ignore(Ignored::Deleted(event.git_ref.to_string()));
    }
    let mut rules = Vec::new();
    let mut others = Vec::new();
    for rule in &hook.rules {
        let reason = match why_not(rule, event) {
            Some(reason) => reason,
            None if rules.is_empty() || hook.matching == Matching::All => {
                rules.push(rule);
                continue;
            }
            None => "also matched; the first match wins (match = \"first\")".to_owned(),
        };
        others.push(NotDeployed {
            rule: rule.key(),
            reason,
        });
    }
    if rules.is_empty() {
        Route::Ignore(Ignored::NoRule {
            git_ref: event.git_ref.to_string(),
            rules: others,
        })
    } else {
        Route::Deploy { rules, others }
    }
}

/// Whether `rule` matches `event`'s ref and changed files.
pub fn matches(rule: &Rule, event: &PushEvent) -> bool {
    why_not(rule, event).is_none()
}

/// Why `rule` does not match `event`, or `None` when it does.
pub fn why_not(rule: &Rule, event: &PushEvent) -> Option<String> {
    let listed = |g: &Globs| g.patterns.join(", ");
    match event.git_ref.kind() {
        RefKind::Branch(name) => match &rule.branches {
            None => return Some(format!("branch {name:?}: the rule deploys no branches")),
            Some(g) if !g.is_match(name) => {
                return Some(format!("branch {name:?} matches none of {}", listed(g)));
            }
            Some(_) => {}
        },
        RefKind::Tag(name) => match &rule.tags {
            None => return Some(format!("tag {name:?}: the rule deploys no tags")),
            Some(g) if !g.is_match(name) => {
                return Some(format!("tag {name:?} matches none of {}", listed(g)));
            }
            Some(_) => {}
        },
        RefKind::Other => {
            return Some(format!("{} is neither a branch nor a tag", event.git_ref));
        }
    }
    match (&rule.paths, &event.paths) {
        (None, _) | (Some(_), ChangedPaths::Unknown) => None,
        (Some(globs), ChangedPaths::Known(paths)) => (!paths.iter().any(|p| globs.is_match(p)))
            .then(|| format!("no changed file matches {}", listed(globs))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use crate::event::{Forge, RefName, Sha};
    use std::path::Path;

    fn hook(rules: &str) -> Hook {
        let text = format!(
            r#"
[[hook]]
id = "site"
forge = "github"
secret = "s"
repository = "Acme/Website"
clone_url = "https://example.invalid/acme/website.git"
{rules}
"#
        );
        let mut loaded = load_str(Path::new("/etc/deployhook/hooks.toml"), &text, &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        loaded.config.hooks.remove(0)
    }

    fn push(git_ref: &str, paths: Option<&[&str]>) -> PushEvent {
        PushEvent {
            forge: Forge::Github,
            repository: "acme/website".into(),
            git_ref: RefName::parse(git_ref).unwrap(),
            before: Sha::parse(&"1".repeat(40)).unwrap(),
            after: Sha::parse(&"2".repeat(40)).unwrap(),
            forced: false,
            paths: paths.map_or(ChangedPaths::Unknown, |p| {
                ChangedPaths::Known(p.iter().map(|s| (*s).to_owned()).collect())
            }),
            pusher: None,
            delivery: None,
        }
    }

    fn rule_index(h: &Hook, e: &PushEvent) -> Option<usize> {
        match route(h, e) {
            Route::Deploy { rules, .. } => Some(rules[0].index),
            Route::Ignore(_) => None,
        }
    }

    #[test]
    fn branch_globs_do_not_cross_slashes_unless_double_star() {
        let h = hook(
            r#"
[[hook.rule]]
branches = ["release/*"]
commands = [["true"]]
[[hook.rule]]
branches = ["feature/**"]
commands = [["true"]]
"#,
        );
        assert_eq!(
            rule_index(&h, &push("refs/heads/release/1.0", None)),
            Some(0)
        );
        assert_eq!(
            rule_index(&h, &push("refs/heads/release/1.0/hotfix", None)),
            None
        );
        assert_eq!(
            rule_index(&h, &push("refs/heads/feature/a/b", None)),
            Some(1)
        );
        assert_eq!(rule_index(&h, &push("refs/heads/main", None)), None);
    }

    #[test]
    fn tags_and_branches_are_kept_apart() {
        let h = hook(
            r#"
[[hook.rule]]
tags = ["v*"]
commands = [["true"]]
[[hook.rule]]
branches = ["v*"]
commands = [["true"]]
"#,
        );
        assert_eq!(rule_index(&h, &push("refs/tags/v1.0", None)), Some(0));
        assert_eq!(rule_index(&h, &push("refs/heads/v1.0", None)), Some(1));
        assert_eq!(rule_index(&h, &push("refs/notes/v1", None)), None);
    }

    #[test]
    fn paths_filter_and_unknown_paths() {
        let h = hook(
            r#"
[[hook.rule]]
branches = ["main"]
paths = ["site/**"]
commands = [["deploy-site"]]
[[hook.rule]]
branches = ["main"]
paths = ["docs/*.md"]
commands = [["deploy-docs"]]
"#,
        );
        assert_eq!(
            rule_index(&h, &push("refs/heads/main", Some(&["site/a/b.css"]))),
            Some(0)
        );
        assert_eq!(
            rule_index(
                &h,
                &push("refs/heads/main", Some(&["README.md", "docs/x.md"]))
            ),
            Some(1)
        );
        assert_eq!(
            rule_index(&h, &push("refs/heads/main", Some(&["docs/a/x.md"]))),
            None
        );
        assert_eq!(rule_index(&h, &push("refs/heads/main", Some(&[]))), None);
        // Unknown file lists (Bitbucket, truncated lists) match a paths filter.
        assert_eq!(rule_index(&h, &push("refs/heads/main", None)), Some(0));
    }

    #[test]
    fn first_match_wins() {
        let h = hook(
            r#"
[[hook.rule]]
branches = ["main"]
paths = ["site/**"]
commands = [["first"]]
[[hook.rule]]
branches = ["main", "dev"]
commands = [["second"]]
"#,
        );
        assert_eq!(
            rule_index(&h, &push("refs/heads/main", Some(&["site/x"]))),
            Some(0)
        );
        assert_eq!(
            rule_index(&h, &push("refs/heads/main", Some(&["other"]))),
            Some(1)
        );
    }

    #[test]
    fn repository_is_compared_case_insensitively_and_deletes_are_ignored() {
        let h = hook("[[hook.rule]]\nbranches = [\"**\"]\ncommands = [[\"true\"]]\n");
        assert_eq!(rule_index(&h, &push("refs/heads/x", None)), Some(0));
        let mut other = push("refs/heads/x", None);
        other.repository = "acme/other".into();
        assert!(matches!(
            route(&h, &other),
            Route::Ignore(Ignored::OtherRepository { .. })
        ));
        let mut deleted = push("refs/heads/x", None);
        deleted.after = Sha::parse(&"0".repeat(40)).unwrap();
        assert!(matches!(
            route(&h, &deleted),
            Route::Ignore(Ignored::Deleted(_))
        ));
    }

    #[test]
    fn every_rule_that_does_not_deploy_says_why() {
        let rules = r#"
[[hook.rule]]
name = "api"
branches = ["main"]
paths = ["services/api/**"]
commands = [["true"]]
[[hook.rule]]
name = "web"
branches = ["main"]
paths = ["services/web/**"]
commands = [["true"]]
[[hook.rule]]
tags = ["v*"]
commands = [["true"]]
"#;
        let both = push(
            "refs/heads/main",
            Some(&["services/api/x.go", "services/web/y.ts"]),
        );
        let h = hook(rules);
        let Route::Deploy {
            rules: first,
            others,
        } = route(&h, &both)
        else {
            panic!("deploys")
        };
        assert_eq!(first.iter().map(|r| r.key()).collect::<Vec<_>>(), ["api"]);
        assert_eq!(
            others,
            [
                NotDeployed {
                    rule: "web".into(),
                    reason: "also matched; the first match wins (match = \"first\")".into()
                },
                NotDeployed {
                    rule: "2".into(),
                    reason: "branch \"main\": the rule deploys no branches".into()
                },
            ]
        );
        let all = hook(&format!("match = \"all\"\n{rules}"));
        let Route::Deploy {
            rules: each,
            others,
        } = route(&all, &both)
        else {
            panic!("deploys")
        };
        assert_eq!(
            each.iter().map(|r| r.key()).collect::<Vec<_>>(),
            ["api", "web"]
        );
        assert_eq!(others.len(), 1);
        let Route::Ignore(none) = route(&all, &push("refs/heads/main", Some(&["README.md"])))
        else {
            panic!("ignored")
        };
        assert_eq!(
            none.to_string(),
            "no rule matches refs/heads/main: rule api: no changed file matches services/api/**; \
             rule web: no changed file matches services/web/**; rule 2: branch \"main\": the rule deploys no branches"
        );
        let Route::Ignore(tag) = route(&all, &push("refs/tags/x1", None)) else {
            panic!("ignored")
        };
        assert!(
            tag.to_string()
                .ends_with("rule 2: tag \"x1\" matches none of v*"),
            "{tag}"
        );
    }
}
