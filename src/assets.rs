//! Generated files for packaging: the man page and shell completions (from the CLI
//! definition) and the hooks.toml JSON Schema (from the config types).

use std::path::Path;
use std::process::ExitCode;

/// `deployhook generate --out DIR`.
pub fn main(out: &Path) -> ExitCode {
    eprintln!("generate is not implemented yet ({})", out.display());
    ExitCode::FAILURE
}
