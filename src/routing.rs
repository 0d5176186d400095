//! Picks what a push event deploys: the hook's first rule whose branch/tag globs and path
//! globs match. Pure: it sees only the validated config and the normalized event.

use crate::config::{Hook, Rule};
use crate::event::{ChangedPaths, PushEvent, RefKind};

/// What to do with one push event.
#[derive(Debug)]
pub enum Route<'h> {
    Deploy(&'h Rule),
    Ignore(Ignored),
}

/// Why a push deploys nothing; answered 200 with this as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("repository {got:?} is not this hook's repository {expected:?}")]
    OtherRepository { expected: String, got: String },
    #[error("{0} was deleted; there is nothing to deploy")]
    Deleted(String),
    #[error("no rule matches {0}")]
    NoRule(String),
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
    match hook.rules.iter().find(|r| matches(r, event)) {
        Some(rule) => Route::Deploy(rule),
        None => Route::Ignore(Ignored::NoRule(event.git_ref.to_string())),
    }
}

/// Whether `rule` matches `event`'s ref and changed files.
pub fn matches(rule: &Rule, event: &PushEvent) -> bool {
    let ref_ok = match event.git_ref.kind() {
        RefKind::Branch(name) => rule.branches.as_ref().is_some_and(|g| g.is_match(name)),
        RefKind::Tag(name) => rule.tags.as_ref().is_some_and(|g| g.is_match(name)),
        RefKind::Other => false,
    };
    ref_ok
        && match (&rule.paths, &event.paths) {
            (None, _) | (Some(_), ChangedPaths::Unknown) => true,
            (Some(globs), ChangedPaths::Known(paths)) => paths.iter().any(|p| globs.is_match(p)),
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
            Route::Deploy(r) => Some(r.index),
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
}
