//! Attacks from the content of the repository being deployed, end to end through the
//! daemon: whoever can push to a branch a rule matches writes the deploy commands, so
//! each test here is one way out of the box, and asserts that it stays shut.

use std::fs;

use crate::gitrepo::{Repo, git};
use crate::helpers::*;
use crate::jobs::{ZERO, spawn_site};

fn log_of(app: &TestApp, id: i64) -> String {
    get(app.addr, &format!("/api/jobs/{id}/log")).body
}

/// The unprivileged user a daemon runs as in these tests: (uid, gid), as numbers.
fn daemon_ids() -> (String, String) {
    let user = crate::runner::test_user();
    (
        crate::runner::id_of(user, "-u"),
        crate::runner::id_of(user, "-g"),
    )
}

/// Gives `paths`, and everything in them, to `ids`.
fn give(paths: &[&std::path::Path], (uid, gid): &(String, String)) {
    for path in paths {
        let chown = std::process::Command::new("chown")
            .args(["-R", &format!("{uid}:{gid}")])
            .arg(path)
            .status()
            .unwrap();
        assert!(chown.success(), "chown {}", path.display());
    }
}

/// `program` run by `setpriv` as `ids` with no supplementary groups, after `extra`
/// setpriv options.
fn as_ids((uid, gid): &(String, String), extra: &[&str], program: &str) -> std::process::Command {
    let mut c = std::process::Command::new("setpriv");
    c.args([format!("--reuid={uid}"), format!("--regid={gid}")])
        .arg("--clear-groups")
        .args(extra)
        .arg(program);
    c
}

/// The commands printed every line of `said` and none of `never` (on stdout).
fn assert_output(log: &str, said: &[&str], never: &[&str]) {
    for line in said {
        assert!(
            log.contains(&format!("out| {line}\n")),
            "missing {line:?}: {log}"
        );
    }
    for leak in never {
        assert!(!log.contains(&format!("out| {leak}")), "{leak}: {log}");
    }
}

/// A sandboxed command may write only its work tree. It plants what the daemon's next
/// checkout used to follow: a `.git/config` whose `core.worktree` points outside, an
/// alternates symlink onto a file outside, a tracked directory replaced by a symlink out
/// of the tree, and a web shell. The next job must check out into its own tree only and
/// see none of it.
#[test]
fn a_sandboxed_job_cannot_reach_outside_through_the_next_checkout() {
    let repo = Repo::new();
    let v1 = repo.commit(&[("version.txt", "1"), ("www/index.html", "site v1")], &[]);
    let v2 = repo.commit(&[("version.txt", "2")], &[]);
    let out = tempfile::tempdir().unwrap();
    let victim = out.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("file"), "precious").unwrap();
    let app = spawn_site(
        out.path(),
        &repo,
        r#"
[[hook.rule]]
branches = ["main"]
sandbox = true
env = { VICTIM = "$OUTDIR/victim" }
commands = ["""
if [ "$(cat version.txt)" = 1 ]; then
  mkdir -p .git/objects/info
  printf '[core]\n\tworktree = %s\n' "$VICTIM" > .git/config
  echo 'ref: refs/heads/evil' > .git/HEAD
  ln -s "$VICTIM/file" .git/objects/info/alternates
  rm -rf www && ln -s "$VICTIM" www
  echo '<?php system($_GET[1]);' > shell.php
fi
echo "files: $(ls -A | tr '\n' ' ')"
"""]
"#,
    );
    let first = wait_job(
        &app,
        job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &v1)),
    );
    assert_eq!(first["state"], "succeeded", "{}", log_of(&app, 1));
    let id = job_id(&push_generic(&app, "site", "refs/heads/main", &v1, &v2));
    let second = wait_job(&app, id);
    let log = log_of(&app, id);
    assert_eq!(second["state"], "succeeded", "{log}");

    let mut left: Vec<String> = fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["file"],
        "the checkout wrote into a directory outside the work tree"
    );
    assert_eq!(fs::read_to_string(victim.join("file")).unwrap(), "precious");
    assert!(
        log.contains("files: version.txt www \n"),
        "the second job saw more than its commit: {log}"
    );
}

