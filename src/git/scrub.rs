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
//! A kept file must also have the tree's content and executable bit: each is hashed as
//! git hashes a blob (a stat cache would miss an edit that kept the file's size and
//! time). What is left is then exactly the last checkout's, and libgit2 only writes the
//! difference to the new commit.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};

/// git's file modes in a tree.
const TREE: i32 = 0o040_000;
const BLOB: i32 = 0o100_644;
const EXECUTABLE: i32 = 0o100_755;

/// Checks `work_dir` against `tree` (the last checkout's); returns how many entries were
/// removed. Reads every kept file once (to hash it).
pub(super) fn scrub(repo: &Repository, work_dir: &Path, tree: Oid) -> io::Result<usize> {
    let mut removed = 0;
    let mut pending: Vec<(PathBuf, Oid)> = vec![(work_dir.to_owned(), tree)];
    while let Some((dir, id)) = pending.pop() {
        let tree = repo.find_tree(id).map_err(io::Error::other)?;
        let expected: HashMap<Vec<u8>, (i32, Oid)> = tree
            .iter()
            .map(|e| (e.name_bytes().to_vec(), (e.filemode(), e.id())))
            .collect();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path)?;
            let kind = meta.file_type();
            let mode = meta.permissions().mode() & 0o7777;
            let keep = match expected.get(entry.file_name().as_bytes()) {
                Some(&(TREE, sub)) if kind.is_dir() => {
                    if mode != 0o755 {
                        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
                    }
                    pending.push((path.clone(), sub));
                    true
                }
                Some(&(filemode @ (BLOB | EXECUTABLE), blob)) => {
                    kind.is_file()
                        && meta.nlink() == 1
                        && mode & 0o7022 == 0
                        && (mode & 0o100 != 0) == (filemode == EXECUTABLE)
                        && Oid::hash_file(ObjectType::Blob, &path).ok() == Some(blob)
                }
                _ => false,
            };
            if !keep {
                remove(&path, kind.is_dir())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
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
