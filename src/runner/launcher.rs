//! The launcher: the small program between the daemon and each command, built as its own
//! binary, `deployhook-sandbox` (`src/bin/deployhook-sandbox.rs`), and also reachable as
//! the hidden `deployhook sandbox-exec` subcommand when that binary is not installed. It
//! exists because the daemon cannot run code in a forked child before `exec` (no
//! `pre_exec`: the crate forbids `unsafe`), so whatever must happen in the command's own
//! process happens here instead, in two stages of the launcher binary. It is a separate
//! binary because it starts twice per command: without libgit2, OpenSSL, SQLite and the
//! HTTP server it is a tenth of the size and starts in half the time (measured: a push
//! of a cached commit reached its command in 19 ms instead of 30).
//!
//! ```text
//! daemon ─► sandbox-exec supervise [options] -- argv...     (one per command)
//!             setsid, child subreaper; stays root and unrestricted
//!             └► sandbox-exec confine [options] -- argv...
//!                  stdin := /dev/null, initgroups, Landlock, rlimits, setgid, setuid
//!                  └─ exec argv  (same pid: the command)
//! ```
//!
//! **supervise** first lowers its own CPU priority by `--nice` steps (so both stages and
//! the command run below the daemon), then makes a new session and becomes a child subreaper, so everything the
//! command starts stays below it, even processes that call `setsid` or double-fork: when
//! their parent exits they are re-parented to the supervisor, not to init. When the
//! command exits, or when the daemon sends SIGTERM (timeout, cancel), it sends SIGTERM to
//! every remaining descendant, SIGKILL after `--grace-ms`, reaps them all, and only then
//! exits, after writing the command's status to its report pipe. If the daemon itself
//! dies (the supervisor is re-parented), it stops the command the same way, so that no
//! deploy runs on unwatched, without its timeout, next to a retry of the same job.
//!
//! **confine** applies the restrictions to itself and `exec`s the command, so they apply
//! to the command and everything it starts, while the supervisor above keeps the
//! privileges it needs to kill them.
//!
//! ## Arguments
//!
//! ```text
//! deployhook-sandbox sandbox-exec supervise --grace-ms <ms> [--nice <steps>] [confine options] -- <program> [args...]
//! deployhook-sandbox sandbox-exec confine [confine options] -- <program> [args...]
//!
//! confine options:  --cpu <seconds>  --memory <bytes>  --nofile <n>  --nproc <n>
//!                   --user <name>    --sandbox  --writable <dir> (repeatable)
//!                   --readable <path> (repeatable)
//! ```
//!
//! All of them come from the operator's config; the payload only ever reaches the
//! command through its environment, which both stages pass on untouched.
//!
//! ## The report pipe
//!
//! stdin of both stages is the write end of a pipe the daemon reads once the supervisor
//! has exited; the command itself gets /dev/null. Lines on it:
//! `error <message>` (the command could not be started: deployhook's failure, not the
//! command's), `exit <code>` or `signal <number>` (how the command ended).

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, User};

use super::priority::Nice;
use super::procs;

/// The subcommand name main.rs dispatches on.
pub const SUBCOMMAND: &str = "sandbox-exec";

/// Exit code of either stage when it fails itself (as `env` and `timeout` use 125).
const EXIT_INTERNAL: u8 = 125;
/// Exit code of the confine stage when the command cannot be executed (as a shell does).
const EXIT_CANNOT_EXEC: u8 = 126;
const EXIT_NOT_FOUND: u8 = 127;

/// After SIGKILL, how long the supervisor keeps trying before it gives up on a process
/// that will not die (one stuck in uninterruptible sleep) and exits anyway.
const KILL_GIVE_UP: Duration = Duration::from_secs(10);

/// The name of the launcher's own binary (`src/bin/deployhook-sandbox.rs`).
pub const BINARY: &str = "deployhook-sandbox";

