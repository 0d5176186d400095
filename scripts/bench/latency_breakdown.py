#!/usr/bin/env python3
"""Splits each push-to-deploy latency run of scripts/bench.sh into its stages, from the
timestamps deployhook itself logs. Prints key=value lines for results.env.

  latency_breakdown.py DAEMON_LOG JOB_LOG_DIR STAMP_FILE RUNS_FILE

RUNS_FILE: one "i t0 sha" line per run (t0: unix time just before the request was sent).
Stages: accept = request sent -> "job queued" logged (verify, parse, durable commit);
claim = -> "job started" (worker woken, job claimed); checkout = -> "checked out" in the
job log (fetch + checkout); spawn = -> the command's first line ran (supervisor, confine,
exec). A stage whose log line is not found is left out.
"""
import os
import re
import sys
from datetime import datetime, timezone

TS = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z"


def epoch(ts):
    if "." in ts:
        head, frac = ts.split(".")
        frac = (frac + "000000")[:6]
        ts = f"{head}.{frac}"
        fmt = "%Y-%m-%dT%H:%M:%S.%f"
    else:
        fmt = "%Y-%m-%dT%H:%M:%S"
    return datetime.strptime(ts, fmt).replace(tzinfo=timezone.utc).timestamp()


def main(daemon_log, logs_dir, stamp_file, runs_file):
    with open(daemon_log, errors="replace") as f:
        daemon = f.read()
    stamps = {}
    with open(stamp_file) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                stamps.setdefault(parts[1], float(parts[0]))
    with open(runs_file) as f:
        runs = [line.split() for line in f if line.strip()]
    for i, t0, sha in runs:
        t0 = float(t0)
        out = {}
        m = re.search(TS + r"[^\n]*job queued[^\n]*delivery=lat-" + re.escape(i) + r" job=(\d+)", daemon)
        if not m:
            continue
        queued, job = epoch(m.group(1)), m.group(2)
        out["accept"] = queued - t0
        # job ids start again in each state_dir: look only after this run's "job queued"
        m = re.compile(TS + r"[^\n]*job started job=" + job + r"\b").search(daemon, m.end())
        started = epoch(m.group(1)) if m else None
        if started:
            out["claim"] = started - queued
        checked = None
        try:
            with open(os.path.join(logs_dir, f"{job}.log"), errors="replace") as f:
                m = re.search(TS + r" job\| checked out", f.read())
                checked = epoch(m.group(1)) if m else None
        except OSError:
            pass
        if checked and started:
            out["checkout"] = checked - started
        if checked and sha in stamps:
            out["spawn"] = stamps[sha] - checked
        for k, v in out.items():
            print(f"dh_lat_{k}_ms_{i}={v * 1000:.1f}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
