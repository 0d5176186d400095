//! Runs a job's commands as child processes: the only module that spawns processes.
//!
//! Each command runs under a small supervisor, the `deployhook-sandbox` launcher binary
//! ([`launcher`]; `deployhook sandbox-exec` where it is not installed): it puts the command in its own session,
//! adopts everything the command starts (it is a child subreaper), applies the user,
//! resource limits and Landlock sandbox just before `exec`, and at the end kills and
//! reaps whatever is left. The runner here starts it with exactly the job's environment,
//! streams its output into the job log, enforces the timeout and cancellation, and turns
//! the result into an [`Outcome`].
//!
//! ```text
//! run ─► [for each command] $ line ─► deployhook-sandbox sandbox-exec supervise ... -- argv
//!          stdout/stderr ─► time-stamped lines in the log (capped)
//!          timeout / cancel ─► SIGTERM to the supervisor ─► it TERMs, then KILLs, the tree
//!        end line ─► next command, or stop at the first that did not succeed
//! ```

pub mod changed;
mod cleanup;
pub mod identity;
pub mod launcher;
pub mod priority;
mod procs;
mod sandbox;
pub mod summary;

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, ChildStdout};
use tokio::sync::watch;

use crate::joblog::{JobLog, Lines, LogFile, Stream};
pub use priority::Nice;

/// One deploy command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Executed directly, no shell.
    Argv(Vec<String>),
    /// Run with `/bin/sh -c`. Written by the operator; payload data never goes in it.
    Shell(String),
}

/// Resource limits for each command, set with `setrlimit` just before it starts and
/// inherited by everything it starts. `None` leaves the daemon's own limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// How far below the daemon's CPU priority the job's checkout and commands run.
    pub nice: Nice,
    /// CPU time (RLIMIT_CPU, whole seconds, rounded up). At the limit the command gets
    /// SIGXCPU, a second later SIGKILL.
    pub cpu: Option<Duration>,
    /// Address space in bytes (RLIMIT_AS).
    pub memory: Option<u64>,
    /// Open file descriptors (RLIMIT_NOFILE).
    pub nofile: Option<u64>,
    /// Processes of the user the command runs as (RLIMIT_NPROC; not enforced for root).
    pub nproc: Option<u64>,
}

/// One job for the runner: what to run, where, and under which constraints. Everything
/// in it comes from the operator's config, except `env`, which also carries the push's
/// data (`DEPLOYHOOK_*`): payload data never reaches a command line.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The launcher: `deployhook-sandbox`, or the deployhook binary itself (its hidden
    /// `sandbox-exec` subcommand is the same code); the daemon picks it with
    /// [`launcher::locate`].
    pub launcher: PathBuf,
    /// Run in order; the first that does not succeed ends the job.
    pub commands: Vec<Command>,
    /// Run after a command failed or timed out (not after a cancel); see [`cleanup`].
    pub on_failure: Vec<Command>,
    /// Run last, always; see [`cleanup`].
    pub finally: Vec<Command>,
    /// The job's work tree: each command's working directory.
    pub workdir: PathBuf,
    /// The complete environment of the commands (PATH, HOME, LANG, the rule's env,
    /// `DEPLOYHOOK_*`). Nothing of the daemon's own environment is passed on; `TMPDIR`
    /// is set to `tmp_dir` in addition.
    pub env: Vec<(String, String)>,
    /// Per command; at the deadline the command and everything it started is stopped.
    pub timeout: Duration,
    /// Stopping sends SIGTERM, then SIGKILL to whatever is left after this long.
    pub kill_grace: Duration,
    /// Resource limits for each command.
    pub limits: Limits,
    /// Run the commands as this user, with its groups. Needs the daemon to run as root.
    pub run_as: Option<String>,
    /// Opt-in filesystem sandbox (Landlock): the commands may write only to `workdir`,
    /// `tmp_dir` and a few devices such as /dev/null; everything else is read-only.
    /// Set-uid programs do not gain privileges inside it, and `> /dev/stderr` is denied
    /// (use `>&2`): see the `sandbox` module. Reads are limited to system directories,
    /// `workdir`, `tmp_dir` and `read_paths`, less `private_paths`.
    pub sandbox: bool,
    /// With `sandbox`: more paths the commands may read (the rule's `read_paths`).
    pub read_paths: Vec<PathBuf>,
    /// With `sandbox`: what the commands may never read, even inside a system directory
    /// (the config's folder, secret files, `state_dir`; `Config::private_paths`).
    pub private_paths: Vec<PathBuf>,
    /// A private temp dir for this job: created before the first command (owned by
    /// `run_as`, mode 0700), given as `TMPDIR`, removed after the last.
    pub tmp_dir: PathBuf,
    /// The files the push changed, written to a file in `tmp_dir` named by
    /// `$DEPLOYHOOK_CHANGED_FILES` (see [`changed`]); `None`: the forge listed none, and
    /// the variable is not set.
    pub changed_files: Option<Vec<String>>,
    /// The job's log, created or appended to, with its cap: past it output is dropped
    /// and counted, and one marker line says how much.
    pub log: LogFile,
}

