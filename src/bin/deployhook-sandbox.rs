//! `deployhook-sandbox`: the launcher between the daemon and each deploy command (see
//! `runner::launcher`), as a binary of its own. It is the same code as the hidden
//! `deployhook sandbox-exec` subcommand, but without libgit2, OpenSSL, SQLite and the
//! HTTP server linked in it starts in a fraction of the time, and it starts twice per
//! command.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    // The daemon and the supervise stage pass the subcommand name first, as they would to
    // the deployhook binary.
    if args
        .first()
        .is_some_and(|a| a == deployhook::runner::launcher::SUBCOMMAND)
    {
        args.remove(0);
    }
    deployhook::runner::launcher::main(args)
}
