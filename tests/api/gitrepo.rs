//! Real git repositories in temp dirs, made with the git command line, as remotes for the
//! worker to fetch from.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Repo {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs git isolated from the machine's and user's config; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .expect("git must be installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("website");
        std::fs::create_dir(&path).unwrap();
        git(&path, &["init", "-q", "-b", "main"]);
        Repo { path, _dir: dir }
    }

    /// Writes `files`, deletes `remove`, commits on the current branch; returns the sha.
    pub fn commit(&self, files: &[(&str, &str)], remove: &[&str]) -> String {
        for (name, content) in files {
            let p = self.path.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        for name in remove {
            git(&self.path, &["rm", "-q", name]);
        }
        git(&self.path, &["add", "-A"]);
        git(
            &self.path,
            &["commit", "-q", "--allow-empty", "-m", "change"],
        );
        git(&self.path, &["rev-parse", "HEAD"])
    }

    /// `n` commits that each set version.txt to their number; their shas in order.
    pub fn versions(&self, n: usize) -> Vec<String> {
        (1..=n)
            .map(|i| self.commit(&[("version.txt", &i.to_string())], &[]))
            .collect()
    }

    pub fn url(&self) -> String {
        self.path.display().to_string()
    }
}
