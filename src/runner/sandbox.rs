//! The opt-in filesystem sandbox: Landlock, applied by the launcher to itself just before
//! it executes the command (Landlock restrictions are inherited and cannot be lifted).
//! Everything stays readable and executable; only the writable directories given (the
//! work tree and the job's temp dir) and a few harmless devices can be written.
//!
//! One Landlock limitation shows in scripts: the command's stdout and stderr are pipes,
//! and re-opening them by name (`echo x > /dev/stderr`, which opens `/proc/self/fd/2`)
//! is denied, because a pipe lives on an internal filesystem no rule can grant. Writing
//! to the inherited descriptors (`>&2`) works as usual.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, LandlockStatus, RestrictSelf, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, path_beneath_rules,
};

/// The access rights handled. V5 covers every filesystem right Linux 6.10 knows
/// (including truncate and device ioctls); later ABIs add unix-socket and signal scoping,
/// which are not about writing files and are left alone. An older kernel enforces the
/// subset it knows.
const FS_ABI: ABI = ABI::V5;

/// Devices any command may write to, even in the sandbox.
const WRITABLE_DEVICES: [&str; 4] = ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"];

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
/// `writable`. Must be called with a single thread (the launcher's confine stage).
/// Sets `no_new_privs`, so set-uid programs do not gain privileges inside the sandbox.
pub(crate) fn restrict_self(writable: &[PathBuf]) -> Result<RulesetStatus, SandboxError> {
    let all = AccessFs::from_all(FS_ABI);
    let read = AccessFs::from_read(FS_ABI);
    let mut ruleset = Ruleset::default()
        .handle_access(all)?
        .create()?
        .add_rules(path_beneath_rules(["/"], read))?
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
    #[test]
    fn support_names_landlock_and_bubblewrap() {
        let line = super::support();
        assert!(line.starts_with("filesystem sandbox: Landlock "), "{line}");
        assert!(line.contains("bubblewrap"), "{line}");
        assert!(!line.contains('\n'));
    }
}
