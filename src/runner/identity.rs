//! Who deploy commands run as. Not the daemon's own user, by default: a command of the
//! daemon's user could read its config and secrets, its database and every other hook's
//! work tree and logs, and signal it. When the daemon can switch users (it runs as root,
//! or has CAP_SETUID and CAP_SETGID, as the packaged unit gives it), a rule without
//! `run_as` runs as `[server] command_user` (`deployhook-run`, which the packages
//! create); where it cannot, `serve` and `check` say plainly what that means.

use nix::unistd::{Uid, User};

/// CAP_SETGID (6) and CAP_SETUID (7), as bits of the capability sets in
/// `/proc/<pid>/status`.
const SWITCH_CAPS: u64 = (1 << 6) | (1 << 7);

/// Whether this process can switch to another user for a command: as root, or with
/// CAP_SETUID and CAP_SETGID (the packaged unit's `AmbientCapabilities=`). The launcher
/// drops every capability before the command runs ([`super::launcher`]).
pub fn can_switch_users() -> bool {
    nix::unistd::geteuid().is_root() || effective_caps() & SWITCH_CAPS == SWITCH_CAPS
}

/// This process's effective capabilities (`CapEff` in `/proc/self/status`); 0 if they
/// cannot be read.
pub(crate) fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Who runs the commands of rules without `run_as`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandUser {
    /// Switch to this user.
    Separate(String),
    /// Run as the daemon's own user, for this reason.
    Daemon(Why),
}

/// Why commands run as the daemon's own user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The daemon is not root and lacks CAP_SETUID and CAP_SETGID.
    CannotSwitch { uid: u32 },
    /// `command_user` does not exist on this machine.
    NoSuchUser { name: String },
    /// `command_user` is the daemon's own user.
    Chosen { name: String },
}

impl CommandUser {
    /// For `[server] command_user = name`, on this machine and in this process.
    pub fn resolve(name: &str) -> CommandUser {
        let me = nix::unistd::geteuid();
        if !can_switch_users() {
            return CommandUser::Daemon(Why::CannotSwitch { uid: me.as_raw() });
        }
        match User::from_name(name) {
            Ok(Some(user)) if user.uid == me => CommandUser::Daemon(Why::Chosen {
                name: name.to_owned(),
            }),
            Ok(Some(_)) => CommandUser::Separate(name.to_owned()),
            _ => CommandUser::Daemon(Why::NoSuchUser {
                name: name.to_owned(),
            }),
        }
    }

    /// The user to switch to, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            CommandUser::Separate(name) => Some(name),
            CommandUser::Daemon(_) => None,
        }
    }

    /// What `serve` logs and `check` prints about it: one line, plain about the risk.
    pub fn describe(&self) -> String {
        let risk = "they can read the daemon's config, secrets, database and every job's files, and signal it, except where the rule has sandbox = true";
        match self {
            CommandUser::Separate(name) => {
                format!("commands of rules without run_as run as user {name:?}")
            }
            CommandUser::Daemon(Why::CannotSwitch { uid }) => format!(
                "deployhook runs as uid {uid}, not root and without CAP_SETUID and CAP_SETGID, so it cannot switch users: every command runs as uid {uid} too, and {risk}"
            ),
            CommandUser::Daemon(Why::NoSuchUser { name }) => format!(
                "command_user {name:?} does not exist on this machine, so commands of rules without run_as run as {}: {risk}; create it (the packages do: useradd --system {name}) or set [server] command_user",
                own_name()
            ),
            CommandUser::Daemon(Why::Chosen { name }) => format!(
                "command_user {name:?} is the daemon's own user: commands of rules without run_as run as it, and {risk}"
            ),
        }
    }

    /// Whether [`CommandUser::describe`] is a warning rather than information.
    pub fn is_risky(&self) -> bool {
        matches!(self, CommandUser::Daemon(_))
    }
}

fn own_name() -> String {
    let uid = Uid::effective();
    User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| format!("user {:?}", u.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_for_this_process() {
        let me = User::from_uid(Uid::effective()).unwrap().unwrap().name;
        let chosen = CommandUser::resolve(&me);
        assert!(chosen.is_risky());
        assert_eq!(chosen.name(), None);
        let missing = CommandUser::resolve("no-such-user-for-deployhook");
        assert_eq!(missing.name(), None);
        assert!(
            missing.describe().contains("useradd --system"),
            "{}",
            missing.describe()
        );
        if can_switch_users() {
            assert_eq!(
                missing,
                CommandUser::Daemon(Why::NoSuchUser {
                    name: "no-such-user-for-deployhook".into()
                })
            );
            assert_eq!(CommandUser::resolve("nobody").name(), Some("nobody"));
        } else {
            assert!(matches!(
                missing,
                CommandUser::Daemon(Why::CannotSwitch { .. })
            ));
        }
    }
}