/// What running a job's commands came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub outcome: Outcome,
    /// The line the commands left in `$DEPLOYHOOK_SUMMARY` (see [`summary`]).
    pub summary: Option<String>,
}

impl From<Outcome> for Ran {
    fn from(outcome: Outcome) -> Ran {
        Ran {
            outcome,
            summary: None,
        }
    }
}

/// How a job ended. `command` is the index in [`RunSpec::commands`], from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every command exited with status 0.
    Succeeded,
    /// This command exited non-zero or was killed by a signal (`status` is readable:
    /// `exit code 2`, `killed by signal 9 (SIGKILL)`); later commands did not run.
    Failed { command: usize, status: String },
    /// This command ran past [`RunSpec::timeout`] and was stopped, with everything it
    /// had started.
    TimedOut { command: usize },
    /// The job was cancelled while (or before) this command ran; it was stopped.
    Cancelled { command: usize },
    /// deployhook could not run the job as asked (the program does not exist, the user
    /// is unknown, the sandbox is unavailable, the log cannot be written, ...). The
    /// message is also in the log when the log could be opened.
    Error(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Succeeded => f.write_str("succeeded"),
            Outcome::Failed { command, status } => write!(f, "command {command} failed: {status}"),
            Outcome::TimedOut { command } => write!(f, "command {command} timed out"),
            Outcome::Cancelled { command } => write!(f, "cancelled during command {command}"),
            Outcome::Error(message) => write!(f, "error: {message}"),
        }
    }
}

/// Makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`), so that processes
/// orphaned below it are re-parented here rather than to init, and starts a thread that
/// reaps them. Called once by the daemon at startup.
///
/// The reaper reaps every zombie child that the runner did not spawn. A process that
/// calls this must therefore start child processes only through this module (the
/// daemon does: "only runner spawns processes"), or it may lose their exit status.
pub fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)?;
    procs::start_reaper()
}

/// One line for the startup log saying which filesystem sandbox is available: the
/// Landlock ABI version (or that the kernel lacks it) and whether bubblewrap is
/// installed (it is not used).
pub fn sandbox_support() -> String {
    sandbox::support()
}

/// If the supervisor has not exited this long after `kill_grace` (it should exit right
/// after killing the tree), it is killed itself, with its session.
const BACKSTOP: Duration = Duration::from_secs(5);