/// The program to start each command with, for a daemon running as `exe`: the
/// `deployhook-sandbox` binary installed beside it (in the same directory, as cargo
/// builds it, or in `../libexec/deployhook/`, as the packages install it), else `exe`
/// itself, whose `sandbox-exec` subcommand is the same code, only slower to start.
pub fn locate(exe: &Path) -> PathBuf {
    let Some(dir) = exe.parent() else {
        return exe.to_owned();
    };
    let beside = dir.join(BINARY);
    let libexec = dir
        .parent()
        .map(|prefix| prefix.join("libexec/deployhook").join(BINARY));
    [Some(beside), libexec]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .unwrap_or_else(|| exe.to_owned())
}

/// Entry point of `deployhook sandbox-exec <args>`; `args` are the arguments after the
/// subcommand name. Not for people: the daemon runs it for each command.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let mut args = args.into_iter();
    let mode = args.next();
    let parsed = match Args::parse(args) {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    match mode.as_deref().and_then(OsStr::to_str) {
        Some("supervise") => supervise(&parsed),
        Some("confine") => confine(&parsed),
        _ => usage("expected `supervise` or `confine`"),
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "deployhook {SUBCOMMAND}: {problem}\n\
         this subcommand is internal: deployhook runs it to start each deploy command"
    );
    ExitCode::from(2)
}

/// The restrictions the confine stage applies (and the supervisor passes on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Confinement {
    /// RLIMIT_CPU soft limit in seconds (the hard limit is one second more, so the
    /// command first gets SIGXCPU, which says why it died).
    pub cpu_secs: Option<u64>,
    /// RLIMIT_AS in bytes.
    pub memory: Option<u64>,
    pub nofile: Option<u64>,
    pub nproc: Option<u64>,
    /// Drop to this user and its groups.
    pub user: Option<String>,
    /// Apply the Landlock sandbox.
    pub sandbox: bool,
    /// With `sandbox`: the directories that stay writable.
    pub writable: Vec<PathBuf>,
    /// With `sandbox`: the files and directories that stay readable (besides
    /// `writable`).
    pub readable: Vec<PathBuf>,
}

/// Everything on a `sandbox-exec` command line after the mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Args {
    pub grace: Duration,
    /// Steps of niceness the supervisor adds to its own (and so to everything below it).
    pub nice: Nice,
    pub confinement: Confinement,
    pub argv: Vec<OsString>,
}

impl Confinement {
    /// The options, as `confine` reads them back.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = Vec::new();
        let mut num = |name: &str, v: Option<u64>| {
            if let Some(v) = v {
                out.push(name.into());
                out.push(v.to_string().into());
            }
        };
        num("--cpu", self.cpu_secs);
        num("--memory", self.memory);
        num("--nofile", self.nofile);
        num("--nproc", self.nproc);
        if let Some(user) = &self.user {
            out.push("--user".into());
            out.push(user.into());
        }
        if self.sandbox {
            out.push("--sandbox".into());
        }
        for dir in &self.writable {
            out.push("--writable".into());
            out.push(dir.into());
        }
        for path in &self.readable {
            out.push("--readable".into());
            out.push(path.into());
        }
        out
    }
}

impl Args {
    /// The full command line after the subcommand name, for `mode`.
    pub fn to_args(&self, mode: &str) -> Vec<OsString> {
        let mut out: Vec<OsString> = vec![mode.into()];
        if mode == "supervise" {
            out.push("--grace-ms".into());
            let millis = u64::try_from(self.grace.as_millis()).unwrap_or(u64::MAX);
            out.push(millis.to_string().into());
            if self.nice != Nice::SAME {
                out.push("--nice".into());
                out.push(self.nice.to_string().into());
            }
        }
        out.extend(self.confinement.to_args());
        out.push("--".into());
        out.extend(self.argv.iter().cloned());
        out
    }

