//! A job's log: the one module that creates, writes, reads and removes the files in
//! `state_dir/logs/` (0750; each log 0640, `<job id>.log`). The runner writes command
//! output through [`JobLog`], the worker its own lines through [`JobLogs::note`], and the
//! API reads from a byte offset through [`JobLogs::read`]; nothing else opens them.

mod mask;
mod writer;

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::PathBuf;

use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use crate::store::JobId;
pub use mask::Mask;
pub(crate) use writer::{JobLog, Lines, Stream, timestamp};

/// The folder of job logs.
#[derive(Debug, Clone)]
pub struct JobLogs {
    dir: PathBuf,
}

/// One job's log, to be opened for writing by the runner, capped at `cap` bytes.
#[derive(Debug, Clone)]
pub struct LogFile {
    path: PathBuf,
    cap: u64,
    mask: Mask,
}

impl LogFile {
    /// Opens (creating, 0640, or appending to) the log; what is in it counts towards
    /// the cap.
    pub(crate) fn open(&self) -> io::Result<JobLog> {
        JobLog::open(&self.path, self.cap, self.mask.clone())
    }

    /// For messages about the file.
    pub fn display(&self) -> std::path::Display<'_> {
        self.path.display()
    }

    /// A log that is never written (tests of the runner's other parts).
    #[cfg(test)]
    pub(crate) fn nowhere() -> LogFile {
        LogFile {
            path: PathBuf::from("/dev/null"),
            cap: 0,
            mask: Mask::default(),
        }
    }

    /// The same log, with `mask`'s values written as `***`.
    #[must_use]
    pub fn masking(mut self, mask: Mask) -> LogFile {
        self.mask = mask;
        self
    }
}

impl JobLogs {
    /// `state_dir/logs`, created 0750 if missing.
    pub fn open(state_dir: &std::path::Path) -> io::Result<JobLogs> {
        let dir = state_dir.join("logs");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750))?;
        Ok(JobLogs { dir })
    }

    fn path(&self, id: JobId) -> PathBuf {
        self.dir.join(format!("{}.log", id.0))
    }

    /// The log of job `id`, for the runner, capped at `cap` bytes of command output.
    pub fn file(&self, id: JobId, cap: u64) -> LogFile {
        LogFile {
            path: self.path(id),
            cap,
            mask: Mask::default(),
        }
    }

    /// Appends one of deployhook's own lines (`<time> job| text`) to job `id`'s log.
    /// Control characters in `text` are escaped, so one note is one line.
    pub async fn note(&self, id: JobId, text: &str) {
        let line = note_line(text);
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(self.path(id))
            .await;
        match file {
            Ok(mut f) => {
                // tokio's File finishes a write in the background; without the flush the
                // next line (this job's or the runner's) could land before this one.
                let written = async {
                    f.write_all(line.as_bytes()).await?;
                    f.flush().await
                };
                if let Err(e) = written.await {
                    tracing::warn!(job = id.0, "cannot write the job log: {e}");
                }
            }
            Err(e) => tracing::warn!(job = id.0, "cannot open the job log: {e}"),
        }
    }

    /// Up to `max` bytes of job `id`'s log from byte `offset` (empty past its end or
    /// when it has no log yet).
    pub async fn read(&self, id: JobId, offset: u64, max: u64) -> io::Result<Vec<u8>> {
        let mut f = match tokio::fs::File::open(self.path(id)).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        f.seek(io::SeekFrom::Start(offset)).await?;
        let mut buf = Vec::new();
        f.take(max).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    /// Deletes the logs of jobs that are gone from the store.
    pub async fn remove(&self, ids: Vec<JobId>) {
        let paths: Vec<PathBuf> = ids.into_iter().map(|id| self.path(id)).collect();
        let _ = tokio::task::spawn_blocking(move || {
            for p in paths {
                if let Err(e) = std::fs::remove_file(&p)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    tracing::warn!(log = %p.display(), "cannot remove a pruned job's log: {e}");
                }
            }
        })
        .await;
    }
}

/// One of deployhook's own lines, as the runner writes them too.
fn note_line(text: &str) -> String {
    let mut line = format!("{} job| ", timestamp(std::time::SystemTime::now()));
    writer::escape_into(&mut line, text);
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notes_are_one_line_each_and_reads_start_at_an_offset() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let logs = JobLogs::open(dir.path()).unwrap();
        let id = JobId(7);
        assert!(logs.read(id, 0, 100).await.unwrap().is_empty());
        logs.note(id, "first\nsecond\x1b[31m").await;
        logs.note(id, "third").await;
        let all = String::from_utf8(logs.read(id, 0, 1 << 20).await.unwrap()).unwrap();
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.len(), 2, "{all:?}");
        assert!(
            lines[0].ends_with(" job| first\\nsecond\\u{1b}[31m"),
            "{all:?}"
        );
        assert!(lines[1].ends_with(" job| third"));
        let from = u64::try_from(lines[0].len() + 1).unwrap();
        let rest = logs.read(id, from, 1 << 20).await.unwrap();
        assert_eq!(String::from_utf8(rest).unwrap(), format!("{}\n", lines[1]));
        assert_eq!(logs.read(id, from, 5).await.unwrap().len(), 5);
        let mode = std::fs::metadata(dir.path().join("logs/7.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        logs.remove(vec![id]).await;
        assert!(logs.read(id, 0, 100).await.unwrap().is_empty());
    }
}
