//! `$DEPLOYHOOK_CHANGED_FILES`: the files a push changed, as its forge listed them, one
//! per line in a file in the job's temp dir. The paths come from the payload, so they go
//! only into this file, never into a command line or a variable; a path that holds a
//! control character, `"` or `\` is written quoted the way git quotes it
//! (`core.quotePath = false`: `"a\nb"`, `"\033[31m"`), so every line is one path.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// The file's name in the job's temp dir.
pub(super) const FILE: &str = "deployhook-changed-files";

/// Writes `paths` into `tmp_dir` (which must exist and be the daemon's still) and
/// returns the file's path.
pub fn write(tmp_dir: &Path, paths: &[String]) -> std::io::Result<PathBuf> {
    let path = tmp_dir.join(FILE);
    let mut text = String::new();
    for p in paths {
        text.push_str(&quote(p));
        text.push('\n');
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)?
        .write_all(text.as_bytes())?;
    Ok(path)
}

/// `path` as git writes it in `git diff --name-only` with `core.quotePath = false`: as it
/// is, or, if it holds a control character, `"` or `\`, in double quotes with C escapes.
pub fn quote(path: &str) -> String {
    if !path
        .chars()
        .any(|c| c.is_ascii_control() || c == '"' || c == '\\')
    {
        return path.to_owned();
    }
    let mut out = String::from("\"");
    for c in path.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\{:03o}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_as_git_quotes_them() {
        assert_eq!(quote("services/api/main.go"), "services/api/main.go");
        assert_eq!(quote("café/$(reboot).txt"), "café/$(reboot).txt");
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
        assert_eq!(quote("tab\there"), "\"tab\\there\"");
        assert_eq!(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(quote("back\\slash"), "\"back\\\\slash\"");
        assert_eq!(quote("\u{1b}[31mred"), "\"\\033[31mred\"");
        assert_eq!(quote("del\u{7f}"), "\"del\\177\"");
    }

    #[test]
    fn one_line_per_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), &["a".into(), "b\nc".into(), "d".into()]).unwrap();
        assert_eq!(std::fs::read_to_string(file).unwrap(), "a\n\"b\\nc\"\nd\n");
    }
}
