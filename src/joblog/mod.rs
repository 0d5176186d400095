//! A job's log: the one module that creates, writes, reads and removes job logs. With
//! the embedded store they are files in `state_dir/logs/` (0750; each log 0640,
//! `<job id>.log`); with a store several replicas share, they live in the store
//! ([`LogBook`]) and the files are only a spool the running replica copies from
//! (`spool`). The runner writes command output through [`JobLog`], the worker its own
//! lines through [`JobLogs::note`], and the API reads from a byte offset through
//! [`JobLogs::read`]; nothing else touches them.

mod mask;
mod spool;
mod writer;

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use crate::store::{JobId, LogBook};
pub use mask::Mask;
pub(crate) use writer::{JobLog, Lines, Stream, timestamp};

/// Where job logs are kept; cheap to clone.
#[derive(Clone)]
pub struct JobLogs {
    kept: Kept,
}

#[derive(Clone)]
enum Kept {
    /// Files in `state_dir/logs`, the logs themselves.
    Files(PathBuf),
    /// In the store; running jobs' output passes through a spool file.
    Store(spool::Spools),
}

impl std::fmt::Debug for JobLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kept {
            Kept::Files(dir) => write!(f, "JobLogs(files in {})", dir.display()),
            Kept::Store(_) => f.write_str("JobLogs(in the store)"),
        }
    }
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

/// `dir`, created 0750 if missing.
fn make_dir(dir: &std::path::Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
}

impl JobLogs {
    /// Log files in `state_dir/logs`, created 0750 if missing.
    pub fn open(state_dir: &std::path::Path) -> io::Result<JobLogs> {
        let dir = state_dir.join("logs");
        make_dir(&dir)?;
        Ok(JobLogs {
            kept: Kept::Files(dir),
        })
    }

    /// Logs kept in `book` (a store several replicas share), spooled through
    /// `state_dir/log-spool` while a job runs here.
    pub fn in_store(state_dir: &std::path::Path, book: Arc<dyn LogBook>) -> io::Result<JobLogs> {
        let dir = state_dir.join("log-spool");
        make_dir(&dir)?;
        Ok(JobLogs {
            kept: Kept::Store(spool::Spools::open(dir, book)?),
        })
    }

    /// The file the runner writes job `id`'s log to.
    fn path(&self, id: JobId) -> PathBuf {
        match &self.kept {
            Kept::Files(dir) => dir.join(format!("{}.log", id.0)),
            Kept::Store(spools) => spools.path(id),
        }
    }

    /// The log of job `id`, for the runner, capped at `cap` bytes of command output.
    /// With logs in the store, this starts copying what the runner writes into it,
    /// until [`JobLogs::end`].
    pub fn begin(&self, id: JobId, cap: u64) -> LogFile {
        if let Kept::Store(spools) = &self.kept {
            spools.start(id);
        }
        LogFile {
            path: self.path(id),
            cap,
            mask: Mask::default(),
        }
    }

    /// Says job `id`'s commands are done: with logs in the store, copies the rest of its
    /// spool there and returns once it is in (so that a job seen ended has its whole
    /// log). Nothing to do for log files.
    pub async fn end(&self, id: JobId) {
        if let Kept::Store(spools) = &self.kept {
            spools.end(id).await;
        }
    }

    /// Appends one of deployhook's own lines (`<time> job| text`) to job `id`'s log.
    /// Control characters in `text` are escaped, so one note is one line.
    pub async fn note(&self, id: JobId, text: &str) {
        let line = note_line(text);
        if let Kept::Store(spools) = &self.kept
            && !spools.is_live(id)
        {
            if let Err(e) = spools.book().append(id, line.into_bytes()).await {
                tracing::warn!(job = id.0, "cannot write the job log: {e}");
            }
            return;
        }
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
        if let Kept::Store(spools) = &self.kept {
            return spools
                .book()
                .read(id, offset, max)
                .await
                .map_err(io::Error::other);
        }
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

    /// Deletes the logs of jobs that are gone from the store (a store that keeps logs
    /// removed them with the jobs).
    pub async fn remove(&self, ids: Vec<JobId>) {
        if matches!(self.kept, Kept::Store(_)) {
            return;
        }
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

    /// A store's log book in memory: the spool's side is what is tested here (the
    /// PostgreSQL one has its own tests against a real server).
    #[derive(Default)]
    struct Book(std::sync::Mutex<std::collections::HashMap<JobId, Vec<u8>>>);

    impl LogBook for Book {
        fn append(
            &self,
            job: JobId,
            bytes: Vec<u8>,
        ) -> futures_util::future::BoxFuture<'_, Result<(), crate::store::StoreError>> {
            self.0.lock().unwrap().entry(job).or_default().extend(bytes);
            Box::pin(std::future::ready(Ok(())))
        }

        fn read(
            &self,
            job: JobId,
            from: u64,
            max: u64,
        ) -> futures_util::future::BoxFuture<'_, Result<Vec<u8>, crate::store::StoreError>>
        {
            let log = self
                .0
                .lock()
                .unwrap()
                .get(&job)
                .cloned()
                .unwrap_or_default();
            let from = usize::try_from(from).unwrap().min(log.len());
            let to = log.len().min(from + usize::try_from(max).unwrap());
            Box::pin(std::future::ready(Ok(log[from..to].to_vec())))
        }
    }

    #[tokio::test]
    async fn logs_in_a_store_pass_through_a_spool_only_while_the_job_runs() {
        let dir = tempfile::tempdir().unwrap();
        let left = dir.path().join("log-spool/3.log");
        std::fs::create_dir_all(left.parent().unwrap()).unwrap();
        std::fs::write(&left, "from a process that died\n").unwrap();
        let book = Arc::new(Book::default());
        let logs = JobLogs::in_store(dir.path(), Arc::clone(&book) as Arc<dyn LogBook>).unwrap();
        assert!(!left.exists(), "a dead process's spool is removed at start");
        let id = JobId(9);
        logs.note(id, "before the run").await;
        assert!(book.0.lock().unwrap()[&id].ends_with(b" job| before the run\n"));
        let file = logs.begin(id, 1 << 20);
        let mut log = file.open().unwrap();
        log.note("from the runner");
        logs.note(id, "from the worker, during the run").await;
        log.finish().unwrap();
        let spool = dir.path().join("log-spool/9.log");
        assert!(spool.exists());
        logs.end(id).await;
        assert!(!spool.exists(), "the spool is removed once copied");
        logs.note(id, "after the run").await;
        let all = String::from_utf8(logs.read(id, 0, 1 << 20).await.unwrap()).unwrap();
        let said: Vec<&str> = all
            .lines()
            .map(|l| l.split_once(" job| ").unwrap().1)
            .collect();
        assert_eq!(
            said,
            [
                "before the run",
                "from the runner",
                "from the worker, during the run",
                "after the run"
            ]
        );
        let from = u64::try_from(all.find("from the worker").unwrap()).unwrap();
        assert!(
            logs.read(id, from, 1 << 20)
                .await
                .unwrap()
                .starts_with(b"from the worker")
        );
        logs.remove(vec![id]).await;
        assert_eq!(logs.read(id, 0, 1 << 20).await.unwrap().len(), all.len());
    }
}