/// A commit that only a fork's pull request ref has, pushed (signed) as if it were on
/// `main`, or deployed by hand for `main`: it must not run under the `main` rule. An
/// operator's `--force` may still deploy it, and the job says so.
#[test]
fn a_commit_that_is_not_on_the_pushed_ref_does_not_deploy() {
    let repo = Repo::new();
    let v1 = repo.commit(&[("version.txt", "1")], &[]);
    git(&repo.path, &["checkout", "-q", "-b", "fork"]);
    let fork = repo.commit(&[("version.txt", "from a fork")], &[]);
    git(&repo.path, &["update-ref", "refs/pull/7/head", &fork]);
    git(&repo.path, &["checkout", "-q", "main"]);
    git(&repo.path, &["branch", "-q", "-D", "fork"]);
    let out = tempfile::tempdir().unwrap();
    let app = spawn_site(
        out.path(),
        &repo,
        "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"cat\", \"version.txt\"]]\n",
    );
    let pushed = wait_job(
        &app,
        job_id(&push_generic(&app, "site", "refs/heads/main", &v1, &fork)),
    );
    assert_eq!(pushed["state"], "failed", "{pushed}");
    let detail = pushed["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("commit {fork} is not on refs/heads/main"))
            && detail.contains(&format!("its tip {v1} does not contain it")),
        "{detail}"
    );

    let deploy = |body: serde_json::Value| {
        post(
            app.addr,
            "/api/hooks/site/deploy",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    };
    let by_hand = wait_job(
        &app,
        job_id(&deploy(serde_json::json!({ "ref": "main", "sha": fork }))),
    );
    assert_eq!(by_hand["state"], "failed", "{by_hand}");
    assert!(
        by_hand["detail"]
            .as_str()
            .unwrap()
            .contains("is not on refs/heads/main"),
        "{by_hand}"
    );
    assert_eq!(by_hand["force"], false);

    let forced = wait_job(
        &app,
        job_id(&deploy(
            serde_json::json!({ "ref": "main", "sha": fork, "force": true }),
        )),
    );
    assert_eq!(forced["state"], "succeeded", "{forced}");
    assert_eq!(forced["force"], true);
    let id = forced["id"].as_i64().unwrap();
    assert!(log_of(&app, id).contains("from a fork"));
}

/// Started by hand as an ordinary user with a careless umask (000), the daemon still keeps
/// its state to itself (state_dir 0750, database 0600, logs 0640), and a process of the
/// same user, as a deploy command is, can read neither its environment (which holds
/// `secret_env` secrets and `CREDENTIALS_DIRECTORY`) nor its memory.
#[test]
fn the_daemon_keeps_its_state_and_memory_from_its_own_user() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::Command;
    let ids = daemon_ids();
    let (uid, gid) = ids.clone();
    let repo = Repo::new();
    let v1 = repo.commit(&[("version.txt", "1")], &[]);
    let dir = TestDir::new(&crate::jobs::config(
        std::path::Path::new("/nonexistent"),
        &crate::jobs::hook(
            "site",
            &repo,
            "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"cat\", \"version.txt\"]]\n",
        ),
    ));
    give(&[dir.dir.path(), repo.path.parent().unwrap()], &ids);
    let as_user = |program: &str| as_ids(&ids, &[], program);
    let mut serve = Command::new("sh");
    serve
        .args([
            "-c",
            r#"umask 000; exec setpriv --reuid="$1" --regid="$2" --clear-groups "$3" serve --config "$4""#,
            "sh",
            &uid,
            &gid,
            env!("CARGO_BIN_EXE_deployhook"),
        ])
        .arg(dir.config_path())
        .env("HOME", dir.dir.path())
        .env("DEPLOYHOOK_TEST_SECRET", "hunter2");
    let (daemon, addr) = start_command(serve);
    let id = job_id(&push_generic_at(addr, "site", "refs/heads/main", ZERO, &v1));
    let job = wait_job_at(addr, id);
    assert_eq!(job["state"], "succeeded", "{job}");

    let mode = |p: std::path::PathBuf| {
        std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o7777
    };
    let state = dir.dir.path().join("state");
    assert_eq!(mode(state.clone()), 0o750, "state_dir");
    assert_eq!(mode(state.join("deployhook.db")), 0o600, "the database");
    assert_eq!(mode(state.join("deployhook.db-wal")), 0o600, "the WAL");
    assert_eq!(mode(state.join("logs")), 0o750, "the logs folder");
    assert_eq!(
        mode(state.join(format!("logs/{id}.log"))),
        0o640,
        "a job log"
    );

    let pid = daemon.0.id();
    for file in ["environ", "mem"] {
        let out = as_user("cat")
            .arg(format!("/proc/{pid}/{file}"))
            .output()
            .unwrap();
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "a process of the daemon's own user read /proc/{pid}/{file}"
        );
    }
    // The same read of a process that is dumpable works: the check above can fail.
    let own = as_user("sh")
        .args(["-c", "cat /proc/$$/environ"])
        .output()
        .unwrap();
    assert!(own.status.success(), "{own:?}");
    drop(daemon);
}