    fn parse(args: impl Iterator<Item = OsString>) -> Result<Args, String> {
        let mut args = args.peekable();
        let mut parsed = Args {
            nice: Nice::SAME,
            ..Args::default()
        };
        let c = &mut parsed.confinement;
        loop {
            let Some(flag) = args.next() else {
                return Err("missing `-- <program> [args...]`".into());
            };
            let flag = flag
                .into_string()
                .map_err(|f| format!("unknown option {}", f.to_string_lossy()))?;
            if flag == "--" {
                break;
            }
            if flag == "--sandbox" {
                c.sandbox = true;
                continue;
            }
            if !matches!(
                flag.as_str(),
                "--grace-ms"
                    | "--nice"
                    | "--cpu"
                    | "--memory"
                    | "--nofile"
                    | "--nproc"
                    | "--user"
                    | "--writable"
                    | "--readable"
            ) {
                return Err(format!("unknown option {flag}"));
            }
            let value = args
                .next()
                .ok_or_else(|| format!("option {flag} needs a value"))?;
            let number = || -> Result<u64, String> {
                value
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("option {flag}: not a number: {}", value.display()))
            };
            match flag.as_str() {
                "--grace-ms" => parsed.grace = Duration::from_millis(number()?),
                "--nice" => {
                    parsed.nice = u8::try_from(number()?)
                        .ok()
                        .and_then(Nice::new)
                        .ok_or_else(|| format!("option --nice: not 0 to {}", Nice::MAX))?;
                }
                "--cpu" => c.cpu_secs = Some(number()?),
                "--memory" => c.memory = Some(number()?),
                "--nofile" => c.nofile = Some(number()?),
                "--nproc" => c.nproc = Some(number()?),
                "--user" => {
                    c.user = Some(
                        value
                            .into_string()
                            .map_err(|_| "option --user: not UTF-8".to_string())?,
                    );
                }
                "--writable" => c.writable.push(value.into()),
                "--readable" => c.readable.push(value.into()),
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        parsed.argv = args.collect();
        if parsed.argv.is_empty() {
            return Err("no program given after `--`".into());
        }
        Ok(parsed)
    }
}

/// The report pipe (this stage's stdin), duplicated with close-on-exec so that the
/// command never inherits it.
fn take_report_pipe() -> Result<File, std::io::Error> {
    Ok(File::from(std::io::stdin().as_fd().try_clone_to_owned()?))
}

/// Tells the daemon something went wrong on our side, and exits with `code`.
fn fail(report: &mut File, code: u8, message: &str) -> ExitCode {
    if writeln!(report, "error {message}").is_err() {
        say(message);
    }
    ExitCode::from(code)
}

/// A line on stderr, which is the job log: `eprintln!` would panic if the daemon had
/// stopped reading it.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "deployhook: {message}");
}

// ───────────────────────────────── supervise ─────────────────────────────────

fn supervise(args: &Args) -> ExitCode {
    let mut report = match take_report_pipe() {
        Ok(f) => f,
        Err(e) => {
            say(&format!("the supervisor has no report pipe: {e}"));
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    // A new session: off the daemon's terminal and process group, and one id (our pid)
    // for the whole tree, which the daemon can kill as a last resort. Fails only if we
    // already lead a group (started by hand from a shell): harmless.
    // Before the runtime starts its threads, so that they and the command inherit it.
    if let Err(e) = args.nice.lower_this_thread() {
        return fail(
            &mut report,
            EXIT_INTERNAL,
            &format!(
                "cannot lower the command's CPU priority by {}: {e}",
                args.nice
            ),
        );
    }
    let daemon = nix::unistd::getppid();
    let _ = nix::unistd::setsid();
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        return fail(
            &mut report,
            EXIT_INTERNAL,
            &format!("cannot become a child subreaper: {e}"),
        );
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(
                &mut report,
                EXIT_INTERNAL,
                &format!("cannot start the supervisor: {e}"),
            );
        }
    };
    let result = runtime.block_on(watch_over(args, &report, daemon));
    let line = match result {
        Ok(WaitStatus::Exited(_, code)) => format!("exit {code}"),
        Ok(WaitStatus::Signaled(_, signal, _)) => format!("signal {}", signal as i32),
        Ok(other) => format!("error unexpected status of the command: {other:?}"),
        Err(message) => format!("error {message}"),
    };
    if let Err(e) = writeln!(report, "{line}") {
        say(&format!("cannot report `{line}`: {e}"));
        return ExitCode::from(EXIT_INTERNAL);
    }
    ExitCode::SUCCESS
}

