//! Brings a work tree that deploy commands used back to something libgit2 may update in
//! place, so that a checkout writes only what changed instead of every file.
//!
//! A command can leave anything there, so nothing is trusted but what is checked here,
//! against the tree the daemon last checked out (the git directory's HEAD, which no
//! command can write). Every entry on disk must be what that tree has at its path, and of
//! a kind libgit2 cannot be led astray by: a real directory where the tree has one (its
//! mode reset to 0755), a regular file with one link and no set-id, sticky, group- or
//! world-write bit where the tree has a file. Everything else is removed without
//! following a link: entries the tree lacks (a nested `.git`, build output, a web
//! shell), symlinks (libgit2 writes the tree's own again), submodule directories, files
//! with other links (a hard link to a file outside), devices, sockets and FIFOs. Only
//! directories the tree has are entered, so the walk is as deep as the tree.
//!
//! A kept file must also have the tree's content and executable bit. It is hashed as git
//! hashes a blob unless the last checkout's record vouches for it ([`Record`]): the index
//! libgit2 wrote at the end of that checkout, in the git directory, holds each file's
//! inode, size, modification time and **change time** (ctime) as they were then. A
//! command can set a file's modification time back (`touch -r`), but not its change
//! time: the kernel sets that to the current time on every write, chmod, link or
//! rename, and only a process that may set the system clock could choose it. So a file
//! whose ctime is still the recorded one, and was recorded before the index was written
//! (strictly: one written in the same clock tick as the index could have been changed
//! again in that tick, and is hashed), has not been touched since. What is left is then
//! exactly the last checkout's, and libgit2 only writes the difference to the new commit.
//!
//! The scrub hands back an index entry with stat data for each file it kept, so that
//! libgit2's checkout compares by stat too instead of hashing every file a second time.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use git2::{Index, IndexEntry, IndexTime, ObjectType, Oid, Repository};

/// git's file modes in a tree.
const TREE: i32 = 0o040_000;
const BLOB: i32 = 0o100_644;
const EXECUTABLE: i32 = 0o100_755;

/// What a scrub left and did.
pub(super) struct Scrubbed {
    /// Entries removed from the work tree.
    pub removed: usize,
    /// Kept files whose content was read and hashed (the rest the record vouched for).
    pub hashed: usize,
    /// An index entry, with the stat data read here, for each file kept.
    pub kept: Vec<IndexEntry>,
}

/// The last checkout's record of the files it left: the index it wrote, and when.
pub(super) struct Record<'a> {
    index: &'a Index,
    /// The index file's modification time, on the clock the kernel stamps ctimes with;
    /// `None` without an index file (nothing is vouched for).
    sealed: Option<(i64, i64)>,
}

impl<'a> Record<'a> {
    /// The record in `index` (as read from its file, unchanged since).
    pub(super) fn of(index: &'a Index) -> Record<'a> {
        let sealed = index
            .path()
            .and_then(|p| fs::metadata(p).ok())
            .map(|m| (m.mtime(), m.mtime_nsec()));
        Record { index, sealed }
    }

    /// Whether the file at `relative` (as `meta` has it now), which the tree has as `blob`
    /// with `mode`, is exactly as the last checkout left it; see the module's comment.
    fn vouches_for(&self, relative: &Path, meta: &Metadata, blob: Oid, mode: i32) -> bool {
        let Some(sealed) = self.sealed else {
            return false;
        };
        let Some(e) = self.index.get_path(relative, 0) else {
            return false;
        };
        let same_time = |t: IndexTime, s: i64, ns: i64| {
            i64::from(t.seconds()) == s && i64::from(t.nanoseconds()) == ns
        };
        e.id == blob
            && i64::from(e.mode) == i64::from(mode)
            && (
                i64::from(e.ctime.seconds()),
                i64::from(e.ctime.nanoseconds()),
            ) < sealed
            && same_time(e.ctime, meta.ctime(), meta.ctime_nsec())
            && same_time(e.mtime, meta.mtime(), meta.mtime_nsec())
            && e.ino == low_32(meta.ino())
            && e.file_size == low_32(meta.size())
    }
}

/// Checks `work_dir` against `tree` (the last checkout's), reading a kept file only when
/// `record` does not vouch for it.
pub(super) fn scrub(
    repo: &Repository,
    work_dir: &Path,
    tree: Oid,
    record: &Record<'_>,
) -> io::Result<Scrubbed> {
    let mut done = Scrubbed {
        removed: 0,
        hashed: 0,
        kept: Vec::new(),
    };
    let mut pending: Vec<(PathBuf, PathBuf, Oid)> =
        vec![(work_dir.to_owned(), PathBuf::new(), tree)];
    while let Some((dir, relative_dir, id)) = pending.pop() {
        let tree = repo.find_tree(id).map_err(io::Error::other)?;
        let expected: HashMap<Vec<u8>, (i32, Oid)> = tree
            .iter()
            .map(|e| (e.name_bytes().to_vec(), (e.filemode(), e.id())))
            .collect();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let relative = relative_dir.join(entry.file_name());
            // Of the entry itself, never what a link points at.
            let meta = entry.metadata()?;
            let kind = meta.file_type();
            let mode = meta.permissions().mode() & 0o7777;
            let keep = match expected.get(entry.file_name().as_bytes()) {
                Some(&(TREE, sub)) if kind.is_dir() => {
                    if mode != 0o755 {
                        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
                    }
                    pending.push((path.clone(), relative, sub));
                    true
                }
                Some(&(filemode @ (BLOB | EXECUTABLE), blob))
                    if kind.is_file()
                        && meta.nlink() == 1
                        && mode & 0o7022 == 0
                        && (mode & 0o100 != 0) == (filemode == EXECUTABLE) =>
                {
                    let same = record.vouches_for(&relative, &meta, blob, filemode) || {
                        done.hashed += 1;
                        Oid::hash_file(ObjectType::Blob, &path).ok() == Some(blob)
                    };
                    if same {
                        done.kept.push(index_entry(relative, &meta, blob, filemode));
                    }
                    same
                }
                _ => false,
            };
            if !keep {
                remove(&path, kind.is_dir())?;
                done.removed += 1;
            }
        }
    }
    Ok(done)
}