/// How long output is still read after the supervisor has exited. Only processes that
/// escaped the tree can keep the pipes open that long.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Runs `spec`'s commands in order, and returns how the job ended. When `cancel`
/// becomes `true`, the running command and everything it started are stopped (SIGTERM,
/// SIGKILL after `kill_grace`) and the job ends as [`Outcome::Cancelled`]. If the
/// returned future is dropped, the running command is stopped the same way.
pub async fn run(spec: RunSpec, mut cancel: watch::Receiver<bool>) -> Ran {
    let mut log = match spec.log.open() {
        Ok(log) => log,
        Err(e) => {
            return Outcome::Error(format!(
                "cannot open the job log {}: {e}",
                spec.log.display()
            ))
            .into();
        }
    };
    let outcome = run_commands(&spec, &mut cancel, &mut log).await;
    if let Outcome::Error(message) = &outcome {
        log.note(&format!("error: {message}"));
    }
    let summary = summary::read(&spec.tmp_dir);
    // The commands wrote it: emptied without following a link, at any depth.
    let removed = crate::wipe::empty_dir(&spec.tmp_dir, 0o700)
        .and_then(|_| std::fs::remove_dir(&spec.tmp_dir));
    if let Err(e) = removed
        && e.kind() != std::io::ErrorKind::NotFound
    {
        log.note(&format!(
            "cannot remove the temp dir {}: {e}",
            spec.tmp_dir.display()
        ));
    }
    if let Err(e) = log.finish() {
        tracing::warn!(log = %spec.log.display(), "cannot write the job log: {e}");
    }
    Ran { outcome, summary }
}

async fn run_commands(
    spec: &RunSpec,
    cancel: &mut watch::Receiver<bool>,
    log: &mut JobLog,
) -> Outcome {
    if let Err(message) = prepare(spec) {
        return Outcome::Error(message);
    }
    // Once per job: the sandbox's readable paths are read off the file system.
    let confinement = confinement(spec);
    let outcome = commands(spec, &confinement, cancel, log).await;
    cleanup::run(spec, &confinement, &outcome, cancel, log).await;
    outcome
}

async fn commands(
    spec: &RunSpec,
    confinement: &launcher::Confinement,
    cancel: &mut watch::Receiver<bool>,
    log: &mut JobLog,
) -> Outcome {
    for (index, command) in spec.commands.iter().enumerate() {
        if *cancel.borrow_and_update() {
            log.note(&format!("cancelled before command {index} started"));
            return Outcome::Cancelled { command: index };
        }
        match run_command(spec, confinement, index, command, cancel, log).await {
            Outcome::Succeeded => {}
            other => return other,
        }
    }
    Outcome::Succeeded
}

/// Checks what can be checked before anything runs, and creates the temp dir.
fn prepare(spec: &RunSpec) -> Result<(), String> {
    if !spec.workdir.is_dir() {
        return Err(format!(
            "the work tree {} is not a directory",
            spec.workdir.display()
        ));
    }
    let owner = match &spec.run_as {
        None => None,
        Some(name) => {
            let euid = nix::unistd::geteuid();
            if !identity::can_switch_users() {
                return Err(not_root_message(name, euid.as_raw()));
            }
            let user = nix::unistd::User::from_name(name)
                .map_err(|e| format!("cannot look up user {name:?}: {e}"))?
                .ok_or_else(|| format!("run_as: there is no user named {name:?}"))?;
            Some(user)
        }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&spec.tmp_dir)
        .map_err(|e| format!("cannot create the temp dir {}: {e}", spec.tmp_dir.display()))?;
    if let Some(paths) = &spec.changed_files {
        changed::write(&spec.tmp_dir, paths)
            .map_err(|e| format!("cannot write the changed files' list: {e}"))?;
    }
    if let Some(user) = owner {
        nix::unistd::chown(&spec.tmp_dir, Some(user.uid), Some(user.gid)).map_err(|e| {
            format!(
                "cannot give the temp dir {} to {:?}: {e}",
                spec.tmp_dir.display(),
                user.name
            )
        })?;
        give_tree(&spec.workdir, &user).map_err(|e| {
            format!(
                "cannot give the work tree {} to {:?}: {e}",
                spec.workdir.display(),
                user.name
            )
        })?;
    }
    Ok(())
}

