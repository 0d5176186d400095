//! Empties a directory that a deploy command may have written: without following a
//! symbolic link, without a depth limit, and whatever modes the command left.
//!
//! A command can leave anything in its work tree or temp dir: a symlink where a
//! directory was, a `.git` of its own, a tree thousands of levels deep, directories with
//! mode 000. The daemon must remove all of it before the next job, and must never be
//! led outside the directory while doing so.
//!
//! How: every name is resolved relative to an open directory descriptor with
//! `O_NOFOLLOW` (`openat`, `unlinkat`, `renameat2`), so a symlink is only ever removed,
//! never entered. Depth costs nothing: a subdirectory is not descended into but moved up
//! (`renameat2(RENAME_NOREPLACE)`) to the top directory under a fresh name, and emptied
//! from there later. At most two descriptors are open at any time, and nothing recurses.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, RenameFlags, openat, renameat2};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag, fchmodat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// What a wipe removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wiped {
    /// Files, symlinks, sockets and other non-directories.
    pub entries: u64,
    /// Directories, the emptied directory itself not counted.
    pub dirs: u64,
}

/// Makes `dir` an empty directory with mode `mode`, owned by whoever runs this: what
/// was in it is removed (see the module doc); if `dir` is missing it is created (its
/// parent must exist); if it is a symlink or a file, that is removed and a directory made
/// in its place. Never follows a symlink at or below `dir`.
pub fn empty_dir(dir: &Path, mode: u32) -> io::Result<Wiped> {
    let mode = Mode::from_bits_truncate(mode);
    let root = match open_dir(AT_FDCWD, dir.as_os_str()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            make_dir(dir, mode)?;
            return Ok(Wiped::default());
        }
        // A symlink (ELOOP) or a file (ENOTDIR) where the directory should be.
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            unlinkat(AT_FDCWD, dir, UnlinkatFlags::NoRemoveDir)?;
            make_dir(dir, mode)?;
            return Ok(Wiped {
                entries: 1,
                dirs: 0,
            });
        }
        Err(e) => return Err(e.into()),
    };
    nix::sys::stat::fchmod(root.as_fd(), mode)?;
    let mut wiped = Wiped::default();
    let mut fresh = Fresh::default();
    // Directories directly in `root` still to be emptied and removed.
    let mut pending: Vec<OsString> = Vec::new();
    for name in names(&root)? {
        remove_or_defer(&root, &root, &name, &mut pending, &mut fresh, &mut wiped)?;
    }
    while let Some(name) = pending.pop() {
        let sub = open_dir_forcing(&root, &name)?;
        for entry in names(&sub)? {
            remove_or_defer(&sub, &root, &entry, &mut pending, &mut fresh, &mut wiped)?;
        }
        drop(sub);
        unlinkat(root.as_fd(), name.as_os_str(), UnlinkatFlags::RemoveDir)?;
        wiped.dirs += 1;
    }
    Ok(wiped)
}