/// A remote that accepts connections and then says nothing, for as long as the test
/// lasts: a fetch from it blocks in libgit2's read.
struct Tarpit {
    port: u16,
    _held: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Tarpit {
    fn start() -> Tarpit {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = std::sync::Arc::clone(&held);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                keep.lock().unwrap().push(stream);
            }
        });
        Tarpit { port, _held: held }
    }

    fn hook(&self, timeout: &str) -> String {
        format!(
            r#"
[[hook]]
id = "tarpit"
forge = "generic"
secret_file = "whsec"
repository = "acme/website"
clone_url = "git://127.0.0.1:{}/app.git"
[[hook.rule]]
branches = ["main"]
timeout = "{timeout}"
commands = [["true"]]
"#,
            self.port
        )
    }
}

const SOME_SHA: &str = "1111111111111111111111111111111111111111";

fn wait_running(addr: std::net::SocketAddr, id: i64) {
    wait_for("the job to run", std::time::Duration::from_secs(30), || {
        (get(addr, &format!("/api/jobs/{id}")).json()["state"] == "running").then_some(())
    });
}

/// A fetch from a remote that never answers ends at the rule's timeout (it held the job
/// `running` for minutes, past its timeout), and a cancel stops it at once.
#[test]
fn a_tarpit_remote_cannot_hold_a_job_past_its_timeout_or_a_cancel() {
    let tarpit = Tarpit::start();
    let app = TestApp::spawn(&crate::jobs::config(
        std::path::Path::new("/nonexistent"),
        &tarpit.hook("2s"),
    ));
    let started = std::time::Instant::now();
    let job = wait_job(
        &app,
        job_id(&push_generic(
            &app,
            "tarpit",
            "refs/heads/main",
            ZERO,
            SOME_SHA,
        )),
    );
    assert_eq!(job["state"], "timed_out", "{job}");
    assert!(
        job["detail"].as_str().unwrap().contains("timeout of 2s"),
        "{job}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    drop(app);

    let app = TestApp::spawn(&crate::jobs::config(
        std::path::Path::new("/nonexistent"),
        &tarpit.hook("10m"),
    ));
    let id = job_id(&push_generic(
        &app,
        "tarpit",
        "refs/heads/main",
        ZERO,
        SOME_SHA,
    ));
    wait_running(app.addr, id);
    let cancelled_at = std::time::Instant::now();
    let res = post(app.addr, &format!("/api/jobs/{id}/cancel"), &[], b"");
    assert_eq!(res.status, 202, "{}", res.body);
    let job = wait_job(&app, id);
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(cancelled_at.elapsed() < std::time::Duration::from_secs(10));
}

/// SIGTERM with a job stuck fetching from a tarpit: the daemon stops after its
/// shutdown grace (it used to wait out libgit2's read timeouts, over two minutes).
#[test]
fn a_tarpit_remote_cannot_hold_up_shutdown() {
    let tarpit = Tarpit::start();
    let dir = TestDir::new(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"state\"\nshutdown_grace = \"1s\"\nkill_grace = \"1s\"\n{}\n{}",
        own_command_user(),
        tarpit.hook("10m")
    ));
    let (mut daemon, addr) = start_daemon(&dir.config_path());
    let id = job_id(&push_generic_at(
        addr,
        "tarpit",
        "refs/heads/main",
        ZERO,
        SOME_SHA,
    ));
    wait_running(addr, id);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let stopped_at = std::time::Instant::now();
    let status = wait_for(
        "the daemon to exit",
        std::time::Duration::from_secs(30),
        || daemon.0.try_wait().unwrap(),
    );
    assert!(status.success(), "{status:?}");
    assert!(
        stopped_at.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        stopped_at.elapsed()
    );
    assert_eq!(dir.recorded_state(id), "interrupted");
}

