//! The opt-in sandbox: Landlock, applied by the launcher to itself just before it
//! executes the command (Landlock restrictions are inherited and cannot be lifted).
//! Only the writable directories given (the work tree and the job's temp dir) and a few
//! harmless devices can be written; only the system directories, those two and the
//! rule's `read_paths` can be read or executed, less every path the daemon keeps for
//! itself (its config's folder, secret files, `state_dir`); and the command can neither
//! signal nor connect to an abstract unix socket of any process outside the sandbox
//! (its supervisor, the daemon, other jobs), where the kernel has Landlock's scoping
//! (Linux 6.12).
//!
//! One Landlock limitation shows in scripts: the command's stdout and stderr are pipes,
//! and re-opening them by name (`echo x > /dev/stderr`, which opens `/proc/self/fd/2`)
//! is denied, because a pipe lives on an internal filesystem no rule can grant. Writing
//! to the inherited descriptors (`>&2`) works as usual.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, LandlockStatus, RestrictSelf, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, path_beneath_rules,
};

/// The access rights handled. V5 covers every filesystem right Linux 6.10 knows
/// (including truncate and device ioctls); later ABIs add unix-socket and signal scoping,
/// which are not about writing files and are left alone. An older kernel enforces the
/// subset it knows.
const FS_ABI: ABI = ABI::V5;

/// Devices any command may write to, even in the sandbox.
const WRITABLE_DEVICES: [&str; 4] = ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"];

/// What a command needs to read and run programs: the system's programs, libraries and
/// configuration, devices and the kernel's views. Not /home, /root, /srv, /var or /tmp.
const SYSTEM_READ: [&str; 13] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/dev",
    "/proc", "/sys", "/run",
];

/// The paths a sandboxed command may read: the system directories and `extra`, with
/// every path in `private` cut out. Landlock grants whole subtrees, so a directory that
/// holds a private path (as /etc holds /etc/deployhook) is replaced by its entries, less
/// the one on the way to the private path, level by level. A symlink met on the way is
/// left out rather than granted: its target stays readable only if it is under another
/// root.
pub(crate) fn readable_roots(extra: &[PathBuf], private: &[PathBuf]) -> Vec<PathBuf> {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let private: Vec<PathBuf> = private.iter().map(|p| real(p)).collect();
    let mut pending: Vec<PathBuf> = SYSTEM_READ
        .iter()
        .map(PathBuf::from)
        .chain(extra.iter().cloned())
        .filter(|p| p.exists())
        .map(|p| real(&p))
        .collect();
    let mut roots = Vec::new();
    while let Some(root) = pending.pop() {
        if private.iter().any(|p| root.starts_with(p)) {
            continue;
        }
        if !private.iter().any(|p| p.starts_with(&root)) {
            roots.push(root);
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| !t.is_symlink()) {
                pending.push(entry.path());
            }
        }
    }
    roots.sort();
    roots.dedup();
    roots
}

/// Why the sandbox could not be put in place.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SandboxError {
    #[error(
        "sandbox = true, but this kernel does not support Landlock (Linux >= 5.13 with Landlock enabled is needed)"
    )]
    Unsupported,
    #[error("cannot open writable directory {}: {source}", path.display())]
    Writable {
        path: PathBuf,
        source: landlock::PathFdError,
    },
    #[error("cannot set up the Landlock sandbox: {0}")]
    Ruleset(#[from] landlock::RulesetError),
}

