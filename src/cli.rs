//! The command line, defined once with clap so that help, man page and completions all
//! come from the same place.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Where the packaged daemon looks for its config.
pub const DEFAULT_CONFIG: &str = "/etc/deployhook/hooks.toml";

#[derive(Debug, Parser)]
#[command(
    name = "deployhook",
    version,
    about = "GitOps deploy daemon: verified forge push webhooks become sandboxed deploys"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: receive webhooks on [server] listen and queue deploys.
    Serve {
        /// The hooks.toml to run.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Check a config file and report every problem as file:line:column; starts nothing.
    Check {
        /// The hooks.toml to check.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}