/// The pid in `file` once a command has written it.
fn pid_in(file: &std::path::Path) -> i32 {
    wait_for(
        "the command to write its pid",
        std::time::Duration::from_secs(30),
        || std::fs::read_to_string(file).ok()?.trim().parse().ok(),
    )
}

/// Whether `pid` is still a live process (a zombie is dead, only not yet reaped).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().as_bytes().first() != Some(&b'Z'))
        })
        .unwrap_or(false)
}

/// A command without a user of its own kills (or stops) its supervisor, which would
/// have killed its tree, after starting a process in a session of its own: none of it
/// may outlive the job, its timeout or the daemon's stop.
#[test]
fn a_command_that_kills_or_stops_its_supervisor_does_not_outlive_its_job() {
    let out = tempfile::tempdir().unwrap();
    let repo = Repo::new();
    let v1 = repo.commit(&[("version.txt", "1")], &[]);
    let dir = TestDir::new(&crate::jobs::config(
        out.path(),
        &crate::jobs::hook(
            "site",
            &repo,
            r#"
[[hook.rule]]
branches = ["main"]
timeout = "2s"
env = { OUT = "$OUTDIR" }
commands = ["""
setsid sleep 300 &
echo $! > "$OUT/stray.$(cat version.txt)"
echo $$ > "$OUT/shell.$(cat version.txt)"
if [ "$(cat version.txt)" = 1 ]; then kill -9 $PPID; else kill -STOP $PPID; fi
sleep 300
"""]
"#,
        ),
    ));
    let (_daemon, addr) = start_daemon(&dir.config_path());
    let v2 = repo.commit(&[("version.txt", "2")], &[]);
    for (before, sha, n) in [(ZERO, &v1, 1), (v1.as_str(), &v2, 2)] {
        let id = job_id(&push_generic_at(
            addr,
            "site",
            "refs/heads/main",
            before,
            sha,
        ));
        let stray = pid_in(&out.path().join(format!("stray.{n}")));
        let shell = pid_in(&out.path().join(format!("shell.{n}")));
        let job = wait_job_at(addr, id);
        assert_ne!(job["state"], "succeeded", "{job}");
        for (what, pid) in [("the setsid'd process", stray), ("the command", shell)] {
            assert!(
                !alive(pid),
                "job {n}: {what} ({pid}) outlived the job: {job}"
            );
        }
    }
}

/// The packages' user for commands, created here if this machine lacks it.
fn deployhook_run() -> &'static str {
    const USER: &str = "deployhook-run";
    let exists = |u: &str| {
        std::process::Command::new("id")
            .arg(u)
            .output()
            .unwrap()
            .status
            .success()
    };
    if !exists(USER) {
        let out = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success() || exists(USER),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    USER
}

/// Run by a daemon that can switch users (root), with no `run_as` and no
/// `command_user`: the command runs as `deployhook-run`, may write its work tree and
/// `TMPDIR`, and can neither read the daemon's secret (`whsec`, three folders up from
/// the work tree `state/work/site/0`), database or logs, nor signal its supervisor.
/// (Before, it ran as root and could do all of that.)
#[test]
fn commands_run_as_a_user_of_their_own_by_default() {
    use std::os::unix::fs::PermissionsExt as _;
    let user = deployhook_run();
    let repo = Repo::new();
    let v1 = repo.commit(&[("version.txt", "1")], &[]);
    let dir = TestDir::new(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"state\"\n{}",
        crate::jobs::hook(
            "site",
            &repo,
            r#"
[[hook.rule]]
branches = ["main"]
commands = ["""
echo "user=$(id -un)"
touch built.txt && echo wrote-tree
touch "$TMPDIR/x" && echo wrote-tmp
cat ../../../whsec >/dev/null 2>&1 && echo READ-SECRET
cat ../../deployhook.db >/dev/null 2>&1 && echo READ-DATABASE
ls ../../logs >/dev/null 2>&1 && echo READ-LOGS
kill -0 $PPID 2>/dev/null && echo SIGNALLED-SUPERVISOR
echo done
"""]
"#,
        )
    ));
    // The test's temp dir is root's 0700; a real state_dir's parents are passable.
    std::fs::set_permissions(dir.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let app = TestApp::spawn_in(dir);
    let id = job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &v1));
    let job = wait_job(&app, id);
    let log = log_of(&app, id);
    assert_eq!(job["state"], "succeeded", "{log}");
    assert_output(
        &log,
        &[&format!("user={user}"), "wrote-tree", "wrote-tmp", "done"],
        &[
            "READ-SECRET",
            "READ-DATABASE",
            "READ-LOGS",
            "SIGNALLED-SUPERVISOR",
        ],
    );
}