/// Makes the work tree (as the checkout wrote it, owned by the daemon) the commands'
/// user's, top directory 0700, so that the commands can write it and nobody else can
/// read it. Links are changed themselves, never followed; nothing recurses.
fn give_tree(top: &std::path::Path, user: &nix::unistd::User) -> std::io::Result<()> {
    use nix::fcntl::AtFlags;
    use std::os::unix::fs::PermissionsExt as _;
    let own = |path: &std::path::Path| {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            Some(user.uid),
            Some(user.gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(std::io::Error::from)
    };
    own(top)?;
    std::fs::set_permissions(top, std::fs::Permissions::from_mode(0o700))?;
    let mut pending = vec![top.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            own(&path)?;
            if entry.file_type()?.is_dir() {
                pending.push(path);
            }
        }
    }
    Ok(())
}

/// The message for `run_as` when the daemon is not root.
pub(crate) fn not_root_message(user: &str, euid: u32) -> String {
    format!(
        "run_as = {user:?} needs deployhook to run as root or with CAP_SETUID and CAP_SETGID, to switch users; it runs as uid {euid} without them"
    )
}

/// Why the runner stopped a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Cancelled,
}

/// What the supervisor reported on its report pipe.
#[derive(Debug, Default, PartialEq, Eq)]
struct Report {
    error: Option<String>,
    status: Option<CommandStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommandStatus {
    Exit(i32),
    Signal(i32),
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CommandStatus::Exit(code) => write!(f, "exit code {code}"),
            CommandStatus::Signal(n) => match Signal::try_from(n) {
                Ok(s) => write!(f, "killed by signal {n} ({})", s.as_str()),
                Err(_) => write!(f, "killed by signal {n}"),
            },
        }
    }
}

impl Report {
    fn parse(text: &str) -> Report {
        let mut report = Report::default();
        for line in text.lines() {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            match kind {
                // The first error is the cause; later ones are consequences.
                "error" if report.error.is_none() => report.error = Some(rest.to_string()),
                "exit" => report.status = rest.parse().ok().map(CommandStatus::Exit),
                "signal" => report.status = rest.parse().ok().map(CommandStatus::Signal),
                _ => {}
            }
        }
        report
    }
}

/// The argv a command is executed with.
fn argv(command: &Command) -> Vec<OsString> {
    match command {
        Command::Argv(argv) => argv.iter().map(OsString::from).collect(),
        Command::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.into()],
    }
}

