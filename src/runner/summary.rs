//! `$DEPLOYHOOK_SUMMARY`: a file in the job's temp dir where a command may leave one line
//! that says how the deploy went (it becomes the commit status's description). The file
//! is written by deploy code, so it is read as untrusted: never through a link, never a
//! FIFO or device, never a file with other names (a hard link to something the daemon
//! may read and the commands may not), at most [`MAX_READ`] bytes, first line only.

use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// The file's name in the job's temp dir.
const FILE: &str = "deployhook-summary";

/// The most of the file that is read.
const MAX_READ: u64 = 4096;

/// The most characters of the summary kept.
pub const MAX_CHARS: usize = 500;

/// Where the commands of a job whose temp dir is `tmp_dir` may write their summary.
pub fn path(tmp_dir: &Path) -> PathBuf {
    tmp_dir.join(FILE)
}

/// The summary the commands left in `tmp_dir`, if any: its first non-empty line, with
/// control characters made spaces, cut to [`MAX_CHARS`].
pub fn read(tmp_dir: &Path) -> Option<String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path(tmp_dir))
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_READ).read_to_end(&mut bytes).ok()?;
    clean(&String::from_utf8_lossy(&bytes))
}

fn clean(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(
        line.chars()
            .map(|c| if c.is_control() || is_bidi(c) { ' ' } else { c })
            .take(MAX_CHARS)
            .collect::<String>()
            .trim()
            .to_owned(),
    )
    .filter(|s| !s.is_empty())
}

/// Characters that reorder the text around them (a line that reads differently than
/// it is).
fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_is_kept_cleaned_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None, "no file, no summary");
        std::fs::write(
            path(dir.path()),
            "\n  deployed v1.2\u{202E}3\tok  \nsecond line\n",
        )
        .unwrap();
        assert_eq!(read(dir.path()).as_deref(), Some("deployed v1.2 3 ok"));
        std::fs::write(path(dir.path()), "x".repeat(10_000)).unwrap();
        assert_eq!(read(dir.path()).unwrap().chars().count(), MAX_CHARS);
        std::fs::write(path(dir.path()), " \n\n").unwrap();
        assert_eq!(read(dir.path()), None, "blank is no summary");
    }

    #[test]
    fn links_fifos_and_hard_links_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "the daemon's secret\n").unwrap();
        std::os::unix::fs::symlink(&secret, path(dir.path())).unwrap();
        assert_eq!(read(dir.path()), None, "a symlink is not followed");
        std::fs::remove_file(path(dir.path())).unwrap();
        std::fs::hard_link(&secret, path(dir.path())).unwrap();
        assert_eq!(
            read(dir.path()),
            None,
            "a second name of another file is not read"
        );
        std::fs::remove_file(path(dir.path())).unwrap();
        nix::unistd::mkfifo(&path(dir.path()), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(read(dir.path()), None, "a FIFO neither blocks nor counts");
    }
}