/// Starts the confine stage, waits for the command, then clears out everything below
/// us. Returns the command's status.
async fn watch_over(args: &Args, report: &File, daemon: Pid) -> Result<WaitStatus, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind| signal(kind).map_err(|e| format!("cannot handle signals: {e}"));
    // Listen before the command starts, so that no SIGCHLD is missed.
    let mut child_signal = listen(SignalKind::child())?;
    let mut term = listen(SignalKind::terminate())?;
    let mut hangup = listen(SignalKind::hangup())?;
    let mut interrupt = listen(SignalKind::interrupt())?;

    let report_for_child = report
        .try_clone()
        .map_err(|e| format!("cannot pass on the report pipe: {e}"))?;
    // /proc/self/exe rather than a path: it still works if the binary was replaced by
    // an upgrade while the daemon runs.
    let child = std::process::Command::new("/proc/self/exe")
        .arg0("deployhook")
        .arg(SUBCOMMAND)
        .args(args.to_args("confine"))
        .stdin(report_for_child)
        .spawn()
        .map_err(|e| format!("cannot start the command's launcher: {e}"))?;
    let command =
        i32::try_from(child.id()).map_err(|_| "the command's pid is out of range".to_string())?;
    // We reap with waitpid below; the std handle is not used again.
    drop(child);

    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let mut status: Option<WaitStatus> = None;
    let mut stop_requested = false;
    let mut stopping_since: Option<Instant> = None;
    let mut termed: Vec<i32> = Vec::new();
    let mut announced = false;
    loop {
        reap_children(command, &mut status);
        if !stop_requested && status.is_none() && nix::unistd::getppid() != daemon {
            say("deployhook stopped while the command ran; stopping the command");
            stop_requested = true;
        }
        if status.is_some() || stop_requested {
            let now = Instant::now();
            let since = *stopping_since.get_or_insert(now);
            let left: Vec<procs::ProcInfo> = procs::descendants(&procs::process_table(), me);
            if left.is_empty()
                && let Some(s) = status
            {
                return Ok(s);
            }
            let alive: Vec<i32> = left
                .iter()
                .filter(|p| !p.is_zombie())
                .map(|p| p.pid)
                .collect();
            if !announced && !stop_requested && !alive.is_empty() {
                say(&format!(
                    "the command exited but left {} process(es) running; stopping them: {alive:?}",
                    alive.len()
                ));
                announced = true;
            }
            let elapsed = now.duration_since(since);
            if elapsed >= args.grace {
                if elapsed >= args.grace.saturating_add(KILL_GIVE_UP) {
                    say(&format!(
                        "giving up on processes that survive SIGKILL: {alive:?}"
                    ));
                    return status.ok_or_else(|| "the command could not be killed".to_string());
                }
                for &pid in &alive {
                    procs::signal(pid, Signal::SIGKILL);
                }
            } else {
                for &pid in &alive {
                    if !termed.contains(&pid) {
                        procs::signal(pid, Signal::SIGTERM);
                        // A stopped process would only see SIGTERM once continued.
                        procs::signal(pid, Signal::SIGCONT);
                        termed.push(pid);
                    }
                }
            }
        }
        // While the command runs, SIGCHLD matters, and once a second whether the daemon
        // is still there; while stopping, the tree is re-read often, since processes we
        // do not parent directly can die silently.
        let tick = if stopping_since.is_some() {
            Duration::from_millis(20)
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = child_signal.recv() => {}
            _ = term.recv() => stop_requested = true,
            _ = hangup.recv() => stop_requested = true,
            _ = interrupt.recv() => stop_requested = true,
            () = tokio::time::sleep(tick) => {}
        }
    }
}