/// The `$ ...` line: an argv list shell-quoted where needed, a shell string as written.
fn display(command: &Command) -> String {
    match command {
        Command::Shell(script) => script.clone(),
        Command::Argv(argv) => argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The supervisor of one command, as the runner holds it. Dropping it (the job's future
/// was dropped) asks the supervisor to stop the command.
struct Supervisor {
    pid: i32,
    finished: bool,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if !self.finished {
            procs::signal(self.pid, Signal::SIGTERM);
        }
        procs::unregister(self.pid);
    }
}

async fn run_command(
    spec: &RunSpec,
    confinement: &launcher::Confinement,
    index: usize,
    command: &Command,
    cancel: &mut watch::Receiver<bool>,
    log: &mut JobLog,
) -> Outcome {
    log.note(&format!("$ {}", display(command)));
    let started = Instant::now();
    let (mut child, mut supervisor, mut report_pipe) =
        match spawn_supervisor(spec, confinement, command) {
            Ok(spawned) => spawned,
            Err(message) => return Outcome::Error(message),
        };
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Outcome::Error("the supervisor's output is not piped".into());
    };
    let (waited, stop, drained) = {
        let pump = pump(&mut stdout, &mut stderr, log);
        tokio::pin!(pump);
        let control = control(&mut child, supervisor.pid, spec, cancel);
        tokio::pin!(control);
        let mut pumped = false;
        let (waited, stop) = loop {
            tokio::select! {
                () = &mut pump, if !pumped => pumped = true,
                result = &mut control => break result,
            }
        };
        let drained = pumped
            || tokio::time::timeout(DRAIN_AFTER_EXIT, &mut pump)
                .await
                .is_ok();
        (waited, stop, drained)
    };
    supervisor.finished = true;
    drop(supervisor);
    let report = read_report(&mut report_pipe);
    // A supervisor that reported no status did not get to kill the command's tree (it
    // was killed or stopped itself, by the command if it could): what it left was
    // adopted by the daemon, and is killed before the job may end.
    if report.status.is_none() {
        let killed = tokio::task::spawn_blocking(procs::kill_strays)
            .await
            .unwrap_or(0);
        if killed > 0 {
            log.note(&format!(
                "the command's supervisor died; killed {killed} process(es) it left behind"
            ));
        }
    }
    if !drained {
        log.note(&format!(
            "output was still open {}s after the command ended (a process escaped the job?); stopped reading it",
            DRAIN_AFTER_EXIT.as_secs()
        ));
    }
    let ended = Ended {
        index,
        elapsed: started.elapsed(),
        stop,
        report,
        supervisor: waited,
    };
    ended.conclude(spec, log)
}

/// Starts the supervisor for `command` with exactly the job's environment; returns it
/// with the read end of its report pipe.
fn spawn_supervisor(
    spec: &RunSpec,
    confinement: &launcher::Confinement,
    command: &Command,
) -> Result<(Child, Supervisor, std::io::PipeReader), String> {
    let launch = launcher::Args {
        grace: spec.kill_grace,
        nice: spec.limits.nice,
        confinement: confinement.clone(),
        argv: argv(command),
    };
    if launch.argv.is_empty() {
        return Err("a command is an empty argv list".into());
    }
    let (report_pipe, report_writer) =
        std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let mut cmd = tokio::process::Command::new(&spec.launcher);
    cmd.arg(launcher::SUBCOMMAND)
        .args(launch.to_args("supervise"))
        .env_clear()
        .envs(spec.env.iter().filter(|(k, _)| k != "TMPDIR").cloned())
        .env("TMPDIR", &spec.tmp_dir)
        .env("DEPLOYHOOK_SUMMARY", summary::path(&spec.tmp_dir))
        .envs(
            spec.changed_files
                .as_ref()
                .map(|_| ("DEPLOYHOOK_CHANGED_FILES", spec.tmp_dir.join(changed::FILE))),
        )
        .current_dir(&spec.workdir)
        .stdin(report_writer)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut spawned = procs::lock_spawned();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", spec.launcher.display()))?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or("the supervisor exited before it could be tracked")?;
    spawned.push(pid);
    drop(spawned);
    // `cmd` holds our copy of the report pipe's write end; it must be closed, or the pipe
    // would never reach end-of-file.
    drop(cmd);
    let supervisor = Supervisor {
        pid,
        finished: false,
    };
    Ok((child, supervisor, report_pipe))
}

/// Everything known about a command once its supervisor has exited.
struct Ended {
    index: usize,
    elapsed: Duration,
    stop: Option<Stop>,
    report: Report,
    supervisor: std::io::Result<ExitStatus>,
}

impl Ended {
    /// Writes the command's end line and decides what it means for the job.
    fn conclude(self, spec: &RunSpec, log: &mut JobLog) -> Outcome {
        let index = self.index;
        let elapsed = format!("{:.3}s", self.elapsed.as_secs_f64());
        let status = match (&self.report.status, &self.supervisor) {
            (Some(s), _) => s.to_string(),
            (None, Ok(s)) => format!("no status reported (supervisor {s})"),
            (None, Err(e)) => format!("no status reported ({e})"),
        };
        match (self.stop, self.report.error, self.report.status) {
            (Some(Stop::TimedOut), ..) => {
                log.note(&format!(
                    "timed out after {}: stopped ({status}) after {elapsed}",
                    humantime(spec.timeout)
                ));
                Outcome::TimedOut { command: index }
            }
            (Some(Stop::Cancelled), ..) => {
                log.note(&format!("cancelled: stopped ({status}) after {elapsed}"));
                Outcome::Cancelled { command: index }
            }
            (None, Some(error), _) => Outcome::Error(error),
            (None, None, Some(CommandStatus::Exit(0))) => {
                log.note(&format!("exit code 0 after {elapsed}"));
                Outcome::Succeeded
            }
            (None, None, Some(s)) => {
                log.note(&format!("{s} after {elapsed}"));
                Outcome::Failed {
                    command: index,
                    status: s.to_string(),
                }
            }
            (None, None, None) => Outcome::Error(format!(
                "the supervisor of command {index} ended without reporting the command's status: {status}"
            )),
        }
    }
}

fn confinement(spec: &RunSpec) -> launcher::Confinement {
    launcher::Confinement {
        cpu_secs: spec
            .limits
            .cpu
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
        memory: spec.limits.memory,
        nofile: spec.limits.nofile,
        nproc: spec.limits.nproc,
        user: spec.run_as.clone(),
        sandbox: spec.sandbox,
        writable: if spec.sandbox {
            vec![spec.workdir.clone(), spec.tmp_dir.clone()]
        } else {
            Vec::new()
        },
        readable: if spec.sandbox {
            sandbox::readable_roots(&spec.read_paths, &spec.private_paths)
        } else {
            Vec::new()
        },
    }
}

/// `90s`, `1.5s`, `250ms`: for log lines.
fn humantime(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Reads what the supervisor reported. Called once it has exited, so everything is
/// already in the pipe; non-blocking in case an orphaned launcher still holds it open.
fn read_report(pipe: &mut std::io::PipeReader) -> Report {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let _ = fcntl(&*pipe, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let mut bytes = Vec::new();
    let _ = pipe.take(64 * 1024).read_to_end(&mut bytes);
    Report::parse(&String::from_utf8_lossy(&bytes))
}

/// Waits for the supervisor, stopping it at the timeout or on cancel. Returns its exit
/// status and why it was stopped, if it was.
async fn control(
    child: &mut Child,
    pid: i32,
    spec: &RunSpec,
    cancel: &mut watch::Receiver<bool>,
) -> (std::io::Result<ExitStatus>, Option<Stop>) {
    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let mut stop = None;
    let mut listen_to_cancel = true;
    let mut backstop: Option<tokio::time::Instant> = None;
    let mut killed = false;
    loop {
        let backstop_at = backstop.unwrap_or_else(far_future);
        tokio::select! {
            status = child.wait() => return (status, stop),
            () = &mut deadline, if stop.is_none() => {
                stop = Some(Stop::TimedOut);
            }
            changed = cancel.changed(), if stop.is_none() && listen_to_cancel => {
                match changed {
                    Err(_) => listen_to_cancel = false,
                    Ok(()) => if *cancel.borrow_and_update() {
                        stop = Some(Stop::Cancelled);
                    },
                }
            }
            () = tokio::time::sleep_until(backstop_at), if backstop.is_some() => {
                tracing::warn!(pid, "the supervisor did not stop in time; killing it and its session");
                procs::signal(pid, Signal::SIGKILL);
                procs::kill_session(pid);
                backstop = None;
                killed = true;
            }
        }
        if stop.is_some() && backstop.is_none() && !killed {
            procs::signal(pid, Signal::SIGTERM);
            // A supervisor the command stopped (kill -STOP) would only see it once
            // continued.
            procs::signal(pid, Signal::SIGCONT);
            backstop = Some(after(spec.kill_grace.saturating_add(BACKSTOP)));
        }
    }
}

fn far_future() -> tokio::time::Instant {
    after(Duration::from_secs(86_400 * 365))
}

/// `d` from now; durations from the config may be too large to add to an instant.
fn after(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// Copies the supervisor's stdout and stderr into the log, line by line in the order
/// the chunks arrive, until both reach end-of-file.
async fn pump(stdout: &mut ChildStdout, stderr: &mut ChildStderr, log: &mut JobLog) {
    let mut out_buf = vec![0u8; 64 * 1024];
    let mut err_buf = vec![0u8; 64 * 1024];
    let mut out_lines = Lines::new(Stream::Out);
    let mut err_lines = Lines::new(Stream::Err);
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            read = stdout.read(&mut out_buf), if out_open => match read {
                Ok(n) if n > 0 => out_lines.feed(&out_buf[..n], log),
                _ => {
                    out_open = false;
                    out_lines.finish(log);
                }
            },
            read = stderr.read(&mut err_buf), if err_open => match read {
                Ok(n) if n > 0 => err_lines.feed(&err_buf[..n], log),
                _ => {
                    err_open = false;
                    err_lines.finish(log);
                }
            },
        }
        log.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_read() {
        assert_eq!(
            Report::parse("exit 3\n"),
            Report {
                error: None,
                status: Some(CommandStatus::Exit(3))
            }
        );
        let r = Report::parse("error cannot run `x`: no such file\nerror later\nexit 127\n");
        assert_eq!(r.error.as_deref(), Some("cannot run `x`: no such file"));
        assert_eq!(r.status, Some(CommandStatus::Exit(127)));
        assert_eq!(Report::parse(""), Report::default());
    }

    #[test]
    fn statuses_read_well() {
        assert_eq!(CommandStatus::Exit(2).to_string(), "exit code 2");
        assert_eq!(
            CommandStatus::Signal(9).to_string(),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(CommandStatus::Signal(99).to_string(), "killed by signal 99");
    }

    #[test]
    fn commands_display_as_typed() {
        let argv = |v: &[&str]| Command::Argv(v.iter().map(ToString::to_string).collect());
        assert_eq!(display(&argv(&["make", "deploy"])), "make deploy");
        assert_eq!(
            display(&argv(&["echo", "it's here", ""])),
            r"echo 'it'\''s here' ''"
        );
        assert_eq!(
            display(&Command::Shell("make && echo ok".into())),
            "make && echo ok"
        );
        assert_eq!(argv_of(&Command::Shell("x".into())), ["/bin/sh", "-c", "x"]);
    }

    fn argv_of(c: &Command) -> Vec<String> {
        argv(c)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn cpu_limits_round_up_to_seconds() {
        let spec = |cpu| RunSpec {
            launcher: PathBuf::new(),
            commands: Vec::new(),
            on_failure: Vec::new(),
            finally: Vec::new(),
            workdir: PathBuf::from("/w"),
            env: Vec::new(),
            timeout: Duration::from_secs(1),
            kill_grace: Duration::from_secs(1),
            limits: Limits {
                cpu,
                ..Limits::default()
            },
            run_as: None,
            sandbox: true,
            read_paths: Vec::new(),
            private_paths: Vec::new(),
            tmp_dir: PathBuf::from("/t"),
            changed_files: None,
            log: LogFile::nowhere(),
        };
        let c = confinement(&spec(Some(Duration::from_millis(1500))));
        assert_eq!(c.cpu_secs, Some(2));
        assert_eq!(c.writable, [PathBuf::from("/w"), PathBuf::from("/t")]);
        assert_eq!(
            confinement(&spec(Some(Duration::from_secs(3)))).cpu_secs,
            Some(3)
        );
        assert_eq!(confinement(&spec(None)).cpu_secs, None);
    }

    #[test]
    fn run_as_without_root_is_explained() {
        assert_eq!(
            not_root_message("deploy", 1000),
            "run_as = \"deploy\" needs deployhook to run as root or with CAP_SETUID and CAP_SETGID, to switch users; it runs as uid 1000 without them"
        );
    }
}