/// With `sandbox = true`, even a command of the daemon's own user (root here) reads only
/// the system directories, its work tree, its temp dir and the rule's `read_paths`: not
/// the daemon's secret, database or another folder of the machine; and it cannot signal
/// its supervisor or reach an abstract unix socket outside. (Before, the sandbox limited
/// writes only.)
#[test]
fn a_sandboxed_command_reads_only_what_it_needs_and_signals_nobody() {
    let out = tempfile::tempdir().unwrap();
    for (folder, text) in [("allowed", "listed"), ("forbidden", "private")] {
        std::fs::create_dir(out.path().join(folder)).unwrap();
        std::fs::write(out.path().join(folder).join("x"), text).unwrap();
    }
    // An abstract unix socket of a process outside the sandbox (this test's).
    let socket_name = format!("deployhook-test-{}", std::process::id());
    let listener = {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&socket_name).unwrap();
        std::os::unix::net::UnixListener::bind_addr(&addr).unwrap()
    };
    // The same connection from outside the sandbox works: the check below can fail.
    let outside = std::process::Command::new("perl")
        .args([
            "-MIO::Socket::UNIX",
            "-e",
            r#"IO::Socket::UNIX->new(Peer => "\0$ENV{SOCKET}") or exit 1"#,
        ])
        .env("SOCKET", &socket_name)
        .status()
        .unwrap();
    assert!(outside.success());
    let repo = Repo::new();
    let v1 = repo.commit(&[("version.txt", "1")], &[]);
    let app = spawn_site(
        out.path(),
        &repo,
        &r#"
[[hook.rule]]
branches = ["main"]
sandbox = true
read_paths = ["$OUTDIR/allowed"]
env = { OUT = "$OUTDIR", SOCKET = "$SOCKET_NAME" }
commands = ["""
cat ../../../whsec >/dev/null 2>&1 && echo READ-SECRET
cat ../../deployhook.db >/dev/null 2>&1 && echo READ-DATABASE
cat "$OUT/forbidden/x" >/dev/null 2>&1 && echo READ-ELSEWHERE
echo "$(cat "$OUT/allowed/x") $(cat version.txt)"
grep -q root /etc/passwd && echo read-system
kill -0 $PPID 2>/dev/null && echo SIGNALLED-SUPERVISOR
perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Peer => "\\0$ENV{SOCKET}") or exit 1' && echo REACHED-SOCKET
echo done
"""]
"#
        .replace("$SOCKET_NAME", &socket_name),
    );
    let id = job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &v1));
    let job = wait_job(&app, id);
    let log = log_of(&app, id);
    assert_eq!(job["state"], "succeeded", "{log}");
    assert_output(
        &log,
        &["listed 1", "read-system", "done"],
        &[
            "READ-SECRET",
            "READ-DATABASE",
            "READ-ELSEWHERE",
            "SIGNALLED-SUPERVISOR",
            "REACHED-SOCKET",
        ],
    );
    drop(listener);
}