/// The index entry of a kept file: the tree's blob and mode, and the file's stat data
/// (truncated to 32 bits where the index format has only those, as git does). The device
/// is not compared ([`Record::vouches_for`]): libgit2 records `st_rdev` there, 0 for a
/// file.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "the index keeps 32-bit seconds, as git and libgit2 write them"
)]
fn index_entry(relative: PathBuf, meta: &Metadata, blob: Oid, mode: i32) -> IndexEntry {
    let time = |s: i64, ns: i64| IndexTime::new(s as i32, ns as u32);
    IndexEntry {
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        dev: low_32(meta.dev()),
        ino: low_32(meta.ino()),
        mode: mode.cast_unsigned(),
        uid: meta.uid(),
        gid: meta.gid(),
        file_size: low_32(meta.size()),
        id: blob,
        flags: 0,
        flags_extended: 0,
        path: relative.into_os_string().into_encoded_bytes(),
    }
}

/// The low 32 bits of `n`, all the index keeps of an inode, device or size.
fn low_32(n: u64) -> u32 {
    u32::try_from(n & u64::from(u32::MAX)).unwrap_or(u32::MAX)
}

/// Removes `path` without following it: a directory with everything in it (any depth,
/// any mode), anything else unlinked.
fn remove(path: &Path, is_dir: bool) -> io::Result<()> {
    if is_dir {
        crate::wipe::empty_dir(path, 0o700)?;
        fs::remove_dir(path)
    } else {
        fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record vouches for a file only by the stat data it holds, and never for one
    /// recorded in the clock tick the index was written in (it could have changed again
    /// within that tick without its change time moving).
    #[test]
    fn a_file_recorded_in_the_index_s_own_tick_is_not_vouched_for() {
        let tmp = tempfile::TempDir::new().unwrap();
        let path = tmp.path().join("app.txt");
        fs::write(&path, "v1\n").unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        let blob = Oid::hash_file(ObjectType::Blob, &path).unwrap();
        let mut index = Index::new().unwrap();
        index
            .add(&index_entry("app.txt".into(), &meta, blob, BLOB))
            .unwrap();
        let ctime = (meta.ctime(), meta.ctime_nsec());
        let later = (meta.ctime(), meta.ctime_nsec() + 1);
        let record = |sealed| Record {
            index: &index,
            sealed,
        };
        let at = Path::new("app.txt");

        assert!(record(Some(later)).vouches_for(at, &meta, blob, BLOB));
        assert!(!record(Some(ctime)).vouches_for(at, &meta, blob, BLOB));
        assert!(!record(None).vouches_for(at, &meta, blob, BLOB));
        assert!(!record(Some(later)).vouches_for(at, &meta, Oid::ZERO_SHA1, BLOB));
        assert!(!record(Some(later)).vouches_for(at, &meta, blob, EXECUTABLE));
        assert!(!record(Some(later)).vouches_for(Path::new("other.txt"), &meta, blob, BLOB));

        // Another file (another inode and change time) at the recorded path.
        let other = tmp.path().join("other.txt");
        fs::write(&other, "v1\n").unwrap();
        let other = fs::symlink_metadata(&other).unwrap();
        assert!(!record(Some((i64::MAX, 0))).vouches_for(at, &other, blob, BLOB));
    }
}
