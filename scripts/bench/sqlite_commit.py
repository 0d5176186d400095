#!/usr/bin/env python3
"""What a durable SQLite commit costs on one disk, by how many pages it writes.

Issue 15's open-loop targets allow a 202 "two fsyncs" over the forged path; a delivery's
commit writes 13-14 WAL frames (one per b-tree page it changes), not one. This measures,
on the disk of DIR, the commit time of a WAL, synchronous=FULL transaction that inserts
one row into each of N tables with an index (2 N pages changed, plus the commit frame),
one commit a millisecond, next to a plain fsync of a 4 KiB append. No deployhook in it:
it says what the disk itself charges per page.

    python3 scripts/bench/sqlite_commit.py DIR [COMMITS]
"""
import os
import sqlite3
import struct
import sys
import tempfile
import time


def quantiles(ts):
    ts = sorted(ts)
    n = len(ts)
    return ts[n // 2] * 1e3, ts[n * 99 // 100] * 1e3, ts[-1] * 1e3


def frames_per_commit(wal):
    """Frames in the WAL file divided by its commit frames (those with a db size)."""
    data = open(wal, "rb").read()
    if len(data) < 32:
        return 0.0
    page = struct.unpack(">I", data[8:12])[0]
    frames = commits = 0
    off = 32
    while off + 24 + page <= len(data):
        frames += 1
        if struct.unpack(">I", data[off + 4 : off + 8])[0]:
            commits += 1
        off += 24 + page
    return frames / commits if commits else 0.0


def commit_cost(dir, tables, commits):
    with tempfile.TemporaryDirectory(dir=dir) as d:
        path = os.path.join(d, "t.db")
        c = sqlite3.connect(path, isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")
        # No checkpoint during the run: only the commits' own writes are timed.
        c.execute("PRAGMA wal_autocheckpoint=0")
        for k in range(tables):
            c.execute(f"CREATE TABLE t{k} (id INTEGER PRIMARY KEY, v BLOB)")
            c.execute(f"CREATE INDEX t{k}_v ON t{k} (v)")
        ts = []
        for _ in range(commits):
            c.execute("BEGIN IMMEDIATE")
            for k in range(tables):
                c.execute(f"INSERT INTO t{k} (v) VALUES (?)", (os.urandom(100),))
            t = time.perf_counter()
            c.execute("COMMIT")
            ts.append(time.perf_counter() - t)
            time.sleep(0.001)
        frames = frames_per_commit(path + "-wal")
        c.close()
        return frames, quantiles(ts)


def fsync_cost(dir, n):
    fd, path = tempfile.mkstemp(dir=dir)
    try:
        ts = []
        block = b"x" * 4096
        for _ in range(n):
            os.write(fd, block)
            t = time.perf_counter()
            os.fsync(fd)
            ts.append(time.perf_counter() - t)
            time.sleep(0.001)
        return quantiles(ts)
    finally:
        os.close(fd)
        os.unlink(path)


def main():
    dir = sys.argv[1]
    commits = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
    p50, p99, mx = fsync_cost(dir, commits)
    print("| commit | WAL frames | p50 ms | p99 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| fsync of a 4 KiB append | | {p50:.3f} | {p99:.3f} | {mx:.3f} |")
    for tables in (1, 3, 7, 10):
        frames, (p50, p99, mx) = commit_cost(dir, tables, commits)
        print(f"| {tables} rows, {2 * tables} b-trees | {frames:.1f} | {p50:.3f} | {p99:.3f} | {mx:.3f} |")


if __name__ == "__main__":
    main()
