#!/usr/bin/env python3
"""Signed GitHub push deliveries for scripts/bench.sh (standard library only).

The body is tests/fixtures/github/push.json, compacted, with `before`/`after` set to real
commits of the benchmark repository and one extra trailing field, "bench_seq", that makes
every body distinct (deployhook refuses a body it has already accepted). Signatures are
HMAC-SHA256 of the exact body, as GitHub sends them in X-Hub-Signature-256.

  payload.py wrk-data DIR N SECRET BEFORE AFTER [TAG]
      DIR/prefix, DIR/suffix: body = prefix + str(seq) + suffix, for seq in 0..N-1
      (bench_seq is TAG + seq: another TAG gives bodies no other run has sent)
      DIR/sigs: N hex signatures of 64 characters each, back to back (no separators)
      DIR/bad: one body with a wrong signature (for the reject test): line 1 the header
      value, then the body
  payload.py push URL SECRET BEFORE AFTER DELIVERY [TIMEOUT]
      sends one push; prints "<status or timeout> <unix time just before sending> <answered>"
  payload.py burst URL SECRET SHAS_FILE THREADS PREFIX
      sends one push per line of SHAS_FILE ("before after"), in that order, spread over
      THREADS keep-alive connections; prints "elapsed <s>" and "status <code> <count>"
"""
import hashlib
import hmac
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "..", "tests", "fixtures", "github", "push.json")
PLACEHOLDER = "@@SEQ@@"


def body_parts(before, after):
    with open(FIXTURE) as f:
        push = json.load(f)
    push["ref"] = "refs/heads/main"
    push["before"] = before
    push["after"] = after
    push["head_commit"]["id"] = after
    push["compare"] = f"https://github.com/acme/website/compare/{before[:12]}...{after[:12]}"
    push["bench_seq"] = PLACEHOLDER
    text = json.dumps(push, separators=(",", ":"))
    prefix, suffix = text.split(json.dumps(PLACEHOLDER))
    return (prefix + '"').encode(), ('"' + suffix).encode()


def body(before, after, seq):
    prefix, suffix = body_parts(before, after)
    return prefix + str(seq).encode() + suffix


def sign(secret, data):
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def wrk_data(out, n, secret, before, after, tag=""):
    os.makedirs(out, exist_ok=True)
    prefix, suffix = body_parts(before, after)
    prefix += tag.encode()
    with open(os.path.join(out, "prefix"), "wb") as f:
        f.write(prefix)
    with open(os.path.join(out, "suffix"), "wb") as f:
        f.write(suffix)
    base = hmac.new(secret.encode(), prefix, hashlib.sha256)
    with open(os.path.join(out, "sigs"), "wb") as f:
        chunk = []
        for seq in range(n):
            h = base.copy()
            h.update(str(seq).encode() + suffix)
            chunk.append(h.hexdigest())
            if len(chunk) == 10000:
                f.write("".join(chunk).encode())
                chunk = []
        f.write("".join(chunk).encode())
    bad = prefix + b"0" + suffix
    with open(os.path.join(out, "bad"), "wb") as f:
        f.write(b"sha256=" + sign(secret + "-wrong", bad).encode() + b"\n" + bad)
    print(len(prefix) + len(str(n - 1)) + len(suffix))


def headers(secret, data, delivery):
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + sign(secret, data),
    }


def push(url, secret, before, after, delivery, timeout="30"):
    u = urllib.parse.urlsplit(url)
    data = body(before, after, delivery)
    hdrs = headers(secret, data, delivery)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=float(timeout))
    conn.connect()
    t0 = time.time()
    try:
        conn.request("POST", u.path, data, hdrs)
        resp = conn.getresponse()
        resp.read()
        status = resp.status
    except TimeoutError:
        status = "timeout"
    print(status, f"{t0:.6f}", f"{time.time():.6f}")


def burst(url, secret, shas_file, threads, prefix):
    u = urllib.parse.urlsplit(url)
    with open(shas_file) as f:
        pairs = [line.split() for line in f if line.strip()]
    bodies = []
    for i, (before, after) in enumerate(pairs):
        delivery = f"{prefix}-{i}"
        data = body(before, after, delivery)
        bodies.append((data, headers(secret, data, delivery)))
    statuses = Counter()
    lock = threading.Lock()
    next_index = [0]
    conns = []
    for _ in range(threads):
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        c.connect()
        conns.append(c)
    start = threading.Barrier(threads + 1)

    def run(conn):
        start.wait()
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= len(bodies):
                return
            data, hdrs = bodies[i]
            try:
                conn.request("POST", u.path, data, hdrs)
                resp = conn.getresponse()
                resp.read()
                code = resp.status
            except Exception as e:  # counted, the script fails on it
                code = f"error:{type(e).__name__}"
                conn.close()
            with lock:
                statuses[code] += 1

    workers = [threading.Thread(target=run, args=(c,)) for c in conns]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.time()
    for w in workers:
        w.join()
    print(f"elapsed {time.time() - t0:.3f}")
    for code, count in sorted(statuses.items(), key=str):
        print(f"status {code} {count}")


def main(argv):
    cmd = argv[1]
    if cmd == "wrk-data":
        wrk_data(argv[2], int(argv[3]), argv[4], argv[5], argv[6], *argv[7:8])
    elif cmd == "push":
        push(*argv[2:8])
    elif cmd == "burst":
        burst(argv[2], argv[3], argv[4], int(argv[5]), argv[6])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
