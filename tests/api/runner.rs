//! The runner, end to end: real commands started through the real launcher binary
//! (`deployhook-sandbox`; the `deployhook sandbox-exec` fallback once), checked by what
//! they print, the files they write, the pids they leave, and the job log.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use deployhook::config::Command;
use deployhook::joblog::JobLogs;
use deployhook::runner::{self, Limits, Nice, Outcome, RunSpec};
use deployhook::store::JobId;
use tokio::sync::watch;

use crate::helpers::wait_for;

const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn sh(script: &str) -> Command {
    Command::Shell(script.into())
}

fn argv(args: &[&str]) -> Command {
    Command::Argv(args.iter().map(ToString::to_string).collect())
}

/// A job in its own temp dir: `work/` is the work tree, `job.log` the log, `tmp-job`
/// the temp dir (created by the runner).
struct Job {
    dir: tempfile::TempDir,
    spec: RunSpec,
}

impl Job {
    fn new(commands: Vec<Command>) -> Job {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let spec = RunSpec {
            launcher: PathBuf::from(env!("CARGO_BIN_EXE_deployhook-sandbox")),
            commands,
            on_failure: Vec::new(),
            finally: Vec::new(),
            workdir: work,
            env: vec![
                ("PATH".into(), PATH.into()),
                ("HOME".into(), "/nonexistent".into()),
                ("LANG".into(), "C.UTF-8".into()),
            ],
            timeout: Duration::from_secs(20),
            kill_grace: Duration::from_secs(2),
            limits: Limits::default(),
            run_as: None,
            sandbox: false,
            read_paths: Vec::new(),
            private_paths: Vec::new(),
            tmp_dir: dir.path().join("tmp-job"),
            changed_files: None,
            log: JobLogs::open(dir.path()).unwrap().begin(JobId(1), 1 << 20),
        };
        Job { dir, spec }
    }

    fn work(&self, name: &str) -> PathBuf {
        self.spec.workdir.join(name)
    }

    fn read_work(&self, name: &str) -> String {
        std::fs::read_to_string(self.work(name)).unwrap_or_default()
    }

    fn log(&self) -> Log {
        Log(String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap()).into_owned())
    }

    /// Where `JobLogs` keeps job 1's log.
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("logs/1.log")
    }

    fn run(&self) -> Outcome {
        self.ran().outcome
    }

    fn ran(&self) -> runner::Ran {
        let (_cancel, rx) = watch::channel(false);
        block_on(runner::run(self.spec.clone(), rx))
    }

    /// Runs the job on another thread, so the test can watch it and cancel it.
    fn start(&self) -> Running {
        let (cancel, rx) = watch::channel(false);
        let spec = self.spec.clone();
        let thread = std::thread::spawn(move || block_on(runner::run(spec, rx)).outcome);
        Running { cancel, thread }
    }
}

struct Running {
    cancel: watch::Sender<bool>,
    thread: std::thread::JoinHandle<Outcome>,
}

