//! libgit2's network timeouts, so that a remote that stops answering fails the fetch (and
//! the job) instead of hanging a worker thread forever.

use std::time::Duration;

/// Sets how long libgit2 waits to connect and for each read from a remote. Call once at
/// startup, before any thread uses git2.
pub fn set_network_timeouts(connect: Duration, read: Duration) -> Result<(), git2::Error> {
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: these options are C globals without synchronization; `main` calls this
    // once, before the server, the worker or any fetch thread exists.
    #[expect(
        unsafe_code,
        reason = "git2 exposes libgit2's global timeout options only as unsafe fns"
    )]
    unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(ms(connect))?;
        git2::opts::set_server_timeout_in_milliseconds(ms(read))?;
    }
    Ok(())
}
