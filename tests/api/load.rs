//! Load on loopback: two thousand slow clients (slowloris) holding connections open do not
//! keep signed pushes out, and the ones that never finish their request head are dropped
//! by the server on its own.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::helpers::*;

/// Slow clients of each kind.
const SLOW: usize = 1000;

/// Each slow client and the server hold a socket in this one process; make room.
fn raise_fd_limit(wanted: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < wanted {
        setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard).unwrap();
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        soft >= wanted,
        "need {wanted} file descriptors, the hard limit allows {soft}"
    );
}

/// What a slow client's connection looks like from the client's side now.
#[derive(Debug, PartialEq, Eq)]
enum Peer {
    /// Nothing to read yet: the server still holds the connection open.
    Open,
    /// The server answered, with this status line.
    Answered(String),
    Closed,
}

fn peek(s: &mut TcpStream) -> Peer {
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => Peer::Closed,
        Ok(n) => Peer::Answered(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        ),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Peer::Open,
        Err(_) => Peer::Closed,
    }
}

/// Opens `n` connections from several threads (fast, so that they overlap) and sends
/// each `start`; the sockets are non-blocking for `peek`.
fn open_many(addr: SocketAddr, n: usize, start: &[u8]) -> Vec<TcpStream> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(move || {
                    (0..n / 8)
                        .map(|_| {
                            let mut c = TcpStream::connect(addr).unwrap();
                            c.write_all(start).unwrap();
                            c.set_nonblocking(true).unwrap();
                            c
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn push(app: &TestApp, n: usize) -> Response {
    push_generic(app, "ci", "refs/heads/main", BEFORE, &format!("{n:040x}"))
}

#[test]
fn two_thousand_slowloris_connections_do_not_keep_signed_pushes_out() {
    // Two sockets per slow client (ours and the server's), and room for other tests.
    raise_fd_limit(5 * SLOW as u64);
    let app = TestApp::spawn(&standard_config());
    // Slow heads: a request line and a header, then one more header line at a time.
    let mut slow_heads = open_many(app.addr, SLOW, b"POST /hooks/ci HTTP/1.1\r\nHost: slow\r\n");
    // Slow bodies: a whole head announcing 60000 bytes, then one byte at a time.
    let mut slow_bodies = open_many(
        app.addr,
        SLOW,
        b"POST /hooks/ci HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{",
    );
    assert_eq!((slow_heads.len(), slow_bodies.len()), (SLOW, SLOW));
    let mut dripping: Vec<(bool, TcpStream)> = slow_heads
        .iter()
        .map(|s| (true, s.try_clone().unwrap()))
        .chain(slow_bodies.iter().map(|s| (false, s.try_clone().unwrap())))
        .collect();
    let stop = AtomicBool::new(false);

    std::thread::scope(|scope| {
        // Every ~100 ms each slow client sends a little more, as slowloris does, until the
        // server drops it (its write fails) or the test is over; for at most a minute.
        let dripper = scope.spawn(|| {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) && round < 600 && !dripping.is_empty() {
                round += 1;
                let line = format!("X-Slow-{round}: x\r\n");
                dripping.retain_mut(|(head, s)| {
                    let more: &[u8] = if *head { line.as_bytes() } else { b" " };
                    match s.write_all(more) {
                        Ok(()) => true,
                        Err(e) => e.kind() == ErrorKind::WouldBlock,
                    }
                });
                std::thread::sleep(Duration::from_millis(100));
            }
        });

        // A signed push gets in while the slow bodies are all held open (they have the
        // 30 s body deadline, far more than one push takes) ...
        let first = push(&app, 1);
        assert_eq!(first.status, 202, "{}", first.body);
        let open = slow_bodies
            .iter_mut()
            .map(peek)
            .filter(|p| *p == Peer::Open)
            .count();
        assert_eq!(open, SLOW, "slow bodies were dropped before the push");
        // ... and so do more, from several senders at once.
        std::thread::scope(|senders| {
            for t in 0..4 {
                let app = &app;
                senders.spawn(move || {
                    for i in 0..5 {
                        let res = push(app, 100 + t * 10 + i);
                        assert_eq!(res.status, 202, "{}", res.body);
                    }
                });
            }
        });

        // The server drops every slow head by itself (actix's client request timeout):
        // a request that never finishes its head does not hold a connection forever.
        // Those it answers get a 4xx (408 Request Timeout, or 431 for too many headers).
        let mut answers = Vec::new();
        let mut pending: Vec<&mut TcpStream> = slow_heads.iter_mut().collect();
        wait_for(
            "the server to drop every slow head",
            Duration::from_secs(60),
            || {
                pending.retain_mut(|s| match peek(s) {
                    Peer::Open => true,
                    Peer::Answered(line) => {
                        answers.push(line);
                        false
                    }
                    Peer::Closed => false,
                });
                pending.is_empty().then_some(())
            },
        );
        stop.store(true, Ordering::Relaxed);
        dripper.join().unwrap();
        for line in &answers {
            let status: u16 = line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"));
            assert!((400..500).contains(&status), "{line}");
        }
    });
    drop(slow_bodies);

    // Still serving, and every accepted push is a job.
    assert_eq!(push(&app, 999).status, 202);
    assert_eq!(app.jobs().len(), 22);
}

/// Found by the test above: a client that sent a whole head and then too little of the
/// body it announced held its connection (and a file descriptor) for as long as it
/// liked, unauthenticated, as actix has no deadline for a request body. A few hundred
/// such clients exhausted a daemon's descriptors (the systemd default soft limit is
/// 1024), after which actix logged "Too many open files" and accepted nothing, signed
/// pushes included. The body must arrive within a deadline (30 s in `hooks.rs`); this
/// test gives the server 90 s to drop both kinds.
#[test]
fn a_request_body_that_never_arrives_does_not_hold_its_connection_forever() {
    let app = TestApp::spawn(&standard_config());
    let head: &[u8] =
        b"POST /hooks/ci HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{";
    let mut idle = open_many(app.addr, 8, head);
    let mut dripping = open_many(app.addr, 8, head);
    let mut clients: Vec<(bool, &mut TcpStream)> = idle
        .iter_mut()
        .map(|s| (false, s))
        .chain(dripping.iter_mut().map(|s| (true, s)))
        .collect();
    let mut answers = Vec::new();
    wait_for(
        "the server to drop connections whose body never arrives",
        Duration::from_secs(90),
        || {
            clients.retain_mut(|(drips, s)| match peek(s) {
                Peer::Open => {
                    // The dripping half sends one more byte every poll (~20 ms).
                    if *drips {
                        let _ = s.write_all(b" ");
                    }
                    true
                }
                Peer::Answered(line) => {
                    answers.push(line);
                    false
                }
                Peer::Closed => false,
            });
            clients.is_empty().then_some(())
        },
    );
    for line in &answers {
        assert!(line.contains(" 408 ") || line.contains(" 400 "), "{line}");
    }
    assert_eq!(push(&app, 1).status, 202);
}