impl Running {
    fn outcome(self) -> Outcome {
        self.thread.join().unwrap()
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The job log's text.
struct Log(String);

impl Log {
    /// The payloads of the lines tagged `tag` (`out|`, `err|`, `job|`), checking that
    /// every line of the log starts with a timestamp like `2026-11-24T17:00:00.123Z`.
    fn lines(&self, tag: &str) -> Vec<String> {
        self.0
            .lines()
            .filter_map(|line| {
                let (ts, rest) = line.split_once(' ').unwrap();
                assert!(is_timestamp(ts), "line without a timestamp: {line:?}");
                rest.strip_prefix(tag)
                    .map(|p| p.strip_prefix(' ').unwrap_or(p).to_string())
            })
            .collect()
    }

    fn out(&self) -> Vec<String> {
        self.lines("out|")
    }

    fn err(&self) -> Vec<String> {
        self.lines("err|")
    }

    fn job(&self) -> Vec<String> {
        self.lines("job|")
    }
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Waits until process `pid` no longer exists: killed *and* reaped (a zombie still has
/// its /proc entry).
fn assert_gone(pid: i32) {
    wait_for(
        &format!("process {pid} to be gone"),
        Duration::from_secs(10),
        || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
            stat.is_err().then_some(())
        },
    );
}

/// The pids listed one per line in `file` once it has `n` of them.
fn pids(job: &Job, file: &str, n: usize) -> Vec<i32> {
    wait_for(
        &format!("{n} pids in {file}"),
        Duration::from_secs(10),
        || {
            let pids: Vec<i32> = job
                .read_work(file)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            (pids.len() >= n).then_some(pids)
        },
    )
}

#[test]
fn the_command_sees_exactly_the_given_environment() {
    let mut job = Job::new(vec![argv(&["/usr/bin/env"])]);
    job.spec.env.extend([
        ("DEPLOYHOOK_REF".into(), "refs/heads/main".into()),
        ("RULE_VAR".into(), "a b = c".into()),
        ("TMPDIR".into(), "/ignored".into()),
    ]);
    // The test process has variables of its own; none may leak.
    assert!(
        std::env::vars_os().any(|(k, _)| !job.spec.env.iter().any(|(g, _)| k == g.as_str())),
        "the test process has no variables of its own to leak"
    );
    assert_eq!(job.run(), Outcome::Succeeded);

    let seen: BTreeSet<String> = job.log().out().into_iter().collect();
    let tmp = job.spec.tmp_dir.display();
    let expected: BTreeSet<String> = [
        format!("PATH={PATH}"),
        "HOME=/nonexistent".into(),
        "LANG=C.UTF-8".into(),
        "DEPLOYHOOK_REF=refs/heads/main".into(),
        "RULE_VAR=a b = c".into(),
        format!("TMPDIR={tmp}"),
        format!("DEPLOYHOOK_SUMMARY={tmp}/deployhook-summary"),
    ]
    .into();
    assert_eq!(seen, expected);
    assert!(
        !job.spec.tmp_dir.exists(),
        "the temp dir is removed after the job"
    );
}

/// The name of the variable that makes `in_a_child_process` do its work.
const CHILD: &str = "DEPLOYHOOK_RUNNER_TEST_CHILD";

/// Runs `in_a_child_process` in a fresh copy of this test binary, with a fake secret in
/// its environment (tests cannot set variables in their own process) and free to make
/// itself a child subreaper (which would disturb the other tests in this process).
#[test]
fn a_daemon_secret_does_not_leak_and_adopted_orphans_are_reaped() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "runner::in_a_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("SECRET_TOKEN", "fake-secret-token-0123")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
fn in_a_child_process() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // 1. The daemon's own environment does not reach the command.
    assert_eq!(
        std::env::var("SECRET_TOKEN").unwrap(),
        "fake-secret-token-0123"
    );
    let job = Job::new(vec![sh("echo \"token=${SECRET_TOKEN-unset}\"; env")]);
    assert_eq!(job.run(), Outcome::Succeeded);
    let out = job.log().out();
    assert!(out.contains(&"token=unset".to_string()), "{out:?}");
    assert!(!out.iter().any(|l| l.contains("fake-secret")), "{out:?}");

    // 2. As a subreaper, this process adopts what escapes a supervisor that died, and
    // its reaper thread reaps them. The command kills its own supervisor ($PPID) to
    // orphan itself and a double-forked process in another session.
    runner::become_subreaper().unwrap();
    let job = Job::new(vec![sh("exec >/dev/null 2>&1
         echo $$ > sh.pid
         (setsid sh -c 'echo $$ > orphan.pid; exec sleep 2' &)
         while [ ! -s orphan.pid ]; do sleep 0.01; done
         kill -9 $PPID
         sleep 2")]);
    let outcome = job.run();
    let Outcome::Error(message) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(message.contains("without reporting"), "{message}");
    let me = i32::try_from(std::process::id()).unwrap();
    let orphans = [pids(&job, "sh.pid", 1)[0], pids(&job, "orphan.pid", 1)[0]];
    for pid in orphans {
        // Adopted by this process: they are still alive when the job ends.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let parent: i32 = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(parent, me, "{stat}");
    }
    // They exit after 2s; without the reaper they would stay zombies.
    for pid in orphans {
        assert_gone(pid);
    }

    // 3. The reaper leaves the runner's own children alone: their statuses still arrive.
    for code in [0, 3, 0, 4] {
        let job = Job::new(vec![sh(&format!("exit {code}"))]);
        let expected = if code == 0 {
            Outcome::Succeeded
        } else {
            Outcome::Failed {
                command: 0,
                status: format!("exit code {code}"),
            }
        };
        assert_eq!(job.run(), expected);
    }
}

#[test]
fn commands_run_in_order_in_the_work_tree_and_the_first_failure_stops_the_job() {
    let job = Job::new(vec![
        sh("echo one >> order"),
        argv(&["sh", "-c", "echo two >> order; exit 3"]),
        sh("echo three >> order"),
    ]);
    assert_eq!(
        job.run(),
        Outcome::Failed {
            command: 1,
            status: "exit code 3".into()
        }
    );
    assert_eq!(job.read_work("order"), "one\ntwo\n");
    let notes = job.log().job();
    assert_eq!(notes.len(), 4, "{notes:?}");
    assert_eq!(notes[0], "$ echo one >> order");
    assert!(notes[1].starts_with("exit code 0 after "), "{notes:?}");
    assert_eq!(notes[2], "$ sh -c 'echo two >> order; exit 3'");
    assert!(notes[3].starts_with("exit code 3 after "), "{notes:?}");
}

/// Without `deployhook-sandbox` beside it, the daemon starts commands through its own
/// `sandbox-exec` subcommand: the same launcher, both stages, only slower to start.
#[test]
fn the_deployhook_binary_launches_commands_as_the_helper_does() {
    for launcher in [
        env!("CARGO_BIN_EXE_deployhook-sandbox"),
        env!("CARGO_BIN_EXE_deployhook"),
    ] {
        // The command's parent is the supervise stage (confine became the command).
        let mut job = Job::new(vec![sh(
            "ulimit -n > nofile; tr '\\0' ' ' < /proc/$PPID/cmdline > parent",
        )]);
        job.spec.launcher = launcher.into();
        job.spec.limits.nofile = Some(77);
        assert_eq!(job.run(), Outcome::Succeeded, "{launcher}");
        assert_eq!(job.read_work("nofile"), "77\n", "{launcher}");
        let parent = job.read_work("parent");
        assert!(
            parent.starts_with(&format!("{launcher} sandbox-exec supervise ")),
            "{parent}"
        );
    }
}

/// The daemon looks for the launcher beside its own binary (cargo's layout), then in
/// `../libexec/deployhook/` (the packages'), and falls back to itself.
#[test]
fn the_launcher_binary_is_found_beside_the_daemon_or_in_libexec() {
    use runner::launcher::{BINARY, locate};
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let libexec = dir.path().join("libexec/deployhook");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&libexec).unwrap();
    let exe = bin.join("deployhook");
    std::fs::write(&exe, "").unwrap();
    assert_eq!(locate(&exe), exe);

    std::fs::write(libexec.join(BINARY), "").unwrap();
    assert_eq!(locate(&exe), libexec.join(BINARY));

    std::fs::write(bin.join(BINARY), "").unwrap();
    assert_eq!(locate(&exe), bin.join(BINARY));

    // A directory of that name is not a launcher.
    std::fs::remove_file(bin.join(BINARY)).unwrap();
    std::fs::create_dir(bin.join(BINARY)).unwrap();
    assert_eq!(locate(&exe), libexec.join(BINARY));

    // As cargo builds them, the daemon finds its launcher.
    assert_eq!(
        locate(Path::new(env!("CARGO_BIN_EXE_deployhook"))),
        Path::new(env!("CARGO_BIN_EXE_deployhook-sandbox"))
    );
}

#[test]
fn a_command_killed_by_a_signal_fails_with_that_signal() {
    let job = Job::new(vec![sh("kill -9 $$"), sh("echo not reached")]);
    assert_eq!(
        job.run(),
        Outcome::Failed {
            command: 0,
            status: "killed by signal 9 (SIGKILL)".into()
        }
    );
    assert!(job.log().out().is_empty());
}

#[test]
fn output_is_logged_line_by_line_with_timestamps_and_stdin_is_dev_null() {
    let job = Job::new(vec![sh("echo out1
         echo err1 >&2
         cat
         readlink /proc/self/fd/0
         echo err2 >&2
         printf 'no newline'")]);
    assert_eq!(job.run(), Outcome::Succeeded);
    let log = job.log();
    assert_eq!(log.out(), ["out1", "/dev/null", "no newline"]);
    assert_eq!(log.err(), ["err1", "err2"]);
    let notes = log.job();
    assert_eq!(
        notes[0],
        "$ echo out1\\n         echo err1 >&2\\n         cat\\n         readlink /proc/self/fd/0\\n         echo err2 >&2\\n         printf 'no newline'"
    );
    assert!(notes[1].starts_with("exit code 0 after "), "{notes:?}");
    assert!(notes[1].ends_with('s'), "{notes:?}");
}

#[test]
fn a_timeout_stops_the_whole_tree_even_processes_in_other_sessions() {
    // Seven processes: a background job, a setsid'd one, one ignoring SIGTERM, a
    // double-forked one, a new session with a child of its own, and the shell itself.
    let mut job = Job::new(vec![sh(r#"sleep 300 & echo $! >> pids
         setsid sh -c 'echo $$ >> pids; exec sleep 300' &
         sh -c 'trap "" TERM; echo $$ >> pids; exec sleep 300' &
         (sh -c 'echo $$ >> pids; exec sleep 300' &)
         setsid sh -c 'sh -c "echo \$\$ >> pids; exec sleep 300" & echo $$ >> pids; wait' &
         echo $$ >> pids
         while [ "$(wc -l < pids)" -lt 7 ]; do sleep 0.01; done
         echo all started
         sleep 300"#)]);
    job.spec.timeout = Duration::from_secs(2);
    job.spec.kill_grace = Duration::from_millis(300);
    let started = Instant::now();
    assert_eq!(job.run(), Outcome::TimedOut { command: 0 });
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(job.log().out(), ["all started"]);
    let pids = pids(&job, "pids", 7);
    assert_eq!(pids.len(), 7, "{pids:?}");
    for pid in pids {
        assert_gone(pid);
    }
    let notes = job.log().job();
    assert!(
        notes[1].starts_with("timed out after 2s: stopped (killed by signal"),
        "{notes:?}"
    );
}

#[test]
fn processes_left_running_when_the_command_exits_are_stopped() {
    let mut job = Job::new(vec![
        sh("setsid sh -c 'echo $$ > daemon.pid; exec sleep 300' &
            (sleep 300 & echo $! > bg.pid)
            while [ ! -s daemon.pid ] || [ ! -s bg.pid ]; do sleep 0.01; done"),
        sh("echo next"),
    ]);
    // They stop on SIGTERM: the job must not wait for the grace period.
    job.spec.kill_grace = Duration::from_secs(10);
    let started = Instant::now();
    assert_eq!(job.run(), Outcome::Succeeded);
    assert!(started.elapsed() < Duration::from_secs(8));
    for file in ["daemon.pid", "bg.pid"] {
        assert_gone(pids(&job, file, 1)[0]);
    }
    let log = job.log();
    assert_eq!(log.out(), ["next"]);
    let err = log.err();
    assert!(
        err[0].starts_with("deployhook: the command exited but left 2 process(es) running"),
        "{err:?}"
    );
}

#[test]
fn cancel_stops_the_running_command_and_the_rest_of_the_job() {
    let job = Job::new(vec![sh("echo $$ > pid; exec sleep 300"), sh("touch never")]);
    let running = job.start();
    let pid = pids(&job, "pid", 1)[0];
    running.cancel.send(true).unwrap();
    assert_eq!(running.outcome(), Outcome::Cancelled { command: 0 });
    assert_gone(pid);
    assert!(!job.work("never").exists());
    let notes = job.log().job();
    assert!(
        notes[1].starts_with("cancelled: stopped (killed by signal 15 (SIGTERM))"),
        "{notes:?}"
    );
}

#[test]
fn a_job_cancelled_before_it_starts_runs_nothing() {
    let job = Job::new(vec![sh("touch ran")]);
    let (cancel, rx) = watch::channel(false);
    cancel.send(true).unwrap();
    assert_eq!(
        block_on(runner::run(job.spec.clone(), rx)).outcome,
        Outcome::Cancelled { command: 0 }
    );
    assert!(!job.work("ran").exists());
}

#[test]
fn dropping_the_job_stops_its_command() {
    let job = Job::new(vec![sh("echo $$ > pid; exec sleep 300")]);
    let (_cancel, rx) = watch::channel(false);
    let spec = job.spec.clone();
    block_on(async {
        let run = runner::run(spec, rx);
        tokio::pin!(run);
        let poll_until_started = async {
            while job.read_work("pid").is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            outcome = &mut run => panic!("the job ended: {outcome:?}"),
            () = poll_until_started => {}
        }
    });
    assert_gone(pids(&job, "pid", 1)[0]);
}

#[test]
fn the_command_is_stopped_when_the_daemon_dies() {
    // A shell plays the daemon: it starts a supervisor, waits for the command to run,
    // and exits, leaving the supervisor without its parent.
    let job = Job::new(vec![]);
    let daemon = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(
            r#""$LAUNCHER" sandbox-exec supervise --grace-ms 500 -- /bin/sh -c 'echo $$ > pid; exec sleep 300' 0>report >/dev/null 2>&1 &
               while [ ! -s pid ]; do sleep 0.01; done"#,
        )
        .env("LAUNCHER", env!("CARGO_BIN_EXE_deployhook"))
        .current_dir(&job.spec.workdir)
        .status()
        .unwrap();
    assert!(daemon.success());
    assert_gone(pids(&job, "pid", 1)[0]);
    wait_for("the report", Duration::from_secs(10), || {
        let report = job.read_work("report");
        report.contains('\n').then_some(())
    });
    assert_eq!(job.read_work("report"), "signal 15\n");
}

/// Peak resident memory of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn huge_output_is_streamed_into_a_capped_log() {
    const TOTAL: u64 = 100_000_000;
    let job = Job::new(vec![sh(&format!(
        "yes 0123456789abcdef | head -c {TOTAL}; echo done >&2"
    ))]);
    let peak_before = peak_rss_kib();
    let started = Instant::now();
    assert_eq!(job.run(), Outcome::Succeeded);
    let elapsed = started.elapsed();
    let grown_mib = peak_rss_kib().saturating_sub(peak_before) / 1024;
    assert!(grown_mib < 48, "peak memory grew by {grown_mib} MiB");
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");

    let size = std::fs::metadata(job.log_path()).unwrap().len();
    assert!(size <= (1 << 20) + 1024, "log is {size} bytes");
    let log = job.log();
    let out = log.out();
    assert!(out.len() > 20_000, "{}", out.len());
    assert!(out.iter().all(|l| l == "0123456789abcdef"));
    let marker = log.job().pop().unwrap();
    let dropped: u64 = marker
        .strip_prefix("log truncated: it reached log_cap (1048576 bytes); ")
        .and_then(|rest| rest.strip_suffix(" bytes of output were dropped"))
        .unwrap_or_else(|| panic!("{marker}"))
        .parse()
        .unwrap();
    // Every byte is either in the log or counted ("done\n" on stderr came after the cap).
    assert_eq!(out.len() as u64 * 17 + dropped, TOTAL + 5);
}

/// A system user for the run_as test, with a supplementary group; created once.
pub(crate) fn test_user() -> &'static str {
    const USER: &str = "deployhook-test";
    const GROUP: &str = "deployhook-test-extra";
    let run = |args: &[&str]| {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap()
    };
    assert!(run(&["groupadd", "-f", GROUP]).status.success());
    if run(&["id", "-u", USER]).status.success() {
        assert!(run(&["usermod", "-a", "-G", GROUP, USER]).status.success());
    } else {
        let out = run(&[
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "-G",
            GROUP,
            USER,
        ]);
        assert!(
            out.status.success() || run(&["id", "-u", USER]).status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    USER
}

pub(crate) fn id_of(user: &str, flag: &str) -> String {
    let out = std::process::Command::new("id")
        .args([flag, user])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn run_as_switches_to_the_user_and_its_groups() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests run as root, to test run_as"
    );
    let user = test_user();
    let mut job = Job::new(vec![sh(
        "id -u; id -g; id -G; touch \"$TMPDIR/mine\" && stat -c %U \"$TMPDIR/mine\"",
    )]);
    // The user must be able to reach its temp dir inside the test's dir.
    std::fs::set_permissions(
        job.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    job.spec.run_as = Some(user.into());
    assert_eq!(job.run(), Outcome::Succeeded, "{:?}", job.log().0);
    let mut groups: Vec<String> = id_of(user, "-G").split(' ').map(String::from).collect();
    assert!(groups.len() >= 2, "the test user has a supplementary group");
    let out = job.log().out();
    assert_eq!(out[0], id_of(user, "-u"));
    assert_eq!(out[1], id_of(user, "-g"));
    let mut seen: Vec<String> = out[2].split(' ').map(String::from).collect();
    groups.sort();
    seen.sort();
    assert_eq!(seen, groups);
    assert_eq!(out[3], user);
}

#[test]
fn run_as_an_unknown_user_is_an_error() {
    let mut job = Job::new(vec![sh("touch ran")]);
    job.spec.run_as = Some("no-such-user-deployhook".into());
    assert_eq!(
        job.run(),
        Outcome::Error("run_as: there is no user named \"no-such-user-deployhook\"".into())
    );
    assert!(!job.work("ran").exists());
    assert_eq!(
        job.log().job(),
        ["error: run_as: there is no user named \"no-such-user-deployhook\""]
    );
}

#[test]
fn resource_limits_are_set() {
    let mut job = Job::new(vec![argv(&["cat", "/proc/self/limits"])]);
    job.spec.limits = Limits {
        cpu: Some(Duration::from_secs(7)),
        memory: Some(512 << 20),
        nofile: Some(64),
        nproc: Some(321),
        nice: Nice::SAME,
    };
    assert_eq!(job.run(), Outcome::Succeeded);
    let out = job.log().out();
    let limit = |name: &str| -> Vec<String> {
        let line = out
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {out:?}"));
        line[name.len()..]
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(limit("Max cpu time"), ["7", "8", "seconds"]);
    assert_eq!(
        limit("Max address space"),
        ["536870912", "536870912", "bytes"]
    );
    assert_eq!(limit("Max open files"), ["64", "64", "files"]);
    assert_eq!(limit("Max processes"), ["321", "321", "processes"]);
}

/// The niceness of this thread, as the kernel shows it (field 19 of its `stat`).
fn niceness(stat: &str) -> i32 {
    // The command name, field 2, is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(16).unwrap().parse().unwrap()
}

/// A command runs `limits.nice` steps below the daemon's CPU priority; the daemon
/// (this test) keeps its own.
#[test]
fn a_command_runs_at_the_rule_s_cpu_priority() {
    let own = || niceness(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
    let daemon = own();
    for steps in [0, 5] {
        let mut job = Job::new(vec![argv(&["cat", "/proc/self/stat"])]);
        job.spec.limits.nice = Nice::new(steps).unwrap();
        assert_eq!(job.run(), Outcome::Succeeded);
        let out = job.log().out();
        assert_eq!(
            niceness(&out[0]),
            (daemon + i32::from(steps)).min(19),
            "nice {steps}: {out:?}"
        );
    }
    assert_eq!(own(), daemon);
}

#[test]
fn the_cpu_limit_stops_a_busy_loop() {
    let mut job = Job::new(vec![sh("while :; do :; done")]);
    job.spec.limits.cpu = Some(Duration::from_secs(1));
    assert_eq!(
        job.run(),
        Outcome::Failed {
            command: 0,
            status: "killed by signal 24 (SIGXCPU)".into()
        }
    );
}

#[test]
fn the_memory_limit_stops_a_large_allocation() {
    // The shell holds the whole substitution in memory: 64 MiB cannot fit in 32.
    let script = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}";
    let mut job = Job::new(vec![sh(script)]);
    job.spec.limits.memory = Some(32 << 20);
    let outcome = job.run();
    assert!(
        matches!(outcome, Outcome::Failed { command: 0, .. }),
        "{outcome:?}"
    );
    // Without the limit the same command succeeds.
    let job = Job::new(vec![sh(script)]);
    assert_eq!(job.run(), Outcome::Succeeded);
    assert_eq!(job.log().out(), ["67108864"]);
}

#[test]
fn the_sandbox_allows_writes_only_to_the_work_tree_and_the_temp_dir() {
    let outside = tempfile::tempdir().unwrap();
    let script = "echo a > inside && echo inside-ok
         echo b > \"$TMPDIR/t\" && echo tmp-ok
         echo c > /dev/null && echo devnull-ok
         echo d > \"$OUTSIDE/f\" && echo outside-ok
         true";
    for sandbox in [true, false] {
        let mut job = Job::new(vec![sh(script)]);
        job.spec.sandbox = sandbox;
        job.spec
            .env
            .push(("OUTSIDE".into(), outside.path().display().to_string()));
        assert_eq!(job.run(), Outcome::Succeeded, "{}", job.log().0);
        let log = job.log();
        if sandbox {
            assert_eq!(log.out(), ["inside-ok", "tmp-ok", "devnull-ok"]);
            let err = log.err();
            assert_eq!(err.len(), 1, "{err:?}");
            assert!(err[0].ends_with("Permission denied"), "{err:?}");
            assert!(!outside.path().join("f").exists());
        } else {
            assert_eq!(
                log.out(),
                ["inside-ok", "tmp-ok", "devnull-ok", "outside-ok"]
            );
            assert!(outside.path().join("f").exists());
        }
        assert_eq!(job.read_work("inside"), "a\n");
    }
}

#[test]
fn a_program_that_does_not_exist_is_an_error_in_the_outcome_and_the_log() {
    let job = Job::new(vec![
        argv(&["deployhook-no-such-program", "--flag"]),
        sh("touch ran"),
    ]);
    let expected =
        format!("cannot run `deployhook-no-such-program`: program not found in PATH={PATH}");
    assert_eq!(job.run(), Outcome::Error(expected.clone()));
    assert!(!job.work("ran").exists());
    let notes = job.log().job();
    assert_eq!(
        notes,
        [
            "$ deployhook-no-such-program --flag".to_string(),
            format!("error: {expected}")
        ]
    );
}

#[test]
fn setup_problems_are_errors() {
    let mut job = Job::new(vec![sh("true")]);
    job.spec.workdir = job.dir.path().join("missing");
    let Outcome::Error(message) = job.run() else {
        panic!()
    };
    assert!(message.ends_with("missing is not a directory"), "{message}");

    let mut job = Job::new(vec![sh("true")]);
    job.spec.launcher = PathBuf::from("/nonexistent/deployhook");
    let Outcome::Error(message) = job.run() else {
        panic!()
    };
    assert!(
        message.starts_with("cannot start /nonexistent/deployhook: "),
        "{message}"
    );

    let job = Job::new(vec![sh("true")]);
    std::fs::remove_dir(job.dir.path().join("logs")).unwrap();
    let Outcome::Error(message) = job.run() else {
        panic!()
    };
    let expected = format!("cannot open the job log {}: ", job.log_path().display());
    assert!(message.starts_with(&expected), "{message}");
}

#[test]
fn sandbox_support_says_what_is_in_force() {
    let line = runner::sandbox_support();
    assert!(
        line.starts_with("filesystem sandbox: Landlock ABI "),
        "{line}"
    );
    assert!(line.contains("bubblewrap"), "{line}");
}

#[test]
fn a_command_leaves_a_summary_line_and_nothing_else_is_read() {
    let job = Job::new(vec![
        sh(
            "echo 'deployed v1.2 to 3 hosts' > \"$DEPLOYHOOK_SUMMARY\"; echo second >> \"$DEPLOYHOOK_SUMMARY\"",
        ),
        sh(
            "test -f \"$DEPLOYHOOK_SUMMARY\" && case \"$DEPLOYHOOK_SUMMARY\" in \"$TMPDIR\"/*) ;; *) exit 9;; esac",
        ),
    ]);
    let ran = job.ran();
    assert_eq!(ran.outcome, Outcome::Succeeded);
    assert_eq!(ran.summary.as_deref(), Some("deployed v1.2 to 3 hosts"));
    // A summary that is a link to a file the daemon can read is not followed.
    let secret = job.work("secret");
    std::fs::write(&secret, "the daemon's secret\n").unwrap();
    let job = Job::new(vec![sh(&format!(
        "ln -s {} \"$DEPLOYHOOK_SUMMARY\"",
        secret.display()
    ))]);
    let ran = job.ran();
    assert_eq!(ran.outcome, Outcome::Succeeded);
    assert_eq!(ran.summary, None);
}