/// Where commands would run as the daemon's own user, `check` says plainly what they can
/// read: as root with a `command_user` this machine lacks, and started as an ordinary
/// user (who cannot switch users).
#[test]
fn check_says_plainly_when_commands_can_read_the_daemons_secrets() {
    use std::process::Command;
    let repo = Repo::new();
    let dir = TestDir::new(&format!(
        "[server]\ncommand_user = \"no-such-user-for-deployhook\"\n{}",
        crate::jobs::hook(
            "site",
            &repo,
            "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"true\"]]\n"
        )
    ));
    let check = |mut command: Command| {
        let out = command
            .args(["check", "--config"])
            .arg(dir.config_path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let stderr = check(Command::new(env!("CARGO_BIN_EXE_deployhook")));
    assert!(
        stderr.contains(
            "warning: command_user \"no-such-user-for-deployhook\" does not exist on this machine"
        ) && stderr.contains("can read the daemon's config, secrets, database"),
        "{stderr}"
    );

    let ids = daemon_ids();
    give(&[dir.dir.path()], &ids);
    let stderr = check(as_ids(&ids, &[], env!("CARGO_BIN_EXE_deployhook")));
    assert!(
        stderr.contains("not root and without CAP_SETUID and CAP_SETGID, so it cannot switch users: every command runs as uid"),
        "{stderr}"
    );
}

/// The packaged unit's way: the daemon runs as an ordinary user with CAP_SETUID and
/// CAP_SETGID (and CAP_KILL, CAP_CHOWN, CAP_FOWNER, CAP_DAC_OVERRIDE) as ambient
/// capabilities. Its commands run as `deployhook-run` with no capability left (a switch
/// between two non-root users keeps them: with CAP_SETUID a command could become root),
/// cannot read the daemon's secret or signal its supervisor, and are still stopped at
/// their timeout.
#[test]
fn a_daemon_with_capabilities_only_runs_commands_as_their_own_user_without_them() {
    use std::os::unix::fs::PermissionsExt as _;
    let run_user = deployhook_run();
    let ids = daemon_ids();
    let repo = Repo::new();
    let v1 = repo.commit(&[("version.txt", "1")], &[]);
    let v2 = repo.commit(&[("version.txt", "2")], &[]);
    let dir = TestDir::new(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"state\"\nkill_grace = \"1s\"\n{}",
        crate::jobs::hook(
            "site",
            &repo,
            r#"
[[hook.rule]]
branches = ["main"]
timeout = "2s"
commands = ["""
echo "user=$(id -un)"
for k in CapPrm CapEff CapAmb; do echo "$k=$(awk -v k=$k: '$1 == k { print $2 }' /proc/self/status)"; done
touch built.txt && echo wrote-tree
touch "$TMPDIR/x" && echo wrote-tmp
cat ../../../whsec >/dev/null 2>&1 && echo READ-SECRET
kill -0 $PPID 2>/dev/null && echo SIGNALLED-SUPERVISOR
if [ "$(cat version.txt)" = 2 ]; then sleep 60; fi
"""]
"#,
        )
    ));
    give(&[dir.dir.path(), repo.path.parent().unwrap()], &ids);
    std::fs::set_permissions(dir.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let caps = "+setuid,+setgid,+kill,+chown,+fowner,+dac_override";
    let (inh, amb) = (
        format!("--inh-caps={caps}"),
        format!("--ambient-caps={caps}"),
    );
    let mut serve = as_ids(&ids, &[&inh, &amb], env!("CARGO_BIN_EXE_deployhook"));
    serve
        .args(["serve", "--config"])
        .arg(dir.config_path())
        .env("HOME", dir.dir.path());
    let (_daemon, addr) = start_command(serve);
    let id = job_id(&push_generic_at(addr, "site", "refs/heads/main", ZERO, &v1));
    let job = wait_job_at(addr, id);
    let log = get(addr, &format!("/api/jobs/{id}/log")).body;
    assert_eq!(job["state"], "succeeded", "{log}");
    let none = "0000000000000000";
    assert_output(
        &log,
        &[
            &format!("user={run_user}"),
            &format!("CapPrm={none}"),
            &format!("CapEff={none}"),
            &format!("CapAmb={none}"),
            "wrote-tree",
            "wrote-tmp",
        ],
        &["READ-SECRET", "SIGNALLED-SUPERVISOR"],
    );

    let started = std::time::Instant::now();
    let id = job_id(&push_generic_at(addr, "site", "refs/heads/main", &v1, &v2));
    let job = wait_job_at(addr, id);
    assert_eq!(job["state"], "timed_out", "{job}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
