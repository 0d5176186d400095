//! systemd's readiness protocol (`sd_notify`): a datagram to `$NOTIFY_SOCKET` saying the
//! daemon is ready, reloading or stopping. Without the variable it does nothing.

use std::os::unix::net::UnixDatagram;

/// Sends `READY=1`, `STOPPING=1`, ... to systemd; `Ok(false)` when not run by systemd.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        socket.send_to(state.as_bytes(), &path)?;
    }
    Ok(true)
}

/// `RELOADING=1` with the monotonic timestamp systemd expects alongside it.
pub fn reloading() -> std::io::Result<bool> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_err(std::io::Error::from)?;
    let usec = now.tv_sec() * 1_000_000 + now.tv_nsec() / 1_000;
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_notify_socket_nothing_is_sent() {
        // The test process is not run by systemd (NOTIFY_SOCKET unset in CI and here).
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            assert!(!super::notify("READY=1").unwrap());
        }
    }
}
