//! Writing a job's log file: each line time-stamped and tagged with where it came from
//! (`out|` and `err|` for the command's output, `job|` for deployhook's own lines), capped
//! at a size past which output is counted but no longer written.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `text` to `line` with control characters escaped (`\n`, `\u{1b}`), so that
/// one note is one line and cannot move a terminal's cursor.
pub(super) fn escape_into(line: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
}

/// A command's output as stored: control characters other than tab (C0, DEL, and C1 as
/// UTF-8 encodes them) become visible `\xNN` escapes, so that no output line can forge a
/// `job|` line (with `\r`) or drive the terminal of whoever reads the log. Other bytes,
/// invalid UTF-8 included, are kept as they are.
fn escape_controls(payload: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let is_c1 = |i: usize| {
        payload[i] == 0xc2
            && payload
                .get(i + 1)
                .is_some_and(|b| (0x80..=0x9f).contains(b))
    };
    let control = |i: usize| {
        let b = payload[i];
        (b < 0x20 && b != b'\t') || b == 0x7f || is_c1(i)
    };
    if !(0..payload.len()).any(control) {
        return std::borrow::Cow::Borrowed(payload);
    }
    let mut out = Vec::with_capacity(payload.len() + 16);
    let mut i = 0;
    while i < payload.len() {
        if is_c1(i) {
            out.extend_from_slice(format!("\\u{{{:x}}}", payload[i + 1]).as_bytes());
            i += 2;
        } else if control(i) {
            out.extend_from_slice(format!("\\x{:02x}", payload[i]).as_bytes());
            i += 1;
        } else {
            out.push(payload[i]);
            i += 1;
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Longer lines are written in pieces of this size, so a command that never writes a
/// newline cannot make the runner buffer without limit.
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// Where a line of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Out,
    Err,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Stream::Out => "out|",
            Stream::Err => "err|",
        }
    }
}

/// An open job log.
///
/// The cap applies to command output: once a line would take the file past `cap` bytes,
/// that line and all later output is dropped and counted, and [`JobLog::finish`] writes
/// one marker line saying how much was dropped. deployhook's own `job|` lines (a start
/// and an end line per command, errors, the marker) are always written, so the log
/// always says how the job ended; they add a few hundred bytes at most past the cap.
pub(crate) struct JobLog {
    file: BufWriter<File>,
    /// Bytes in the file, including what was there when it was opened.
    size: u64,
    cap: u64,
    /// Bytes of output not written because of the cap.
    dropped: u64,
    capped: bool,
    /// The first write error; later writes are skipped so that the pipes keep draining.
    failed: Option<io::Error>,
    /// Secret values, written as `***`.
    mask: super::mask::Mask,
}

impl JobLog {
    /// Opens (creating or appending to) the log at `path`. What is already in the file
    /// counts towards `cap`.
    pub fn open(path: &Path, cap: u64, mask: super::mask::Mask) -> io::Result<JobLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(JobLog {
            file: BufWriter::with_capacity(64 * 1024, file),
            size,
            cap,
            dropped: 0,
            capped: size >= cap,
            failed: None,
            mask,
        })
    }

    /// Writes one of deployhook's own lines (never capped). Control characters in `text`
    /// are escaped so that one note is one line.
    pub fn note(&mut self, text: &str) {
        let mut line = format!("{} job| ", timestamp(SystemTime::now()));
        escape_into(&mut line, text);
        line.push('\n');
        let line = self.mask.apply(line.as_bytes()).into_owned();
        self.write(&line);
        self.flush();
    }

    /// Writes one line of command output, or counts it as dropped past the cap.
    /// `newline` says whether the line ended with one (it counts as a dropped byte).
    fn output_line(&mut self, stream: Stream, payload: &[u8], newline: bool) {
        let raw = payload.len() as u64 + u64::from(newline);
        if self.capped {
            self.dropped += raw;
            return;
        }
        let prefix = format!("{} {} ", timestamp(SystemTime::now()), stream.tag());
        let masked = self.mask.apply(payload);
        let payload = escape_controls(&masked);
        let len = (prefix.len() + payload.len() + 1) as u64;
        if self.size + len > self.cap {
            self.capped = true;
            self.dropped += raw;
            return;
        }
        self.write(prefix.as_bytes());
        self.write(&payload);
        self.write(b"\n");
    }

    /// Counts output that was never split into lines because the cap was already reached.
    fn drop_bytes(&mut self, n: usize) {
        self.dropped += n as u64;
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        match self.file.write_all(bytes) {
            Ok(()) => self.size += bytes.len() as u64,
            Err(e) => self.failed = Some(e),
        }
    }

    /// Pushes buffered lines to the file, so the log can be followed while a job runs.
    pub fn flush(&mut self) {
        if self.failed.is_none()
            && let Err(e) = self.file.flush()
        {
            self.failed = Some(e);
        }
    }

    /// Bytes of output dropped so far because of the cap.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Writes the truncation marker if anything was dropped, flushes, and returns the
    /// first write error, if any.
    pub fn finish(mut self) -> Result<(), io::Error> {
        if self.dropped > 0 {
            let text = format!(
                "log truncated: it reached log_cap ({} bytes); {} bytes of output were dropped",
                self.cap, self.dropped
            );
            self.note(&text);
        }
        self.flush();
        match self.failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Splits one stream's bytes into lines as they arrive.
pub(crate) struct Lines {
    stream: Stream,
    partial: Vec<u8>,
}

impl Lines {
    pub fn new(stream: Stream) -> Lines {
        Lines {
            stream,
            partial: Vec::new(),
        }
    }

    /// Takes one chunk read from the pipe.
    pub fn feed(&mut self, mut chunk: &[u8], log: &mut JobLog) {
        if log.capped {
            // Nothing more will be written: count, don't split.
            log.drop_bytes(self.partial.len() + chunk.len());
            self.partial.clear();
            return;
        }
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                log.output_line(self.stream, &chunk[..end], true);
            } else {
                self.partial.extend_from_slice(&chunk[..end]);
                log.output_line(self.stream, &self.partial, true);
                self.partial.clear();
            }
            chunk = &chunk[end + 1..];
        }
        self.partial.extend_from_slice(chunk);
        while self.partial.len() >= MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            log.output_line(self.stream, &self.partial, false);
            self.partial = rest;
        }
    }

    /// The stream ended: a last line without a newline is still a line.
    pub fn finish(&mut self, log: &mut JobLog) {
        if !self.partial.is_empty() {
            log.output_line(self.stream, &self.partial, false);
            self.partial.clear();
        }
    }
}

