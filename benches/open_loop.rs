//! An open-loop sender: distinct, correctly signed GitHub pushes at a fixed rate, each
//! answer timed from its *scheduled* send time (so waiting behind a stall counts, unlike
//! wrk's closed loop), over a pool of keep-alive connections; and the fsync latency of a
//! folder, the disk's floor for a durable answer. Run by `scripts/bench-open-loop.sh`.
//!
//!   cargo bench --bench open_loop -- send ADDR HOOK SECRET RATE SECONDS [--forged] [--tag T]
//!       [--shas BEFORE AFTER]
//!   cargo bench --bench open_loop -- fsync DIR COUNT
//!
//! Prints one line of `key=value` pairs: sent, ok (2xx or the expected 401), other, p50,
//! p99, p999, max (milliseconds).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Connections kept open to the daemon; enough that a 1,000/s schedule never waits for
/// a free one unless the daemon stalls.
const CONNECTIONS: usize = 48;

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(secret).unwrap();
    m.update(body);
    format!("sha256={}", hex(&m.finalize().into_bytes()))
}

/// A 7 KB GitHub push (the test fixture) made distinct by `seq`, pushing `shas`
/// (before, after) if given.
fn body(template: &str, tag: &str, seq: usize, shas: Option<(&str, &str)>) -> Vec<u8> {
    let mut push: serde_json::Value = serde_json::from_str(template).unwrap();
    push["ref"] = "refs/heads/main".into();
    if let Some((before, after)) = shas {
        push["before"] = before.into();
        push["after"] = after.into();
        push["head_commit"]["id"] = after.into();
    }
    push["bench_seq"] = format!("{tag}{seq}").into();
    push.to_string().into_bytes()
}

/// Sends one request on `conn` and reads the answer; its status.
fn exchange(conn: &mut BufReader<TcpStream>, request: &[u8]) -> std::io::Result<u16> {
    conn.get_mut().write_all(request)?;
    let mut status_line = String::new();
    conn.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut rest = vec![0u8; length];
    conn.read_exact(&mut rest)?;
    Ok(status)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn send(args: &[String]) {
    let [addr, hook, secret, rate, seconds, rest @ ..] = args else {
        panic!("send ADDR HOOK SECRET RATE SECONDS [--forged] [--tag T] [--shas BEFORE AFTER]");
    };
    let shas = rest
        .iter()
        .position(|a| a == "--shas")
        .map(|i| (rest[i + 1].as_str(), rest[i + 2].as_str()));
    let forged = rest.iter().any(|a| a == "--forged");
    let tag = rest
        .iter()
        .position(|a| a == "--tag")
        .and_then(|i| rest.get(i + 1))
        .cloned()
        .unwrap_or_default();
    let rate: f64 = rate.parse().unwrap();
    let seconds: f64 = seconds.parse().unwrap();
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let total = (rate * seconds) as usize;
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github/push.json"
    ))
    .unwrap();
    // Every request is made before the clock starts: the sender's own work is not timed.
    let key = if forged {
        b"not the secret".to_vec()
    } else {
        secret.as_bytes().to_vec()
    };
    let requests: Vec<Vec<u8>> = (0..total)
        .map(|seq| {
            let b = body(&template, &tag, seq, shas);
            let mut r = format!(
                "POST /hooks/{hook} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: open-loop-{tag}{seq}\r\nX-Hub-Signature-256: {}\r\nContent-Length: {}\r\n\r\n",
                signature(&key, &b),
                b.len()
            )
            .into_bytes();
            r.extend_from_slice(&b);
            r
        })
        .collect();
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let start = Instant::now() + Duration::from_millis(200);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (requests, next, results, addr) = (
                Arc::clone(&requests),
                Arc::clone(&next),
                Arc::clone(&results),
                addr.clone(),
            );
            std::thread::spawn(move || {
                let mut conn = BufReader::new(TcpStream::connect(&addr).unwrap());
                conn.get_ref().set_nodelay(true).unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= requests.len() {
                        return;
                    }
                    #[expect(clippy::cast_possible_truncation)]
                    let due = start + interval * (i as u32);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let status = exchange(&mut conn, &requests[i]).unwrap_or_else(|_| {
                        conn = BufReader::new(TcpStream::connect(&addr).unwrap());
                        0
                    });
                    let took = Instant::now().duration_since(due).as_secs_f64() * 1000.0;
                    results.lock().unwrap().push((status, took));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let results = results.lock().unwrap();
    let expected = if forged { 401 } else { 202 };
    let ok = results.iter().filter(|(s, _)| *s == expected).count();
    let mut times: Vec<f64> = results.iter().map(|(_, t)| *t).collect();
    times.sort_by(f64::total_cmp);
    println!(
        "sent={} ok={ok} other={} p50={:.2} p99={:.2} p999={:.2} max={:.2}",
        results.len(),
        results.len() - ok,
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        percentile(&times, 0.999),
        times.last().copied().unwrap_or(f64::NAN),
    );
}

fn fsync(args: &[String]) {
    let [dir, count] = args else {
        panic!("fsync DIR COUNT");
    };
    let count: usize = count.parse().unwrap();
    let path = std::path::Path::new(dir).join("fsync-probe");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = [7u8; 4096];
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        f.write_all(&block).unwrap();
        f.sync_all().unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    drop(f);
    let _ = std::fs::remove_file(path);
    times.sort_by(f64::total_cmp);
    println!(
        "fsyncs={count} p50={:.3} p99={:.3} max={:.3}",
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or(f64::NAN)
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("send") => send(&args[1..]),
        Some("fsync") => fsync(&args[1..]),
        _ => eprintln!(
            "usage: open_loop send ADDR HOOK SECRET RATE SECONDS [--forged] | fsync DIR COUNT"
        ),
    }
}