/// Removes `name` in `parent` if it is not a directory; a directory is moved up to
/// `root` (unless `parent` is `root`) and queued in `pending`.
fn remove_or_defer(
    parent: &OwnedFd,
    root: &OwnedFd,
    name: &OsStr,
    pending: &mut Vec<OsString>,
    fresh: &mut Fresh,
    wiped: &mut Wiped,
) -> io::Result<()> {
    let stat = match fstatat(
        parent.as_fd(),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(stat) => stat,
        // Gone already (it was a hard link we removed under another name, say).
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !is_dir(&stat) {
        unlinkat(parent.as_fd(), name, UnlinkatFlags::NoRemoveDir)?;
        wiped.entries += 1;
        return Ok(());
    }
    if std::ptr::eq(parent, root) {
        pending.push(name.to_owned());
        return Ok(());
    }
    loop {
        let to = fresh.next();
        match renameat2(
            parent.as_fd(),
            name,
            root.as_fd(),
            to.as_os_str(),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {
                pending.push(to);
                return Ok(());
            }
            // The command left an entry of that name at the top: take the next one.
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Names of the entries of `dir`, `.` and `..` left out. Read in full before any is
/// removed: a directory's listing is undefined while it changes.
fn names(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    let fd = dir.try_clone()?;
    let mut listing = nix::dir::Dir::from_fd(fd)?;
    let mut out = Vec::new();
    for entry in listing.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(out)
}

/// Opens the directory `name` in `parent` to read and change its entries, giving it the
/// permissions for that if it lacks them (a command's `chmod 000` or `chmod 500`; only
/// possible for a directory we own, or as root, who needs none).
fn open_dir_forcing(parent: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let opened = open_dir_allowing(parent, name)?;
    let _ = nix::sys::stat::fchmod(opened.as_fd(), Mode::S_IRWXU);
    Ok(opened)
}

fn open_dir_allowing(parent: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    match open_dir(parent.as_fd(), name) {
        Err(Errno::EACCES) => {
            // It was a directory when listed, and only a job's processes (all gone by
            // now) could have swapped it; fchmodat cannot refuse to follow a link, so
            // look once more right before.
            let stat = fstatat(
                parent.as_fd(),
                name,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
            if !is_dir(&stat) {
                return Err(Errno::ENOTDIR.into());
            }
            fchmodat(
                parent.as_fd(),
                name,
                Mode::S_IRWXU,
                FchmodatFlags::FollowSymlink,
            )?;
            Ok(open_dir(parent.as_fd(), name)?)
        }
        other => Ok(other?),
    }
}

fn open_dir<Fd: AsFd>(parent: Fd, name: &OsStr) -> Result<OwnedFd, Errno> {
    openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn is_dir(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn make_dir(dir: &Path, mode: Mode) -> io::Result<()> {
    nix::unistd::mkdir(dir, mode)?;
    // mkdir's mode is masked by the umask; the caller asked for this one.
    let created = open_dir(AT_FDCWD, dir.as_os_str())?;
    nix::sys::stat::fchmod(created.as_fd(), mode)?;
    Ok(())
}

/// Names for directories moved up to the top, unlikely to be taken.
#[derive(Default)]
struct Fresh(u64);

impl Fresh {
    fn next(&mut self) -> OsString {
        self.0 += 1;
        OsString::from(format!(".deployhook-wipe-{}", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    #[test]
    fn removes_everything_and_follows_no_link() {
        let top = tempfile::tempdir().unwrap();
        let outside = top.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "not the job's").unwrap();
        let dir = top.path().join("work");
        fs::create_dir_all(dir.join("a/b/.git/objects")).unwrap();
        fs::write(dir.join("a/b/.git/config"), "[core]\nworktree = /etc\n").unwrap();
        symlink(&outside, dir.join("link-to-dir")).unwrap();
        symlink(outside.join("keep"), dir.join("a/link-to-file")).unwrap();
        // A name the wipe would pick for a moved-up directory.
        fs::create_dir(dir.join(".deployhook-wipe-1")).unwrap();
        fs::create_dir(dir.join("locked")).unwrap();
        fs::write(dir.join("locked/inside"), "x").unwrap();
        fs::set_permissions(dir.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();

        let wiped = empty_dir(&dir, 0o750).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        assert_eq!(wiped.entries, 4, "{wiped:?}");
        assert_eq!(wiped.dirs, 6, "{wiped:?}");
        assert_eq!(
            fs::read_to_string(outside.join("keep")).unwrap(),
            "not the job's"
        );
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o750);
    }

    #[test]
    fn a_tree_deeper_than_any_descriptor_limit_goes() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("work");
        fs::create_dir(&dir).unwrap();
        // 3000 levels: more than a process has descriptors by default (1024), and
        // longer than PATH_MAX as one path, so it is built relative to each level.
        let mut level = fs::File::open(&dir).unwrap();
        for _ in 0..3000 {
            nix::sys::stat::mkdirat(level.as_fd(), "d", Mode::S_IRWXU).unwrap();
            let next = openat(
                level.as_fd(),
                "d",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .unwrap();
            level = fs::File::from(next);
        }
        drop(level);
        let wiped = empty_dir(&dir, 0o700).unwrap();
        assert_eq!(wiped.dirs, 3000);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn a_symlink_or_file_in_place_of_the_directory_is_replaced() {
        let top = tempfile::tempdir().unwrap();
        let target = top.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("precious"), "x").unwrap();
        let dir = top.path().join("work");
        symlink(&target, &dir).unwrap();
        empty_dir(&dir, 0o700).unwrap();
        assert!(fs::symlink_metadata(&dir).unwrap().is_dir());
        assert!(target.join("precious").exists());

        let missing = top.path().join("new");
        empty_dir(&missing, 0o700).unwrap();
        assert!(missing.is_dir());
    }
}