/// `2026-11-24T17:00:00.123Z`: UTC, milliseconds.
pub(crate) fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let at = |secs: u64, millis: u64| {
            timestamp(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_539_600, 123), "2026-11-24T17:00:00.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }

    fn read(log: &Path) -> String {
        String::from_utf8(std::fs::read(log).unwrap()).unwrap()
    }

    fn payloads(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect()
    }

    #[test]
    fn lines_are_split_tagged_and_partial_lines_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = JobLog::open(&path, 1 << 20, super::super::mask::Mask::default()).unwrap();
        let mut out = Lines::new(Stream::Out);
        let mut err = Lines::new(Stream::Err);
        out.feed(b"one\ntw", &mut log);
        err.feed(b"oops\n", &mut log);
        out.feed(b"o\nthree", &mut log);
        log.note("done\nreally");
        out.finish(&mut log);
        err.finish(&mut log);
        log.finish().unwrap();
        assert_eq!(
            payloads(&read(&path)),
            [
                "out| one",
                "err| oops",
                "out| two",
                "job| done\\nreally",
                "out| three"
            ]
        );
    }

    /// A command cannot forge one of deployhook's lines with a carriage return, nor drive
    /// the terminal of whoever reads the log (title, clear screen, an 8-bit CSI).
    #[test]
    fn control_characters_in_output_are_stored_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = JobLog::open(&path, 1 << 20, super::super::mask::Mask::default()).unwrap();
        let mut out = Lines::new(Stream::Out);
        out.feed(
            b"fake\r2026-12-01T00:00:00.000Z job| job 1 succeeded\n\x1b]0;owned\x07\x1b[2J\tok \xc2\x9b31m caf\xc3\xa9 \xff\x7f\n",
            &mut log,
        );
        out.finish(&mut log);
        log.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes
                .iter()
                .any(|&b| (b < 0x20 && b != b'\t' && b != b'\n') || b == 0x7f),
            "{bytes:?}"
        );
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let lines = payloads(&text);
        assert_eq!(lines.len(), 2, "{text:?}");
        assert_eq!(
            lines[0],
            "out| fake\\x0d2026-12-01T00:00:00.000Z job| job 1 succeeded"
        );
        assert_eq!(
            lines[1],
            "out| \\x1b]0;owned\\x07\\x1b[2J\tok \\u{9b}31m café \u{fffd}\\x7f"
        );
    }

    #[test]
    fn long_lines_are_cut_into_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = JobLog::open(&path, 1 << 20, super::super::mask::Mask::default()).unwrap();
        let mut out = Lines::new(Stream::Out);
        out.feed(&vec![b'a'; MAX_LINE * 2 + 10], &mut log);
        out.finish(&mut log);
        log.finish().unwrap();
        let lens: Vec<usize> = payloads(&read(&path)).iter().map(String::len).collect();
        assert_eq!(lens, [MAX_LINE + 5, MAX_LINE + 5, 10 + 5]);
    }

    #[test]
    fn the_cap_drops_and_counts_output_and_marks_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "earlier\n").unwrap();
        let mut log = JobLog::open(&path, 200, super::super::mask::Mask::default()).unwrap();
        let mut out = Lines::new(Stream::Out);
        // Each line is 24 (timestamp) + 1 + 4 (tag) + 1 + 9 + 1 = 40 bytes: 8 + 4*40 = 168
        // fit, the fifth does not.
        for _ in 0..10 {
            out.feed(b"123456789\n", &mut log);
        }
        out.feed(b"no newline", &mut log);
        out.finish(&mut log);
        assert_eq!(log.dropped(), 6 * 10 + 10);
        log.note("exit code 0");
        log.finish().unwrap();
        let text = read(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 4 + 2, "{text}");
        assert!(lines[5].ends_with("job| exit code 0"));
        assert!(
            lines[6].ends_with(
                "job| log truncated: it reached log_cap (200 bytes); 70 bytes of output were dropped"
            ),
            "{text}"
        );
    }
}
