//! End-to-end checkouts from real repositories made with the git command line: file://
//! and local-path remotes, and a real `git daemon` for shallow fetches.

use std::collections::BTreeMap;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use git2::Repository;
use tempfile::TempDir;

use super::{Abort, Git, GitError, OnRef, Remote, RemoteAuth, Retry, TreeLimits};

/// Runs git in `dir` isolated from the machine's and user's configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .expect("the git command line is installed");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A new non-bare repository on branch `main`, standing in for the forge's copy.
fn new_repo(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    dir.to_owned()
}

/// Writes (`Some`) or deletes (`None`) files, commits everything, returns the new sha.
fn commit(repo: &Path, files: &[(&str, Option<&str>)], message: &str) -> String {
    for (path, content) in files {
        let path = repo.join(path);
        match content {
            Some(text) => {
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, text).unwrap();
            }
            None => fs::remove_file(&path).unwrap(),
        }
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// Every file under `dir` with its content, `.git` directories left out.
fn files(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn tree(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn remote(url: String) -> Remote {
    Remote {
        url,
        auth: RemoteAuth::None,
        shallow: false,
        submodules: false,
        limits: TreeLimits::default(),
        submodule_urls: Vec::new(),
    }
}

fn quick_retry(attempts: u32) -> Retry {
    Retry {
        attempts,
        first_backoff: Duration::from_millis(1),
    }
}

/// Checks out `sha` for `refs/heads/main`, which must contain it, with no deadline.
fn checkout_main(
    gits: &Git,
    remote: &Remote,
    sha: &str,
    worktree: &Path,
) -> Result<super::CheckoutInfo, GitError> {
    gits.checkout(
        remote,
        "refs/heads/main",
        sha,
        OnRef::Required,
        &Abort::never(),
        worktree,
    )
}

/// git with file:// submodule URLs allowed (git refuses them by default since 2.38).
fn file_git(dir: &Path, args: &[&str]) -> String {
    let mut full = vec!["-c", "protocol.file.allow=always"];
    full.extend_from_slice(args);
    git(dir, &full)
}

/// git run on a work tree through its git directory `git_dir`, which is not in it.
fn git_at(git_dir: &Path, worktree: &Path, args: &[&str]) -> String {
    let mut full = vec![
        format!("--git-dir={}", git_dir.display()),
        format!("--work-tree={}", worktree.display()),
    ];
    full.extend(args.iter().map(|a| (*a).to_owned()));
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    git(worktree, &full)
}

/// The work tree is at `sha` exactly: HEAD detached there, index and files clean, and
/// no `.git` of its own.
fn assert_at(gits: &Git, worktree: &Path, sha: &str) {
    let git_dir = gits.git_dir_of(worktree);
    assert!(
        !worktree.join(".git").exists(),
        "the work tree holds a .git"
    );
    assert_eq!(git_at(&git_dir, worktree, &["rev-parse", "HEAD"]), sha);
    assert_eq!(
        git_at(&git_dir, worktree, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "HEAD"
    );
    assert_eq!(
        git_at(&git_dir, worktree, &["status", "--porcelain", "--ignored"]),
        "",
        "work tree is not clean"
    );
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `git daemon` serving `base` on 127.0.0.1, killed when dropped.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    fn start(base: &Path) -> Daemon {
        let port = free_port();
        let base_arg = format!("--base-path={}", base.display());
        // `git daemon` would run git-daemon as a child of its own, which outlives a
        // killed `git`: start git-daemon itself, so that `drop` stops the server.
        let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
        let exec_path = String::from_utf8(exec_path.stdout).unwrap();
        let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args([
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &base_arg,
                "--export-all",
            ])
            .arg(base)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("`git daemon` runs (the git package provides it)");
        let daemon = Daemon { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "git daemon did not start listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn first_checkout_clones_into_the_cache_and_checks_out_the_commit() {
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let sha = commit(
        &upstream,
        &[
            ("index.html", Some("<h1>hi</h1>\n")),
            ("css/site.css", Some("body {}\n")),
        ],
        "first",
    );
    let gits = Git::new(tmp.path().join("cache"), quick_retry(3));
    let worktree = tmp.path().join("deploy/site");
    let remote = remote(file_url(&upstream));

    let info = checkout_main(&gits, &remote, &sha, &worktree).unwrap();

    assert!(info.fetched);
    assert_eq!(info.fetch_attempts, 1);
    assert_eq!(
        files(&worktree),
        tree(&[
            ("index.html", "<h1>hi</h1>\n"),
            ("css/site.css", "body {}\n")
        ])
    );
    assert_at(&gits, &worktree, &sha);
    let cache = Repository::open_bare(gits.cache_path(&remote.url)).unwrap();
    assert!(cache.is_bare());
    assert_eq!(
        cache.refname_to_id("refs/heads/main").unwrap().to_string(),
        sha
    );
    // Nothing was copied: the work tree borrows the cache's objects.
    let alternates =
        fs::read_to_string(gits.git_dir_of(&worktree).join("objects/info/alternates")).unwrap();
    assert_eq!(
        alternates.trim(),
        cache.path().join("objects").to_str().unwrap()
    );
}

#[test]
fn an_older_push_gets_its_own_tree_and_leftovers_are_removed() {
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let first = commit(
        &upstream,
        &[
            ("app.txt", Some("v1\n")),
            ("old/gone.txt", Some("bye\n")),
            (".gitignore", Some("*.log\n")),
        ],
        "v1",
    );
    // A plain path, not file://: both forms of local remote must work.
    let remote = remote(upstream.display().to_string());
    let gits = Git::new(tmp.path().join("cache"), quick_retry(3));
    let worktree = tmp.path().join("tree");
    checkout_main(&gits, &remote, &first, &worktree).unwrap();
    // Leftovers of a previous deploy: untracked, ignored, and a whole directory.
    fs::write(worktree.join("junk.txt"), "junk").unwrap();
    fs::write(worktree.join("build.log"), "ignored junk").unwrap();
    fs::create_dir_all(worktree.join("tmp/nested")).unwrap();
    fs::write(worktree.join("tmp/nested/x"), "x").unwrap();
    fs::write(worktree.join("app.txt"), "edited in place\n").unwrap();

    let second = commit(
        &upstream,
        &[
            ("app.txt", Some("v2\n")),
            ("old/gone.txt", None),
            ("new.txt", Some("new\n")),
        ],
        "v2",
    );
    let third = commit(&upstream, &[("app.txt", Some("v3\n"))], "v3");

    let info = checkout_main(&gits, &remote, &second, &worktree).unwrap();
    assert!(info.fetched);
    assert_eq!(
        files(&worktree),
        tree(&[
            ("app.txt", "v2\n"),
            ("new.txt", "new\n"),
            (".gitignore", "*.log\n")
        ]),
        "the older push's tree, not the branch head's"
    );
    assert_at(&gits, &worktree, &second);

    checkout_main(&gits, &remote, &third, &worktree).unwrap();
    assert_eq!(files(&worktree)["app.txt"], "v3\n");
    assert_at(&gits, &worktree, &third);

    // And back again: a rollback to the first push restores the deleted file.
    checkout_main(&gits, &remote, &first, &worktree).unwrap();
    assert_eq!(
        files(&worktree),
        tree(&[
            ("app.txt", "v1\n"),
            ("old/gone.txt", "bye\n"),
            (".gitignore", "*.log\n")
        ])
    );
    assert_at(&gits, &worktree, &first);
}

#[test]
fn a_cached_commit_needs_no_fetch() {
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let sha = commit(&upstream, &[("a", Some("1"))], "one");
    let remote = remote(file_url(&upstream));
    let gits = Git::new(tmp.path().join("cache"), quick_retry(3));
    checkout_main(&gits, &remote, &sha, &tmp.path().join("w1")).unwrap();

    // The remote disappears: only the cache can serve the commit now.
    fs::remove_dir_all(&upstream).unwrap();
    let again = checkout_main(&gits, &remote, &sha, &tmp.path().join("w1")).unwrap();
    let elsewhere = checkout_main(&gits, &remote, &sha, &tmp.path().join("w2")).unwrap();

    for info in [again, elsewhere] {
        assert!(!info.fetched);
        assert_eq!(info.fetch_attempts, 0);
    }
    assert_eq!(files(&tmp.path().join("w2")), tree(&[("a", "1")]));
}

#[test]
fn a_work_tree_outlives_its_cache_and_a_force_push() {
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let first = commit(&upstream, &[("a", Some("1")), ("b", Some("b"))], "one");
    let remote = remote(file_url(&upstream));
    let gits = Git::new(tmp.path().join("cache"), quick_retry(1));
    let worktree = tmp.path().join("w");
    checkout_main(&gits, &remote, &first, &worktree).unwrap();

    // History rewritten upstream and the cache lost: the work tree's HEAD and index now
    // name a commit no repository it can reach has.
    git(&upstream, &["checkout", "-q", "--orphan", "rewritten"]);
    let second = commit(&upstream, &[("b", None), ("a", Some("2"))], "rewritten");
    git(&upstream, &["branch", "-q", "-M", "rewritten", "main"]);
    fs::remove_dir_all(gits.cache_path(&remote.url)).unwrap();
    let info = checkout_main(&gits, &remote, &second, &worktree).unwrap();

    assert!(info.fetched);
    let cache = Repository::open_bare(gits.cache_path(&remote.url)).unwrap();
    assert!(cache.find_commit(first.parse().unwrap()).is_err());
    assert_eq!(files(&worktree), tree(&[("a", "2")]));
    assert_at(&gits, &worktree, &second);
}

#[test]
fn an_unreachable_url_fails_after_every_attempt_with_a_readable_message() {
    let tmp = TempDir::new().unwrap();
    let gits = Git::new(tmp.path().join("cache"), quick_retry(3));
    let sha = "1111111111111111111111111111111111111111";
    let missing = tmp.path().join("no-such-repo");
    let closed_port = free_port();
    let cases = [
        (missing.display().to_string(), "no such directory"),
        (file_url(&missing), "failed to resolve path"),
        (
            format!("git://127.0.0.1:{closed_port}/app.git"),
            "failed to connect",
        ),
        (
            format!("http://deploy:s3cret-token@127.0.0.1:{closed_port}/app.git"),
            "failed to connect",
        ),
    ];
    for (url, reason) in cases {
        let err =
            checkout_main(&gits, &remote(url.clone()), sha, &tmp.path().join("w")).unwrap_err();
        let GitError::Fetch { attempts, .. } = &err else {
            panic!("{url}: expected a fetch error, got {err:?}");
        };
        assert_eq!(*attempts, 3, "{url}");
        let message = err.to_string();
        let shown = url.replace("s3cret-token", "***");
        assert!(
            message.starts_with(&format!(
                "cannot fetch {shown}: failed after 3 attempt(s); last error: "
            )),
            "{message}"
        );
        assert!(message.contains(reason), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }

    // Asking again cannot help a URL libgit2 has no transport for.
    let err = gits
        .checkout(
            &remote("svn://example.com/app".to_owned()),
            "refs/heads/main",
            sha,
            OnRef::Required,
            &Abort::never(),
            &tmp.path().join("w"),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot fetch svn://example.com/app: failed after 1 attempt(s); last error: unsupported URL scheme `svn://`; use https, http, ssh, git or file"
    );
}

#[test]
fn a_commit_the_remote_does_not_have_is_named_in_the_error() {
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    commit(&upstream, &[("a", Some("1"))], "one");
    let remote = remote(file_url(&upstream));
    let gits = Git::new(tmp.path().join("cache"), quick_retry(3));
    let gone = "0123456789abcdef0123456789abcdef01234567";

    let err = checkout_main(&gits, &remote, gone, &tmp.path().join("w")).unwrap_err();

    assert!(matches!(err, GitError::CommitMissing { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "commit {gone} is not in {}: was it force-pushed away?",
            remote.url
        )),
        "{message}"
    );

    for bad in ["abc123", "", "0123456789abcdef0123456789abcdef0123456g"] {
        let err = checkout_main(&gits, &remote, bad, &tmp.path().join("w")).unwrap_err();
        assert!(matches!(err, GitError::InvalidSha { .. }), "{bad}: {err:?}");
    }
}

#[test]
fn an_annotated_tag_checks_out_its_commit() {
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let sha = commit(&upstream, &[("a", Some("tagged"))], "one");
    git(&upstream, &["tag", "-a", "v1.0", "-m", "release"]);
    let tag_object = git(&upstream, &["rev-parse", "refs/tags/v1.0"]);
    assert_ne!(tag_object, sha);
    let gits = Git::new(tmp.path().join("cache"), quick_retry(1));
    let worktree = tmp.path().join("w");

    gits.checkout(
        &remote(file_url(&upstream)),
        "refs/tags/v1.0",
        &tag_object,
        OnRef::Required,
        &Abort::never(),
        &worktree,
    )
    .unwrap();

    assert_at(&gits, &worktree, &sha);
    assert_eq!(files(&worktree), tree(&[("a", "tagged")]));
}

#[test]
fn resolve_fetches_and_names_the_current_head_of_a_ref() {
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let first = commit(&upstream, &[("a", Some("1"))], "one");
    let remote = remote(file_url(&upstream));
    let gits = Git::new(tmp.path().join("cache"), quick_retry(1));

    assert_eq!(
        gits.resolve(&remote, "refs/heads/main", &Abort::never())
            .unwrap(),
        first
    );
    let second = commit(&upstream, &[("a", Some("2"))], "two");
    assert_eq!(
        gits.resolve(&remote, "refs/heads/main", &Abort::never())
            .unwrap(),
        second
    );

    let err = gits
        .resolve(&remote, "refs/heads/nope", &Abort::never())
        .unwrap_err();
    assert!(matches!(err, GitError::RefMissing { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("refs/heads/nope is not a branch or tag of file://")
    );
}

#[test]
fn shallow_fetch_through_git_daemon() {
    let tmp = TempDir::new().unwrap();
    let served = tmp.path().join("served");
    let upstream = new_repo(&served.join("app"));
    commit(&upstream, &[("a", Some("1")), ("b", Some("b"))], "one");
    let second = commit(&upstream, &[("a", Some("2"))], "two");
    let daemon = Daemon::start(&served);
    let remote = Remote {
        shallow: true,
        ..remote(daemon.url("app"))
    };
    let gits = Git::new(tmp.path().join("cache"), quick_retry(3));
    let worktree = tmp.path().join("w");

    let info = checkout_main(&gits, &remote, &second, &worktree).unwrap();

    assert!(info.fetched);
    assert_eq!(files(&worktree), tree(&[("a", "2"), ("b", "b")]));
    let cache = Repository::open_bare(gits.cache_path(&remote.url)).unwrap();
    assert!(cache.is_shallow());
    let commit = cache.find_commit(second.parse().unwrap()).unwrap();
    assert!(
        cache.find_commit(commit.parent_id(0).unwrap()).is_err(),
        "depth 1 brought history"
    );

    // Incremental: the next push arrives shallow too.
    let third = commit_in(&upstream, "a", "3");
    let fourth = commit_in(&upstream, "a", "4");
    checkout_main(&gits, &remote, &fourth, &worktree).unwrap();
    assert_eq!(files(&worktree)["a"], "4");
    assert!(
        Repository::open_bare(gits.cache_path(&remote.url))
            .unwrap()
            .is_shallow()
    );

    // A push overtaken by the next one is no tip any more: it takes the history.
    let info = checkout_main(&gits, &remote, &third, &worktree).unwrap();
    assert!(info.fetched);
    assert_eq!(files(&worktree)["a"], "3");
    assert_at(&gits, &worktree, &third);
    assert!(
        !Repository::open_bare(gits.cache_path(&remote.url))
            .unwrap()
            .is_shallow()
    );
    drop(daemon);
}

fn commit_in(repo: &Path, file: &str, content: &str) -> String {
    commit(repo, &[(file, Some(content))], content)
}

/// main ─ sub (at `sub`) ─ leaf (at `deps/leaf`), local repositories under `remotes/`
/// with relative submodule URLs; returns their paths and main's head.
fn submodule_chain(tmp: &Path) -> (PathBuf, PathBuf, PathBuf, String) {
    let remotes = tmp.join("remotes");
    let leaf = new_repo(&remotes.join("leaf"));
    commit(&leaf, &[("leaf.txt", Some("leaf v1\n"))], "leaf");
    let sub = new_repo(&remotes.join("sub"));
    commit(&sub, &[("sub.txt", Some("sub\n"))], "sub");
    // Relative URLs, as most projects write them; git resolves them against the
    // superproject's own path here, and deployhook against the remote URL.
    file_git(&sub, &["submodule", "add", "-q", "../leaf", "deps/leaf"]);
    git(&sub, &["commit", "-q", "-m", "add leaf"]);
    let main = new_repo(&remotes.join("main"));
    commit(&main, &[("main.txt", Some("main\n"))], "main");
    file_git(&main, &["submodule", "add", "-q", "../sub", "sub"]);
    git(&main, &["commit", "-q", "-m", "add sub"]);
    let sha = git(&main, &["rev-parse", "HEAD"]);
    (main, sub, leaf, sha)
}

/// Local submodules are only fetched when the hook lists them, at every level.
#[test]
fn an_unlisted_local_submodule_is_refused() {
    let tmp = TempDir::new().unwrap();
    let (main, sub, _, sha) = submodule_chain(tmp.path());
    let unlisted = Remote {
        submodules: true,
        submodule_urls: vec![file_url(&sub)],
        ..remote(file_url(&main))
    };
    let err = Git::new(tmp.path().join("cache"), quick_retry(1))
        .checkout(
            &unlisted,
            "refs/heads/main",
            &sha,
            OnRef::Required,
            &Abort::never(),
            &tmp.path().join("w"),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("submodule `sub`: submodule `deps/leaf`: cannot fetch a submodule for deps/leaf: submodule URL file://"),
        "{err}"
    );
}

#[test]
fn submodules_are_checked_out_recursively_when_asked() {
    let tmp = TempDir::new().unwrap();
    let (main, sub, leaf, sha) = submodule_chain(tmp.path());
    let gits = Git::new(tmp.path().join("cache"), quick_retry(1));
    let with_submodules = Remote {
        submodules: true,
        submodule_urls: vec![file_url(&sub), file_url(&leaf)],
        ..remote(file_url(&main))
    };
    let worktree = tmp.path().join("w");

    let info = checkout_main(&gits, &with_submodules, &sha, &worktree).unwrap();

    assert!(info.fetched);
    assert_eq!(info.fetch_attempts, 3, "one fetch per repository");
    let checked_out = files(&worktree);
    assert_eq!(checked_out["main.txt"], "main\n");
    assert_eq!(checked_out["sub/sub.txt"], "sub\n");
    assert_eq!(checked_out["sub/deps/leaf/leaf.txt"], "leaf v1\n");
    let leaf_sha = git(&leaf, &["rev-parse", "HEAD"]);
    let leaf_git_dir = gits
        .git_dir_of(&worktree)
        .join("modules/sub/modules/deps/leaf");
    assert_eq!(
        git_at(
            &leaf_git_dir,
            &worktree.join("sub/deps/leaf"),
            &["rev-parse", "HEAD"]
        ),
        leaf_sha
    );
    assert_at(&gits, &worktree, &sha);

    // A new leaf commit, recorded up the chain, reaches the work tree on the next deploy.
    commit(&leaf, &[("leaf.txt", Some("leaf v2\n"))], "leaf v2");
    let sub_checkout = sub.join("deps/leaf");
    file_git(&sub_checkout, &["pull", "-q", "origin", "main"]);
    git(&sub, &["commit", "-q", "-am", "bump leaf"]);
    file_git(&main.join("sub"), &["pull", "-q", "origin", "main"]);
    git(&main, &["commit", "-q", "-am", "bump sub"]);
    let bumped = git(&main, &["rev-parse", "HEAD"]);
    checkout_main(&gits, &with_submodules, &bumped, &worktree).unwrap();
    assert_eq!(files(&worktree)["sub/deps/leaf/leaf.txt"], "leaf v2\n");
    assert_at(&gits, &worktree, &bumped);

    // The same commit again is all cached.
    let again = checkout_main(&gits, &with_submodules, &bumped, &worktree).unwrap();
    assert!(!again.fetched);
    assert_eq!(files(&worktree)["sub/deps/leaf/leaf.txt"], "leaf v2\n");

    // Not asked: the submodule stays an empty directory.
    let plain = tmp.path().join("plain");
    checkout_main(&gits, &remote(file_url(&main)), &bumped, &plain).unwrap();
    assert!(!files(&plain).keys().any(|k| k.starts_with("sub/")));
}

#[test]
fn concurrent_checkouts_of_one_url_both_succeed() {
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    for i in 0..20 {
        commit(
            &upstream,
            &[(&format!("f{i}"), Some(&"x".repeat(i * 100)))],
            "fill",
        );
    }
    let sha = git(&upstream, &["rev-parse", "HEAD"]);
    let remote = remote(file_url(&upstream));
    let gits = Git::new(tmp.path().join("cache"), quick_retry(1));
    let start = Barrier::new(2);
    let (w1, w2) = (tmp.path().join("w1"), tmp.path().join("w2"));

    let run = |worktree: &Path| {
        start.wait();
        gits.checkout(
            &remote,
            "refs/heads/main",
            &sha,
            OnRef::Required,
            &Abort::never(),
            worktree,
        )
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run(&w1));
        let b = s.spawn(|| run(&w2));
        (a.join().unwrap(), b.join().unwrap())
    });

    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.fetched || b.fetched);
    assert!(
        !(a.fetched && b.fetched),
        "the second waited for the first and found it cached"
    );
    assert_eq!(files(&w1), files(&w2));
    assert_eq!(files(&w1).len(), 20);
    assert_at(&gits, &w1, &sha);
    assert_at(&gits, &w2, &sha);
}

/// The attack of a deploy command on the next checkout (issue: sandbox escape). What a
/// command may write, its work tree, it fills with a planted git directory (a
/// `core.worktree` pointing outside, an alternates symlink onto a file outside), a
/// tracked directory replaced by a symlink to a directory outside, a nested repository,
/// a gitlink-like directory and changed modes. The next checkout must write nothing
/// outside, follow none of it, and leave exactly the commit's files.
#[test]
fn nothing_a_command_leaves_in_the_work_tree_reaches_the_next_checkout() {
    use std::os::unix::fs::{PermissionsExt as _, symlink};
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let first = commit(
        &upstream,
        &[("app.txt", Some("v1\n")), ("www/index.html", Some("v1\n"))],
        "v1",
    );
    let second = commit(&upstream, &[("app.txt", Some("v2\n"))], "v2");
    let gits = Git::new(tmp.path().join("cache"), quick_retry(1));
    let worktree = tmp.path().join("work/site");
    let remote = remote(file_url(&upstream));
    checkout_main(&gits, &remote, &first, &worktree).unwrap();

    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim.txt"), "precious\n").unwrap();
    let outside_tree = tmp.path().join("outside-tree");
    fs::create_dir_all(&outside_tree).unwrap();
    fs::write(outside_tree.join("keep.txt"), "keep\n").unwrap();
    // A planted git directory, as the old layout kept one in the work tree.
    fs::create_dir_all(worktree.join(".git/objects/info")).unwrap();
    fs::write(
        worktree.join(".git/config"),
        format!("[core]\n\tworktree = {}\n", outside_tree.display()),
    )
    .unwrap();
    fs::write(worktree.join(".git/HEAD"), "ref: refs/heads/evil\n").unwrap();
    symlink(
        outside.join("victim.txt"),
        worktree.join(".git/objects/info/alternates"),
    )
    .unwrap();
    // A tracked directory replaced by a symlink out of the tree.
    fs::remove_dir_all(worktree.join("www")).unwrap();
    symlink(&outside_tree, worktree.join("www")).unwrap();
    // A nested repository, a web shell, a setuid file and a world-writable directory.
    git(&new_repo(&worktree.join("vendor/nested")), &["status"]);
    fs::write(worktree.join("shell.php"), "<?php system($_GET['c']);").unwrap();
    fs::write(worktree.join("app.txt"), "v1\ninjected line\n").unwrap();
    fs::set_permissions(worktree.join("app.txt"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::create_dir_all(worktree.join("open")).unwrap();
    fs::set_permissions(worktree.join("open"), fs::Permissions::from_mode(0o777)).unwrap();

    checkout_main(&gits, &remote, &second, &worktree).unwrap();

    assert_eq!(
        fs::read_to_string(outside.join("victim.txt")).unwrap(),
        "precious\n"
    );
    assert_eq!(
        fs::read_dir(&outside_tree)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>(),
        vec!["keep.txt"],
        "the checkout wrote into, or deleted from, a directory outside the work tree"
    );
    assert_eq!(
        files(&worktree),
        tree(&[("app.txt", "v2\n"), ("www/index.html", "v1\n")])
    );
    assert!(fs::symlink_metadata(worktree.join("www")).unwrap().is_dir());
    let mode = fs::metadata(worktree.join("app.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7000, 0, "a setuid bit survived: {mode:o}");
    assert_at(&gits, &worktree, &second);
}

/// A checkout that fails half way (the commit is not there) leaves nothing that breaks
/// the next one, and the git directory is out of reach whatever the work tree holds.
#[test]
fn a_failed_checkout_does_not_wedge_the_next() {
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let sha = commit(&upstream, &[("a.txt", Some("a\n"))], "a");
    let gits = Git::new(tmp.path().join("cache"), quick_retry(1));
    let worktree = tmp.path().join("w");
    let remote = remote(file_url(&upstream));
    checkout_main(&gits, &remote, &sha, &worktree).unwrap();
    // What the old layout let a command forge: an index and a HEAD in the work tree.
    fs::create_dir_all(worktree.join(".git")).unwrap();
    fs::write(worktree.join(".git/index"), "DIRC garbage").unwrap();
    fs::write(worktree.join(".git/HEAD"), "garbage").unwrap();
    let missing = "0123456789abcdef0123456789abcdef01234567";
    assert!(checkout_main(&gits, &remote, missing, &worktree).is_err());
    checkout_main(&gits, &remote, &sha, &worktree).unwrap();
    assert_eq!(files(&worktree), tree(&[("a.txt", "a\n")]));
    assert_at(&gits, &worktree, &sha);
}

/// The attack: a commit that only a fork's pull request ref has (`refs/pull/7/head`),
/// deployed under the `main` rule. Once the cache has it (an earlier job of a pull
/// request rule fetched it, say), the old code checked it out for any ref.
#[test]
fn a_commit_not_on_the_pushed_ref_is_refused_unless_forced() {
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let main = commit(&upstream, &[("app.txt", Some("main\n"))], "main");
    git(&upstream, &["checkout", "-q", "-b", "feature"]);
    let fork = commit(&upstream, &[("app.txt", Some("fork\n"))], "from a fork");
    git(&upstream, &["update-ref", "refs/pull/7/head", &fork]);
    git(&upstream, &["checkout", "-q", "main"]);
    git(&upstream, &["branch", "-q", "-D", "feature"]);
    let gits = Git::new(tmp.path().join("cache"), quick_retry(1));
    let worktree = tmp.path().join("w");
    let remote = remote(file_url(&upstream));

    // The pull request's own ref may deploy it, and that puts it in the cache.
    gits.checkout(
        &remote,
        "refs/pull/7/head",
        &fork,
        OnRef::Required,
        &Abort::never(),
        &worktree,
    )
    .unwrap();
    let err = checkout_main(&gits, &remote, &fork, &worktree).unwrap_err();
    assert_eq!(
        err,
        GitError::NotOnRef {
            sha: fork.clone(),
            git_ref: "refs/heads/main".to_owned(),
            url: remote.url.clone(),
            tip: Some(main.clone()),
        }
    );
    assert!(
        err.to_string().contains("--force"),
        "the message says how to deploy it on purpose: {err}"
    );
    // A branch that does not exist contains nothing.
    let err = gits
        .checkout(
            &remote,
            "refs/heads/nope",
            &main,
            OnRef::Required,
            &Abort::never(),
            &worktree,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("the ref does not exist there"),
        "{err}"
    );
    // The tip and its ancestors deploy; so does anything, by an operator's --force.
    checkout_main(&gits, &remote, &main, &worktree).unwrap();
    gits.checkout(
        &remote,
        "refs/heads/main",
        &fork,
        OnRef::Unchecked,
        &Abort::never(),
        &worktree,
    )
    .unwrap();
    assert_eq!(files(&worktree)["app.txt"], "fork\n");
}

/// A branch that moved on since the cache last fetched it: the commit pushed now is on
/// the remote's ref, not yet on the cached one, and one fetch settles it.
#[test]
fn a_ref_that_moved_since_the_last_fetch_is_fetched_again() {
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let first = commit(&upstream, &[("a", Some("1"))], "1");
    let gits = Git::new(tmp.path().join("cache"), quick_retry(1));
    let worktree = tmp.path().join("w");
    let remote = remote(file_url(&upstream));
    checkout_main(&gits, &remote, &first, &worktree).unwrap();
    // The commit reaches the cache through another branch first.
    git(&upstream, &["checkout", "-q", "-b", "next"]);
    let second = commit(&upstream, &[("a", Some("2"))], "2");
    gits.checkout(
        &remote,
        "refs/heads/next",
        &second,
        OnRef::Required,
        &Abort::never(),
        &worktree,
    )
    .unwrap();
    git(&upstream, &["checkout", "-q", "main"]);
    git(&upstream, &["merge", "-q", "--ff-only", "next"]);
    let info = checkout_main(&gits, &remote, &second, &worktree).unwrap();
    assert!(info.fetched, "the cached main did not have it yet");
    assert_at(&gits, &worktree, &second);
}

/// A commit whose tree names one blob `copies` times (a checkout bomb: the repository
/// stays tiny), made with git's plumbing; returns its sha.
fn bomb_commit(repo: &Path, blob_bytes: usize, copies: usize) -> String {
    use std::io::Write as _;
    let blob_file = repo.join("../blob");
    fs::write(&blob_file, vec![b'x'; blob_bytes]).unwrap();
    let blob = git(repo, &["hash-object", "-w", blob_file.to_str().unwrap()]);
    let mut child = Command::new("git")
        .args(["update-index", "--add", "--index-info"])
        .current_dir(repo)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..copies {
        writeln!(stdin, "100644 {blob}\tcopy-{i}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    git(repo, &["commit", "-q", "-m", "bomb"]);
    git(repo, &["rev-parse", "HEAD"])
}

/// The attack: a small repository whose commit would write far more than the disk the
/// work tree shares with the database can take, or more files, or deeper directories,
/// than any project has. Each fails before anything is written, naming the limit, and
/// the next checkout still works.
#[test]
fn a_checkout_over_a_limit_writes_nothing_and_names_the_limit() {
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let small = commit(&upstream, &[("ok.txt", Some("ok\n"))], "small");
    // 64 KiB under 200 names: 12.5 MiB to write, from one 64 KiB object.
    let bomb = bomb_commit(&upstream, 64 << 10, 200);
    let deep_path = vec!["d"; 70].join("/") + "/deep.txt";
    let deep = commit(&upstream, &[(&deep_path, Some("deep\n"))], "deep");
    let gits = Git::new(tmp.path().join("cache"), quick_retry(1));
    let worktree = tmp.path().join("w");
    let with = |limits: TreeLimits| Remote {
        limits,
        ..remote(file_url(&upstream))
    };
    let checkout = |remote: &Remote, sha: &str| {
        gits.checkout(
            remote,
            "refs/heads/main",
            sha,
            OnRef::Required,
            &Abort::never(),
            &worktree,
        )
    };
    let cases = [
        (
            TreeLimits {
                max_bytes: 10 << 20,
                ..TreeLimits::default()
            },
            &bomb,
            "max_checkout_size",
            10 << 20,
        ),
        (
            TreeLimits {
                max_files: 150,
                ..TreeLimits::default()
            },
            &bomb,
            "max_checkout_files",
            150,
        ),
        (TreeLimits::default(), &deep, "max_tree_depth", 64),
    ];
    for (limits, sha, limit, allowed) in cases {
        checkout(&with(limits), &small).unwrap();
        let err = checkout(&with(limits), sha).unwrap_err();
        assert_eq!(
            err,
            GitError::OverLimit {
                sha: sha.clone(),
                limit,
                allowed
            }
        );
        assert!(err.to_string().contains(&format!("raise {limit}")), "{err}");
        assert_eq!(
            fs::read_dir(&worktree).unwrap().count(),
            0,
            "{limit}: something was written"
        );
    }
    // Within the defaults all three check out, and the next small one is whole again.
    checkout(&with(TreeLimits::default()), &bomb).unwrap();
    assert_eq!(fs::read_dir(&worktree).unwrap().count(), 201);
    checkout(&with(TreeLimits::default()), &small).unwrap();
    assert_at(&gits, &worktree, &small);
}

/// The next checkout writes only what changed, yet trusts nothing a command left: an
/// edit that kept the file's size and modification time (invisible to a cache of those)
/// is undone, as its change time gives it away, a tracked file turned into a hard link
/// to a file outside is cut loose without writing through it, and a file nobody touched
/// keeps its inode (it was not written again).
#[test]
fn the_next_checkout_is_incremental_but_trusts_no_size_or_mtime() {
    use std::os::unix::fs::MetadataExt as _;
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let first = commit(
        &upstream,
        &[
            ("config.php", Some("$admin = false;\n")),
            ("linked.txt", Some("tracked\n")),
            ("same.txt", Some("untouched\n")),
            ("changes.txt", Some("v1\n")),
        ],
        "v1",
    );
    let second = commit(&upstream, &[("changes.txt", Some("v2\n"))], "v2");
    let gits = Git::new(tmp.path().join("cache"), quick_retry(1));
    let worktree = tmp.path().join("w");
    let remote = remote(file_url(&upstream));
    checkout_main(&gits, &remote, &first, &worktree).unwrap();
    let inode = |name: &str| fs::metadata(worktree.join(name)).unwrap().ino();
    let untouched = inode("same.txt");
    // Past the clock tick the index was written in, so the record vouches for files by
    // their stat data alone (an edit in that same tick is covered by hashing).
    wait_past_index(&gits, &worktree, tmp.path());

    // Same length, same mtime: a cache of size and mtime sees nothing.
    let config = worktree.join("config.php");
    let mtime = fs::metadata(&config).unwrap().modified().unwrap();
    fs::write(&config, "$admin = true; \n").unwrap();
    fs::File::options()
        .write(true)
        .open(&config)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let outside = tmp.path().join("outside.txt");
    fs::write(&outside, "tracked\n").unwrap();
    fs::remove_file(worktree.join("linked.txt")).unwrap();
    fs::hard_link(&outside, worktree.join("linked.txt")).unwrap();

    checkout_main(&gits, &remote, &second, &worktree).unwrap();
    assert_eq!(
        files(&worktree),
        tree(&[
            ("config.php", "$admin = false;\n"),
            ("linked.txt", "tracked\n"),
            ("same.txt", "untouched\n"),
            ("changes.txt", "v2\n"),
        ])
    );
    assert_eq!(
        fs::metadata(worktree.join("linked.txt")).unwrap().nlink(),
        1
    );
    assert_eq!(fs::read_to_string(&outside).unwrap(), "tracked\n");
    assert_eq!(
        inode("same.txt"),
        untouched,
        "an untouched file was written again"
    );
    assert_at(&gits, &worktree, &second);
}

/// Waits (polling, with a deadline) until a file written now gets a later timestamp than
/// the work tree's index: then no file the last checkout recorded shares its clock tick.
fn wait_past_index(gits: &Git, worktree: &Path, scratch: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let stamp = |m: fs::Metadata| (m.mtime(), m.mtime_nsec());
    let sealed = stamp(fs::metadata(gits.git_dir_of(worktree).join("index")).unwrap());
    let probe = scratch.join("clock-probe");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        fs::write(&probe, "tick").unwrap();
        if stamp(fs::metadata(&probe).unwrap()) > sealed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the file clock did not move in 5 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Bytes this thread has read with read(2) and the like so far (not through mmap, as
/// libgit2 reads packs): `rchar` of /proc/thread-self/io.
fn bytes_read_by_this_thread() -> u64 {
    let io = fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io is readable");
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("rchar in /proc/thread-self/io")
}

/// A file no command touched is neither hashed by the scrub nor by libgit2's checkout:
/// the next deploy reads none of its bytes (it used to read each kept file twice).
#[test]
fn an_untouched_file_is_not_read_again() {
    const BIG: usize = 4 << 20;
    let tmp = TempDir::new().unwrap();
    let upstream = new_repo(&tmp.path().join("upstream"));
    let line = "an untouched line of a large generated file, the same from deploy to deploy\n";
    let big = line.repeat(BIG / line.len() + 1);
    let first = commit(
        &upstream,
        &[("assets/big.txt", Some(&big)), ("app.txt", Some("v1\n"))],
        "v1",
    );
    let second = commit(&upstream, &[("app.txt", Some("v2\n"))], "v2");
    let third = commit(&upstream, &[("app.txt", Some("v3\n"))], "v3");
    let gits = Git::new(tmp.path().join("cache"), quick_retry(1));
    let worktree = tmp.path().join("w");
    let remote = remote(file_url(&upstream));
    checkout_main(&gits, &remote, &first, &worktree).unwrap();
    // A file written in the clock tick its index was written in is hashed once more
    // (the second checkout may read it); after that its record is sealed by a later index.
    wait_past_index(&gits, &worktree, tmp.path());
    checkout_main(&gits, &remote, &second, &worktree).unwrap();
    wait_past_index(&gits, &worktree, tmp.path());

    let before = bytes_read_by_this_thread();
    checkout_main(&gits, &remote, &third, &worktree).unwrap();
    let read = bytes_read_by_this_thread() - before;

    assert!(
        read < (BIG / 4) as u64,
        "the second checkout read {read} bytes: the untouched {BIG}-byte file was read again"
    );
    assert_eq!(
        files(&worktree),
        tree(&[("assets/big.txt", &big), ("app.txt", "v3\n")])
    );
    assert_at(&gits, &worktree, &third);
}