/// Reaps every child that has exited (the command and adopted orphans); records the
/// command's status when it is among them.
fn reap_children(command: i32, status: &mut Option<WaitStatus>) {
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(s @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _))) => {
                if pid.as_raw() == command {
                    *status = Some(s);
                }
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                say(&format!("waitpid: {e}"));
                return;
            }
        }
    }
}

// ───────────────────────────────── confine ─────────────────────────────────

fn confine(args: &Args) -> ExitCode {
    let mut report = match take_report_pipe() {
        Ok(f) => f,
        Err(e) => {
            say(&format!("the launcher has no report pipe: {e}"));
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    match confine_self(&args.confinement) {
        Ok(()) => {}
        Err(message) => return fail(&mut report, EXIT_INTERNAL, &message),
    }
    let program = &args.argv[0];
    // Only returns on failure; on success the close-on-exec report pipe closes, which is
    // how the daemon knows there is no error to read.
    let error = std::process::Command::new(program)
        .args(&args.argv[1..])
        .exec();
    let (code, message) = describe_exec_error(program, &error);
    fail(&mut report, code, &message)
}

/// A readable reason why `program` could not be executed.
fn describe_exec_error(program: &OsStr, error: &std::io::Error) -> (u8, String) {
    let name = program.display();
    if error.kind() == std::io::ErrorKind::NotFound {
        if program.as_encoded_bytes().contains(&b'/') {
            (EXIT_NOT_FOUND, format!("cannot run `{name}`: no such file"))
        } else {
            let path = std::env::var("PATH").unwrap_or_else(|_| "(not set)".into());
            (
                EXIT_NOT_FOUND,
                format!("cannot run `{name}`: program not found in PATH={path}"),
            )
        }
    } else {
        (EXIT_CANNOT_EXEC, format!("cannot run `{name}`: {error}"))
    }
}

/// Applies `c` to this process, in the order that works: things that need root or free
/// file descriptors first, the uid change last.
fn confine_self(c: &Confinement) -> Result<(), String> {
    // The command reads nothing: stdin is /dev/null (it was the report pipe).
    let null = File::open("/dev/null").map_err(|e| format!("cannot open /dev/null: {e}"))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| format!("cannot redirect stdin: {e}"))?;
    drop(null);

    let user = match &c.user {
        None => None,
        Some(name) => {
            let euid = nix::unistd::geteuid();
            if !super::identity::can_switch_users() {
                return Err(super::not_root_message(name, euid.as_raw()));
            }
            let user = User::from_name(name)
                .map_err(|e| format!("cannot look up user {name:?}: {e}"))?
                .ok_or_else(|| format!("run_as: there is no user named {name:?}"))?;
            let cname = CString::new(name.as_str()).map_err(|e| e.to_string())?;
            nix::unistd::initgroups(&cname, user.gid)
                .map_err(|e| format!("cannot set the groups of user {name:?}: {e}"))?;
            Some(user)
        }
    };
    if c.sandbox {
        super::sandbox::restrict_self(&c.writable, &c.readable).map_err(|e| e.to_string())?;
    }
    let limit = |resource, name: &str, soft: u64, hard: u64| {
        setrlimit(resource, soft, hard).map_err(|e| format!("cannot set the {name} limit: {e}"))
    };
    if let Some(secs) = c.cpu_secs {
        limit(Resource::RLIMIT_CPU, "cpu", secs, secs.saturating_add(1))?;
    }
    if let Some(bytes) = c.memory {
        limit(Resource::RLIMIT_AS, "memory", bytes, bytes)?;
    }
    if let Some(n) = c.nofile {
        limit(Resource::RLIMIT_NOFILE, "nofile", n, n)?;
    }
    if let Some(n) = c.nproc {
        limit(Resource::RLIMIT_NPROC, "nproc", n, n)?;
    }
    if let Some(user) = user {
        nix::unistd::setgid(user.gid)
            .map_err(|e| format!("cannot switch to the group of {:?}: {e}", user.name))?;
        nix::unistd::setuid(user.uid)
            .map_err(|e| format!("cannot switch to user {:?}: {e}", user.name))?;
    }
    if !nix::unistd::geteuid().is_root() && super::identity::effective_caps() != 0 {
        drop_capabilities()?;
    }
    Ok(())
}

/// Makes sure the command gets none of the capabilities a non-root daemon was given
/// (the packaged unit's CAP_SETUID, CAP_KILL, ...): a switch between two non-root users
/// keeps them, and a command with CAP_SETUID could become anyone, root included. The
/// ambient set is what an `exec` would pass on, so it is cleared; `no_new_privs` stops a
/// file's capabilities or set-uid bit from granting new ones. (Root switching to another
/// user loses all of them by the kernel's rule, so this is not needed there.)
fn drop_capabilities() -> Result<(), String> {
    // SAFETY: prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) takes no pointers
    // and only changes this (single-threaded) process's ambient capability set.
    #[expect(
        unsafe_code,
        reason = "neither nix nor std wraps PR_CAP_AMBIENT; one call with integer arguments"
    )]
    let cleared = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    if cleared != 0 {
        return Err(format!(
            "cannot clear the ambient capabilities: {}",
            std::io::Error::last_os_error()
        ));
    }
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("cannot set no_new_privs: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn arguments_round_trip() {
        let args = Args {
            grace: Duration::from_millis(1500),
            nice: Nice::new(7).unwrap(),
            confinement: Confinement {
                cpu_secs: Some(60),
                memory: Some(1 << 30),
                nofile: Some(256),
                nproc: Some(64),
                user: Some("deploy".into()),
                sandbox: true,
                writable: vec!["/srv/work tree".into(), "/tmp/job-1".into()],
                readable: vec!["/usr".into(), "/etc/hosts".into()],
            },
            argv: os(&["make", "--", "--deploy", "-j4"]),
        };
        let line = args.to_args("supervise");
        assert_eq!(line[0], "supervise");
        assert_eq!(Args::parse(line.into_iter().skip(1)).unwrap(), args);

        let bare = Args {
            grace: Duration::ZERO,
            nice: Nice::SAME,
            confinement: Confinement::default(),
            argv: os(&["/bin/sh", "-c", "echo hi"]),
        };
        assert_eq!(
            bare.to_args("confine"),
            os(&["confine", "--", "/bin/sh", "-c", "echo hi"])
        );
        assert_eq!(
            Args::parse(bare.to_args("confine").into_iter().skip(1)).unwrap(),
            bare
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        let parse = |v: &[&str]| Args::parse(os(v).into_iter()).unwrap_err();
        assert_eq!(
            parse(&["--cpu", "x", "--", "a"]),
            "option --cpu: not a number: x"
        );
        assert_eq!(
            parse(&["--bogus", "1", "--", "a"]),
            "unknown option --bogus"
        );
        assert_eq!(parse(&["--nofile"]), "option --nofile needs a value");
        assert_eq!(
            parse(&["--nice", "20", "--", "a"]),
            "option --nice: not 0 to 19"
        );
        assert_eq!(parse(&["--"]), "no program given after `--`");
        assert_eq!(parse(&["make"]), "unknown option make");
    }

    #[test]
    fn exec_errors_read_well() {
        let not_found = std::io::Error::from(std::io::ErrorKind::NotFound);
        let (code, msg) = describe_exec_error(OsStr::new("/opt/nope"), &not_found);
        assert_eq!(
            (code, msg.as_str()),
            (127, "cannot run `/opt/nope`: no such file")
        );
        let (_, msg) = describe_exec_error(OsStr::new("nope"), &not_found);
        assert!(
            msg.starts_with("cannot run `nope`: program not found in PATH="),
            "{msg}"
        );
        let denied = std::io::Error::from_raw_os_error(13);
        let (code, msg) = describe_exec_error(OsStr::new("./x"), &denied);
        assert_eq!(code, 126);
        assert!(
            msg.starts_with("cannot run `./x`: Permission denied"),
            "{msg}"
        );
    }
}