/// Restricts this process (and so everything it executes) to writing only beneath
/// `writable` and reading only beneath `writable` and `readable` (see
/// [`readable_roots`]), and scopes signals and abstract unix sockets to the sandbox where
/// the kernel can. Must be called with a single thread (the launcher's confine stage).
/// Sets `no_new_privs`, so set-uid programs do not gain privileges inside the sandbox.
pub(crate) fn restrict_self(
    writable: &[PathBuf],
    readable: &[PathBuf],
) -> Result<RulesetStatus, SandboxError> {
    let all = AccessFs::from_all(FS_ABI);
    let read = AccessFs::from_read(FS_ABI);
    // Best effort, like the filesystem rights: a kernel before 6.12 enforces the rest.
    let mut ruleset = Ruleset::default()
        .handle_access(all)?
        .scope(Scope::Signal | Scope::AbstractUnixSocket)?
        .create()?
        .add_rules(path_beneath_rules(readable, read))?
        .add_rules(path_beneath_rules(WRITABLE_DEVICES, all))?;
    for dir in writable {
        // path_beneath_rules skips paths it cannot open; a missing writable directory
        // must be an error instead, or the command would silently be unable to write.
        let fd = landlock::PathFd::new(dir).map_err(|source| SandboxError::Writable {
            path: dir.clone(),
            source,
        })?;
        ruleset = ruleset.add_rule(landlock::PathBeneath::new(fd, all))?;
    }
    let status = ruleset.restrict_self()?;
    match status.ruleset {
        RulesetStatus::NotEnforced => Err(SandboxError::Unsupported),
        s => Ok(s),
    }
}

/// The Landlock ABI the running kernel offers, without restricting anything.
fn landlock_status() -> LandlockStatus {
    // No flags and no `no_new_privs`: `apply` only probes the kernel.
    match RestrictSelf::default().no_new_privs(false).apply() {
        Ok(status) => status.landlock,
        Err(_) => LandlockStatus::NotImplemented,
    }
}

/// Where `bwrap` is, if it is installed.
fn find_bwrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("bwrap"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One line for the startup log; see [`super::sandbox_support`].
pub(crate) fn support() -> String {
    let landlock = match landlock_status() {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => {
            let abi = kernel_abi.map_or_else(|| effective_abi.to_string(), |v| v.to_string());
            format!(
                "Landlock ABI {abi} available: rules with sandbox = true may write only to their work tree and temp dir"
            )
        }
        LandlockStatus::NotEnabled => {
            "Landlock is built into this kernel but not enabled (add it to the lsm= boot parameter): rules with sandbox = true will fail".to_string()
        }
        LandlockStatus::NotImplemented => {
            "Landlock is not supported by this kernel: rules with sandbox = true will fail"
                .to_string()
        }
    };
    let bwrap = match find_bwrap() {
        Some(p) => format!("bubblewrap found at {} (not used)", p.display()),
        None => "bubblewrap not installed (not needed)".to_string(),
    };
    format!("filesystem sandbox: {landlock}; {bwrap}")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn a_private_path_is_cut_out_of_the_system_directories() {
        let top = tempfile::tempdir().unwrap();
        let etc = top.path().join("etc");
        for d in ["deployhook/secrets", "ssl/certs", "nginx"] {
            std::fs::create_dir_all(etc.join(d)).unwrap();
        }
        std::fs::write(etc.join("hosts"), "").unwrap();
        std::os::unix::fs::symlink(etc.join("deployhook"), etc.join("alias")).unwrap();
        let private = [etc.join("deployhook")];
        let roots = super::readable_roots(std::slice::from_ref(&etc), &private);
        let ours: Vec<&PathBuf> = roots.iter().filter(|r| r.starts_with(&etc)).collect();
        assert_eq!(
            ours,
            [&etc.join("hosts"), &etc.join("nginx"), &etc.join("ssl")],
            "the rest of etc stays readable; the private folder and a link to it do not"
        );
        assert!(roots.contains(&PathBuf::from("/usr")));
        // A private path deeper down splits only the folders on the way to it.
        let roots = super::readable_roots(std::slice::from_ref(&etc), &[etc.join("ssl/certs")]);
        assert!(roots.contains(&etc.join("deployhook")));
        assert!(!roots.contains(&etc.join("ssl")));
        assert!(!roots.iter().any(|r| r.starts_with(etc.join("ssl/certs"))));
        // A private root is dropped whole.
        let roots = super::readable_roots(std::slice::from_ref(&etc), std::slice::from_ref(&etc));
        assert!(!roots.iter().any(|r| r.starts_with(&etc)));
    }

    #[test]
    fn support_names_landlock_and_bubblewrap() {
        let line = super::support();
        assert!(line.starts_with("filesystem sandbox: Landlock "), "{line}");
        assert!(line.contains("bubblewrap"), "{line}");
        assert!(!line.contains('\n'));
    }
}
