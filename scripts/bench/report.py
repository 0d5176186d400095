#!/usr/bin/env python3
"""Writes benches/RESULTS.md from the key=value file scripts/bench.sh fills during its run,
and refreshes the figures block of benches/README.md (between the bench:figures markers).
Every number written comes from that file: nothing here is measured or remembered.

  report.py RESULTS_ENV OUT_MD [README_MD]
"""
import re
import statistics
import sys


def load(path):
    values, failures = {}, []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" not in line:
                continue
            key, value = line.split("=", 1)
            if key == "failure":
                failures.append(value)
            else:
                values[key] = value
    return values, failures


class R:
    def __init__(self, values):
        self.v = values

    def s(self, key, default="n/a"):
        return self.v.get(key, default)

    def f(self, key):
        try:
            return float(self.v[key])
        except (KeyError, ValueError):
            return None

    def rps(self, tag):
        n, us = self.f(f"{tag}_requests"), self.f(f"{tag}_duration_us")
        return n / (us / 1e6) if n is not None and us else None


def fmt(x, digits=0, unit=""):
    if x is None:
        return "n/a"
    if digits == 0:
        return f"{x:,.0f}{unit}"
    return f"{x:,.{digits}f}{unit}"


def ms(us):
    if us is None:
        return "n/a"
    ms_ = us / 1000
    return f"{ms_:.2f} ms" if ms_ < 10 else f"{ms_:,.1f} ms"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.{digits}f}×"


def mib(kb):
    return "n/a" if kb is None else f"{kb / 1024:,.1f} MiB"


def status_summary(r, tag):
    codes = sorted(k[len(tag) + 8:] for k in r.v if k.startswith(f"{tag}_status_"))
    parts = [f"{c}×{int(r.f(f'{tag}_status_{c}')):,}" for c in codes]
    errs = sum(int(r.f(f"{tag}_errors_{e}") or 0) for e in ("connect", "read", "write", "timeout"))
    if errs:
        parts.append(f"socket errors×{errs:,}")
    return ", ".join(parts) or "none"


def machine_rows(w, r, scenario):
    """wrk's CPU and the whole machine's, during each daemon's run: how contended it was."""
    cells = {}
    for d in ("dh", "wh"):
        tag = f"{d}_{scenario}"
        busy, total = r.f(f"{tag}_machine_busy_s"), r.f(f"{tag}_machine_total_s")
        wrk = r.f(f"{tag}_wrk_cpu_s")
        own = sum(x or 0 for x in (r.f(f"{tag}_cpu_s"), r.f(f"{tag}_children_cpu_s")))
        cells[d] = (
            fmt(wrk, 2, " s"),
            "n/a" if busy is None or not total else f"{busy:.1f} of {total:.1f} core-s ({busy / total:.0%})",
            "n/a" if busy is None or wrk is None else fmt(max(busy - own - wrk, 0), 2, " s"),
        )
    w(f"| wrk's own CPU (same cores) | {cells['dh'][0]} | {cells['wh'][0]} | |")
    w(f"| whole machine busy | {cells['dh'][1]} | {cells['wh'][1]} | |")
    w(f"| CPU of everything else on the machine (other users, samplers) | {cells['dh'][2]} | {cells['wh'][2]} | |")


def yes(ok):
    return "**met**" if ok else "**missed**"


def pg_section(w, r, sqlite_rps, wh_rps):
    """Section 6: ingest on the PostgreSQL store, one replica and two, next to SQLite."""
    if r.f("dh_pg1_requests") is None:
        return
    one = r.rps("dh_pg1")
    a, b = r.rps("dh_pg2a"), r.rps("dh_pg2b")
    two = a + b if None not in (a, b) else None
    w(f"## 6. Ingest on PostgreSQL: {r.s('conns')} connections, {r.s('duration')} s")
    w("")
    w(f"The same distinct signed pushes to `deployhook serve` with `[store] backend = \"postgres\"`: "
      f"{r.s('pg_version')}, a throwaway cluster on a unix socket in the run's temp dir, on the same "
      f"disk, default settings (`fsync` and `synchronous_commit` on, so a 202 means committed). "
      f"Two replicas: two processes on one database, each with its own `state_dir` and port, "
      f"{int((r.f('conns') or 0) // 2)} of the wrk connections to each, at the same time.")
    w("")
    w("| | requests/s | vs SQLite (section 1) | vs webhook | p50 | p99 | max | answers |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    w(f"| SQLite, one process | {fmt(sqlite_rps)} | 1.00× | {ratio(sqlite_rps, wh_rps)} | "
      f"{ms(r.f('dh_ingest_p50_us'))} | {ms(r.f('dh_ingest_p99_us'))} | {ms(r.f('dh_ingest_max_us'))} | "
      f"{status_summary(r, 'dh_ingest')} |")
    w(f"| PostgreSQL, one replica | {fmt(one)} | {ratio(one, sqlite_rps)} | {ratio(one, wh_rps)} | "
      f"{ms(r.f('dh_pg1_p50_us'))} | {ms(r.f('dh_pg1_p99_us'))} | {ms(r.f('dh_pg1_max_us'))} | "
      f"{status_summary(r, 'dh_pg1')} |")
    for t, name in (("dh_pg2a", "replica a"), ("dh_pg2b", "replica b")):
        x = r.rps(t)
        w(f"| PostgreSQL, two replicas: {name} | {fmt(x)} | | | {ms(r.f(t + '_p50_us'))} | "
          f"{ms(r.f(t + '_p99_us'))} | {ms(r.f(t + '_max_us'))} | {status_summary(r, t)} |")
    w(f"| PostgreSQL, two replicas together | {fmt(two)} | {ratio(two, sqlite_rps)} | {ratio(two, wh_rps)} | | | | |")
    w("")
    pg2 = r.f("dh_pg2_status_202")
    w(f"**Every 202 committed.** After each run the replicas were killed with -9 and the database "
      f"counted the accepted deliveries with their job (committed together): one replica, "
      f"{fmt(r.f('dh_pg1_deliveries_in_db'))} for {fmt(r.f('dh_pg1_status_202'))} 202s; two "
      f"replicas, {fmt(r.f('dh_pg2_deliveries_in_db'))} for {fmt(pg2)} 202s (job rows left after "
      f"the worker's pruning: {fmt(r.f('dh_pg1_jobs_in_db'))} and {fmt(r.f('dh_pg2_jobs_in_db'))}; jobs were run by "
      f"{r.s('dh_pg2_owners')} replica(s)). The machine's CPUs were busy "
      f"{r.s('dh_pg1_machine_busy_s')} s (one replica) and {r.s('dh_pg2_machine_busy_s')} s (two) "
      f"of {fmt((r.f('duration') or 0) * (r.f('nproc') or 0))} CPU-seconds: daemon, PostgreSQL "
      f"and wrk share {r.s('nproc')} cores.")
    w("")
    w("Every job-writing transaction holds one cluster-wide advisory lock, so the replicas "
      "commit one at a time: a second replica adds capacity for HTTP, verification and "
      "parsing, and availability, not write throughput; each replica's group commit still "
      "batches the deliveries that reach it together.")
    w("")


def open_loop(r, dh_rej, dh_rps):
    """Scenario 7's figures and the issue-15 targets: at 1,000/s, p99 of a 202 within the
    forged path's p99 plus two fsync p99s, p99.9 within its p99.9 plus four; at
    saturation, ingest at least half the reject rate."""
    fs = r.f("ol_fsync_p99")
    sp99, sp999 = r.f("ol_signed_1000_p99"), r.f("ol_signed_1000_p999")
    fp99, fp999 = r.f("ol_forged_1000_p99"), r.f("ol_forged_1000_p999")
    bp99, bp999 = r.f("ol_busy_p99"), r.f("ol_busy_p999")
    lim99 = fp99 + 2 * fs if None not in (fp99, fs) else None
    lim999 = fp999 + 4 * fs if None not in (fp999, fs) else None
    return {
        "fsync": fs, "lim99": lim99, "lim999": lim999,
        "p99": sp99, "p999": sp999, "busy99": bp99, "busy999": bp999,
        "p99_ok": None not in (sp99, lim99) and sp99 <= lim99,
        "p999_ok": None not in (sp999, lim999) and sp999 <= lim999,
        "busy_ok": None not in (bp99, lim99, bp999, lim999) and bp99 <= lim99 and bp999 <= lim999,
        "share": dh_rps / dh_rej if dh_rps and dh_rej else None,
        "share_ok": bool(dh_rps and dh_rej and dh_rps >= 0.5 * dh_rej),
    }


def open_loop_section(w, r, o):
    if r.f("ol_fsync_p99") is None:
        return
    w("## 7. Open loop: answer time at a fixed rate")
    w("")
    w("`scripts/bench-open-loop.sh`, run by this script: a sender (`benches/open_loop.rs`) keeps a "
      "fixed rate of distinct, correctly signed pushes over 48 keep-alive connections and times each "
      "answer from its *scheduled* send time, so waiting behind a stall counts. The hook is paused: "
      "every push is verified, parsed, routed and committed, no job runs. The forged path (401: no "
      "parse, no store) runs at the same rate on the same daemon. The busy run sends at "
      f"{r.s('ol_busy_rate', '1000')}/s while the daemon has {fmt(r.f('ol_busy_history'))} finished jobs "
      f"(with their events and delivery records) to prune and {fmt(r.f('ol_busy_queued'))} queued jobs "
      "of another hook to run (real checkouts), released as the sender starts. Milliseconds.")
    w("")
    w("| rate | path | answers as expected | p50 | p99 | p99.9 | max |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    rates = sorted({int(k.split("_")[2]) for k in r.v if k.startswith("ol_signed_") and k.endswith("_p99")})
    for rate in rates:
        for key, what in ((f"signed_{rate}", "signed push (202)"), (f"forged_{rate}", "forged signature (401)")):
            w(f"| {rate}/s | {what} | {r.s(f'ol_{key}_ok')} of {r.s(f'ol_{key}_sent')} | {r.s(f'ol_{key}_p50')} | "
              f"{r.s(f'ol_{key}_p99')} | {r.s(f'ol_{key}_p999')} | {r.s(f'ol_{key}_max')} |")
    w(f"| {r.s('ol_busy_rate', '1000')}/s | signed push (202), while pruning and running jobs | "
      f"{r.s('ol_busy_ok')} of {r.s('ol_busy_sent')} | {r.s('ol_busy_p50')} | {r.s('ol_busy_p99')} | "
      f"{r.s('ol_busy_p999')} | {r.s('ol_busy_max')} |")
    w("")
    w(f"fsync of a 4 KiB append in `state_dir`, 2,000 times: p50 {r.s('ol_fsync_p50')} ms, p99 {r.s('ol_fsync_p99')} ms, "
      f"max {r.s('ol_fsync_max')} ms. During the busy run's {r.s('ol_seconds', '10')} s the daemon pruned "
      f"{fmt(r.f('ol_busy_pruned'))} old jobs and finished {fmt(r.f('ol_busy_finished'))} jobs.")
    w("")
    w("| at 1,000/s | measured | limit | |")
    w("| --- | ---: | ---: | --- |")
    w(f"| p99 of a 202 ≤ forged p99 + 2 fsync p99 | {fmt(o['p99'], 2)} | {fmt(o['lim99'], 2)} | {yes(o['p99_ok'])} |")
    w(f"| p99.9 of a 202 ≤ forged p99.9 + 4 fsync p99 | {fmt(o['p999'], 2)} | {fmt(o['lim999'], 2)} | {yes(o['p999_ok'])} |")
    w(f"| the same while pruning and running jobs (p99 / p99.9) | {fmt(o['busy99'], 2)} / {fmt(o['busy999'], 2)} | "
      f"{fmt(o['lim99'], 2)} / {fmt(o['lim999'], 2)} | {yes(o['busy_ok'])} |")
    share = 'n/a' if o['share'] is None else f"{100 * o['share']:.1f}%"
    w(f"| saturation: ingest ≥ 50% of reject (scenarios 1 and 2) | {share} | 50% | {yes(o['share_ok'])} |")
    w("")
    w("Ratios of the 202 to the 401 at the same rate (p99): " + ", ".join(
        f"{rate}/s {ratio(r.f(f'ol_signed_{rate}_p99'), r.f(f'ol_forged_{rate}_p99'))}" for rate in rates) + ".")
    w("")


def build(values, failures):
    r = R(values)
    out = []
    w = out.append
    dh_rps, wh_rps = r.rps("dh_ingest"), r.rps("wh_ingest")
    dh_rej, wh_rej = r.rps("dh_reject"), r.rps("wh_reject")
    dh_p99 = r.f("dh_ingest_p99_us")
    lat_runs = int(r.f("lat_runs") or 0)
    dh_lat = [r.f(f"dh_latency_ms_{i}") for i in range(1, lat_runs + 1)]
    git_lat = [r.f(f"git_latency_ms_{i}") for i in range(1, lat_runs + 1)]
    dh_lat_med = statistics.median([x for x in dh_lat if x is not None]) if any(x is not None for x in dh_lat) else None
    git_lat_med = statistics.median([x for x in git_lat if x is not None]) if any(x is not None for x in git_lat) else None
    fsyncs = r.f("dh_ingest_sys_fsync")
    fdatasyncs = r.f("dh_ingest_sys_fdatasync") or 0
    syncs = None if fsyncs is None else fsyncs + fdatasyncs
    accepted = r.f("dh_ingest_status_202")
    per_sync = accepted / syncs if syncs and accepted is not None else None
    wh200 = r.f("wh_ingest_status_200") or 0
    wh_ran = r.f("wh_ingest_commands_after_kill")
    wh_lost = (wh200 - wh_ran) if wh_ran is not None else None
    rss = {k: r.f(k) for k in values if k.endswith("_kb")}
    c0, c1, win = r.f("dh_prune_rows_at_probe"), r.f("dh_prune_rows_left"), r.f("dh_prune_window_s")
    prune_rate = (c0 - c1) / win if None not in (c0, c1, win) and win > 0 and c0 > c1 else None
    prune_total = (r.f("dh_prune_rows_before") or 0) / prune_rate if prune_rate else None

    ingest_ok = dh_rps is not None and wh_rps and dh_rps >= 10 * wh_rps
    p99_ok = dh_p99 is not None and dh_p99 < 5000
    durable_ok = (r.f("dh_ingest_jobs_created") or 0) >= (accepted or 0) and (
        r.f("dh_kill_deliveries_on_disk") or 0) >= (r.f("dh_kill_status_202") or 0) and (r.f("dh_kill_status_202") or 0) > 0
    reject_ok = dh_rej is not None and wh_rej and dh_rej >= 5 * wh_rej
    idle_ok = (rss.get("dh_rss_idle_kb") or 1e18) < (rss.get("wh_rss_idle_kb") or 0)
    warm_ok = (rss.get("dh_rss_warm_kb") or 1e18) < (rss.get("wh_rss_warm_kb") or 0)
    h1, h2 = rss.get("dh_ingest_rss_peak_first_half_kb"), rss.get("dh_ingest_rss_peak_second_half_kb")
    bounded_ok = h1 is not None and h2 is not None and h2 <= h1 * 1.10
    wh1, wh2 = rss.get("wh_ingest_rss_peak_first_half_kb"), rss.get("wh_ingest_rss_peak_second_half_kb")

    w("# Benchmark results: deployhook vs webhook")
    w("")
    w("Written by `scripts/bench.sh` from the run it just did; do not edit by hand, run it again. "
      "Ratios are `deployhook / webhook` (for latency: `deployhook / git`).")
    w("")
    if failures:
        w("**This run FAILED its correctness checks:**")
        w("")
        for f in failures:
            w(f"- {f}")
        w("")
    w("## Environment")
    w("")
    w("| | |")
    w("| --- | --- |")
    w(f"| date | {r.s('date')} |")
    w(f"| machine | {r.s('nproc')} CPUs ({r.s('cpu')}), {r.s('mem')} RAM, {r.s('kernel')} |")
    w(f"| disk | `{r.s('fs')}`; fsync of a 4 KiB append: p50 {r.s('fsync_p50_ms')} ms, p99 {r.s('fsync_p99_ms')} ms (measured by the run) |")
    w(f"| load average | {r.s('loadavg_start')} at the start, {r.s('loadavg_end')} at the end |")
    w(f"| deployhook | {r.s('dh_version')}, `cargo build --release --locked` |")
    w(f"| webhook | {r.s('wh_version')} (Debian package) |")
    w(f"| load generator | {r.s('wrk_version')}, {r.s('threads')} threads, {r.s('conns')} connections, on the same machine |")
    w(f"| other tools | {r.s('git_version')}, {r.s('python_version')} |")
    w(f"| run time | {r.s('total_s')} s in all" + (f" (of which the cargo build {r.s('build_s')} s)" if "build_s" in values else "") + " |")
    w("")
    w(f"The machine is shared and noisy: {r.s('nproc')} cores, with other people compiling Rust on it "
      "during the run (see the load average), and wrk runs on the same cores as the daemon it "
      "measures. Read absolute numbers as rough; the ratios, measured back to back under the "
      "same conditions, are the point.")
    w("")
    w("## Setup")
    w("")
    w(f"- Both daemons listen on loopback with one equivalent hook each: GitHub `X-Hub-Signature-256` "
      f"(HMAC-SHA256 of the body), branch `main`, repository `acme/website`, and a command that appends "
      f"the pushed commit to a file. webhook: `payload-hmac-sha256` + `value` match rules, the commit "
      f"passed in the environment. deployhook: `deployhook serve` with server defaults "
      f"(`keep_jobs = 100`, `queue = \"supersede\"`), `state_dir` in a temp dir. deployhook logs one "
      f"line per delivery (`info`, to a file); webhook runs without `-verbose` and logs nothing per request.")
    w(f"- Body: `tests/fixtures/github/push.json`, compacted, {r.s('body_bytes')} bytes, with a trailing "
      f"`bench_seq` field so that every request is a distinct body with its own `X-GitHub-Delivery` "
      f"(deployhook refuses replayed bodies and ids). The signatures are computed beforehand with "
      f"Python's `hmac` and read by the wrk Lua script (`scripts/bench/ingest.lua`).")
    w(f"- The repository (`clone_url`, a local bare repository): {r.s('repo_commits')} commits made with "
      f"`git fast-import`, {r.s('repo_files')} files, {r.s('repo_size')}.")
    w("")

    w("## Against the targets")
    w("")
    w("| target | measured | |")
    w("| --- | --- | --- |")
    w(f"| ingest ≥ 10× webhook's requests/s | {fmt(dh_rps)} vs {fmt(wh_rps)} req/s = {ratio(dh_rps, wh_rps)} | {yes(ingest_ok)} |")
    w(f"| ingest p99 < 5 ms | {ms(dh_p99)} | {yes(p99_ok)} |")
    w(f"| every 202 survives kill -9 | after the run: {fmt(r.f('dh_ingest_jobs_created'))} jobs created on disk for {fmt(accepted)} 202s; "
      f"killed mid-run: {fmt(r.f('dh_kill_deliveries_on_disk'))} on disk for {fmt(r.f('dh_kill_status_202'))} 202s | {yes(durable_ok)} |")
    w(f"| reject ≥ 5× webhook's requests/s | {fmt(dh_rej)} vs {fmt(wh_rej)} req/s = {ratio(dh_rej, wh_rej)} | {yes(reject_ok)} |")
    w(f"| idle RSS below webhook's | fresh: {mib(rss.get('dh_rss_idle_kb'))} vs {mib(rss.get('wh_rss_idle_kb'))} = "
      f"{ratio(rss.get('dh_rss_idle_kb'), rss.get('wh_rss_idle_kb'))}; after one deploy: {mib(rss.get('dh_rss_warm_kb'))} vs "
      f"{mib(rss.get('wh_rss_warm_kb'))} = {ratio(rss.get('dh_rss_warm_kb'), rss.get('wh_rss_warm_kb'))} | {yes(idle_ok and warm_ok)} |")
    w(f"| RSS under load bounded | peak {mib(rss.get('dh_ingest_rss_peak_kb'))}; first half {mib(h1)}, second half {mib(h2)} "
      f"(webhook: {mib(wh1)} → {mib(wh2)}) | {yes(bounded_ok)} |")
    w("")
    w("\"Bounded\" here: the peak of the second half of the ingest run is within 10% of the first half's.")
    w("")

    w(f"## 1. Ingest: distinct signed pushes, {r.s('conns')} connections, {r.s('duration')} s")
    w("")
    w("| | deployhook | webhook | deployhook / webhook |")
    w("| --- | ---: | ---: | ---: |")
    w(f"| requests/s | {fmt(dh_rps)} | {fmt(wh_rps)} | {ratio(dh_rps, wh_rps)} |")
    for p in ("p50", "p90", "p99", "max"):
        a, b = r.f(f"dh_ingest_{p}_us"), r.f(f"wh_ingest_{p}_us")
        w(f"| latency {p} | {ms(a)} | {ms(b)} | {ratio(a, b)} |")
    w(f"| answers | {status_summary(r, 'dh_ingest')} | {status_summary(r, 'wh_ingest')} | |")
    a, b = r.f("dh_ingest_cpu_s"), r.f("wh_ingest_cpu_s")
    w(f"| daemon CPU (user+sys) | {fmt(a, 2, ' s')} | {fmt(b, 2, ' s')} | {ratio(a, b)} |")
    ca = a / r.f("dh_ingest_requests") * 1e6 if a is not None and r.f("dh_ingest_requests") else None
    cb = b / r.f("wh_ingest_requests") * 1e6 if b is not None and r.f("wh_ingest_requests") else None
    w(f"| daemon CPU per request | {fmt(ca, 0, ' µs')} | {fmt(cb, 0, ' µs')} | {ratio(ca, cb)} |")
    a = r.f("dh_ingest_thread_cpu_store_writer")
    dur = (r.f("dh_ingest_duration_us") or 0) / 1e6
    w(f"| of which the `store-writer` thread (every SQLite write) | {fmt(a, 2, ' s')}"
      + (f" ({a / dur:.0%} of one core)" if a is not None and dur else "") + " | | |")
    # Linux keeps 15 bytes of a thread's name: "store-checkpoint" reads "store-checkpoin".
    ck = r.f("dh_ingest_thread_cpu_store_checkpoin") or 0.0
    w(f"| of which the `store-checkpoint` thread (copying the WAL into the database) | {fmt(ck, 2, ' s')} | | |")
    a = r.f("dh_ingest_thread_cpu_actix_rt_system")
    w(f"| of which the HTTP workers (`actix-rt`) | {fmt(a, 2, ' s')} | | |")
    tot, sw_, ax = r.f("dh_ingest_cpu_s"), r.f("dh_ingest_thread_cpu_store_writer"), r.f("dh_ingest_thread_cpu_actix_rt_system")
    rest = tot - sw_ - ax - ck if None not in (tot, sw_, ax) else None
    w(f"| of which every other thread (worker: git checkouts, spawning commands) | {fmt(rest, 2, ' s')} | | |")
    a, b = r.f("dh_ingest_children_cpu_s"), r.f("wh_ingest_children_cpu_s")
    w(f"| CPU of reaped child processes (commands, supervisors) | {fmt(a, 2, ' s')} | {fmt(b, 2, ' s')} | |")
    machine_rows(w, r, "ingest")
    w(f"| deploy commands run during the run | {fmt(r.f('dh_ingest_commands_at_end'))} (supersede: the newest push wins) | "
      f"{fmt(r.f('wh_ingest_commands_at_end'))} | |")
    w("")
    w("deployhook answers 202 only once the job is committed to SQLite (WAL, `synchronous=FULL`); "
      "webhook answers 200 before its command has run, and runs it in the background.")
    w("")
    w("**Durability.**")
    w("")
    w("| | |")
    w("| --- | --- |")
    w(f"| deployhook: 202s wrk saw | {fmt(accepted)} |")
    w(f"| after kill -9 and a restart on the same `state_dir`: jobs created / accepted deliveries on disk | "
      f"{fmt(r.f('dh_ingest_jobs_created'))} / {fmt(r.f('dh_ingest_deliveries_on_disk'))}"
      + (" (more than the 202s: requests still in flight when wrk stopped were committed too)"
         if (r.f('dh_ingest_jobs_created') or 0) > (accepted or 0) else "")
      + f"; job rows left after the worker's pruning: {fmt(r.f('dh_ingest_jobs_rows'))} |")
    w(f"| kill -9 3 s into a 6 s run: 202s wrk saw / deliveries on disk after restart | "
      f"{fmt(r.f('dh_kill_status_202'))} / {fmt(r.f('dh_kill_deliveries_on_disk'))} |")
    w(f"| jobs that ended after each restart | after the run: {r.s('dh_restart1_jobs') or 'none'}; "
      f"mid-run: {r.s('dh_restart2_jobs') or 'none'} |")
    w(f"| webhook: 200s wrk saw / commands run by the end of the run / 5 s later / after kill -9 | "
      f"{fmt(wh200)} / {fmt(r.f('wh_ingest_commands_at_end'))} / {fmt(r.f('wh_ingest_commands_5s_later'))} / "
      f"{fmt(wh_ran)}: **{fmt(wh_lost)} accepted deliveries never ran** |")
    w("")
    if syncs is not None:
        w(f"**Group commit** (syscalls of the deployhook process during the run, `perf stat`): "
          f"{fmt(syncs)} fsync/fdatasync calls and {fmt(r.f('dh_ingest_sys_pwrite64'))} `pwrite64` for "
          f"{fmt(accepted)} accepted deliveries: {fmt(per_sync, 1)} deliveries per sync on average "
          f"(the count includes the syncs of claiming and finishing the jobs the worker ran).")
        w("")
    wait, st = r.f("dh_prune_probe_wait_s"), r.s("dh_prune_probe_status")
    w(f"**After a flood.** With the default `keep_jobs = 100`, the worker deletes the flood's "
      f"superseded jobs once it is idle. {fmt(r.f('dh_prune_rows_before'))} jobs were on disk; once "
      f"the prune had started ({fmt(r.f('dh_prune_rows_at_probe'))} left), a valid push was answered "
      f"`{st}` after {fmt(wait, 3, ' s')}"
      + (" (no answer within 60 s)" if st == "timeout" else "")
      + (f", and {fmt(r.f('dh_prune_rows_left'))} jobs were on disk then." ))
    if prune_rate and wait is not None and wait > 1:
        w(f"The prune deleted about {prune_rate:,.0f} rows/s meanwhile on the store's only writer "
          f"thread; at that rate the whole prune holds deliveries up for about {prune_total:.0f} s.")
    w("")

    w(f"## 2. Reject: the same push with a wrong signature, {r.s('conns')} connections, {r.s('reject_duration')} s")
    w("")
    w("| | deployhook | webhook | deployhook / webhook |")
    w("| --- | ---: | ---: | ---: |")
    w(f"| requests/s | {fmt(dh_rej)} | {fmt(wh_rej)} | {ratio(dh_rej, wh_rej)} |")
    for p in ("p50", "p99"):
        a, b = r.f(f"dh_reject_{p}_us"), r.f(f"wh_reject_{p}_us")
        w(f"| latency {p} | {ms(a)} | {ms(b)} | {ratio(a, b)} |")
    w(f"| answers | {status_summary(r, 'dh_reject')} | {status_summary(r, 'wh_reject')} | |")
    a, b = r.f("dh_reject_cpu_s"), r.f("wh_reject_cpu_s")
    w(f"| daemon CPU (user+sys) | {fmt(a, 2, ' s')} | {fmt(b, 2, ' s')} | {ratio(a, b)} |")
    ca = a / r.f("dh_reject_requests") * 1e6 if a is not None and r.f("dh_reject_requests") else None
    cb = b / r.f("wh_reject_requests") * 1e6 if b is not None and r.f("wh_reject_requests") else None
    w(f"| daemon CPU per request | {fmt(ca, 0, ' µs')} | {fmt(cb, 0, ' µs')} | {ratio(ca, cb)} |")
    machine_rows(w, r, "reject")
    w("")
    w(f"webhook's answer to a forged signature: `{r.s('wh_reject_answer').strip()}`.")
    w("")

    w("## 3. Memory (VmRSS of the daemon process; its commands are not included)")
    w("")
    w("| | deployhook | webhook | deployhook / webhook |")
    w("| --- | ---: | ---: | ---: |")
    rows = [
        ("idle, fresh start", "dh_rss_idle_kb", "wh_rss_idle_kb"),
        ("idle, after the first deploy", "dh_rss_warm_kb", "wh_rss_warm_kb"),
        ("peak during reject", "dh_reject_rss_peak_kb", "wh_reject_rss_peak_kb"),
        ("after reject", "dh_rss_after_reject_kb", "wh_rss_after_reject_kb"),
        ("peak during ingest", "dh_ingest_rss_peak_kb", "wh_ingest_rss_peak_kb"),
        ("  peak, first half of the ingest run", "dh_ingest_rss_peak_first_half_kb", "wh_ingest_rss_peak_first_half_kb"),
        ("  peak, second half of the ingest run", "dh_ingest_rss_peak_second_half_kb", "wh_ingest_rss_peak_second_half_kb"),
        ("right after ingest", "dh_rss_after_ingest_kb", "wh_rss_after_ingest_kb"),
    ]
    for label, a, b in rows:
        w(f"| {label} | {mib(rss.get(a))} | {mib(rss.get(b))} | {ratio(rss.get(a), rss.get(b))} |")
    w(f"| deployhook restarted on the flooded `state_dir` | {mib(rss.get('dh_rss_restart_kb'))} | | |")
    w("")
    w("Split into anonymous (the process's own) and file-backed (its binary and shared libraries, "
      "pages the kernel can drop and re-read) memory:")
    w("")
    w("| | deployhook anon / file | webhook anon / file |")
    w("| --- | ---: | ---: |")
    for label, key in (("idle, fresh start", "rss_idle"), ("after the first deploy", "rss_warm"),
                       ("after ingest", "rss_after_ingest")):
        w(f"| {label} | {mib(rss.get(f'dh_{key}_anon_kb'))} / {mib(rss.get(f'dh_{key}_file_kb'))} | "
          f"{mib(rss.get(f'wh_{key}_anon_kb'))} / {mib(rss.get(f'wh_{key}_file_kb'))} |")
    w("")
    w("Sampled every 100 ms from `/proc/<pid>/status`.")
    w("")

    w(f"## 4. Push-to-deploy latency: one new commit on a {r.s('repo_commits')}-commit repository")
    w("")
    w("deployhook: from just before the HTTP request to the first command starting (the command writes "
      "`$EPOCHREALTIME`); it fetches incrementally into its cache and checks out the pushed commit. "
      "Baseline: `git fetch` + `git checkout <sha>` in a clone made beforehand. Each run adds one commit "
      "to the repository; the two are measured alternately on the same commit.")
    w("")
    w("| run | deployhook | git fetch + checkout | deployhook / git |")
    w("| --- | ---: | ---: | ---: |")
    for i, (a, b) in enumerate(zip(dh_lat, git_lat), 1):
        w(f"| {i} | {fmt(a, 1, ' ms')} | {fmt(b, 1, ' ms')} | {ratio(a, b)} |")
    w(f"| **median** | **{fmt(dh_lat_med, 1, ' ms')}** | **{fmt(git_lat_med, 1, ' ms')}** | **{ratio(dh_lat_med, git_lat_med)}** |")
    w("")
    w(f"deployhook's own log for the last run: \"{r.s('dh_latency_checkout_line')}\".")
    w("")
    stages = [
        ("accept", "request sent → job durably queued (HTTP, verify, parse, commit)"),
        ("claim", "queued → job started (worker woken, job claimed)"),
        ("checkout", "started → checked out (incremental fetch + checkout)"),
        ("spawn", "checked out → command running (supervisor + confine execs, then the command)"),
    ]
    if any(f"dh_lat_{k}_ms_1" in values for k, _ in stages):
        w("Where deployhook's time goes, from its own log timestamps (median over the runs; the job log "
          "has millisecond resolution):")
        w("")
        w("| stage | median | runs |")
        w("| --- | ---: | --- |")
        for k, label in stages:
            xs = [r.f(f"dh_lat_{k}_ms_{i}") for i in range(1, lat_runs + 1)]
            xs = [x for x in xs if x is not None]
            if xs:
                w(f"| {label} | {statistics.median(xs):.1f} ms | {', '.join(f'{x:.0f}' for x in xs)} |")
        w("")

    n = r.s("burst_n")
    w(f"## 5. Burst: {n} pushes to one hook (each a new commit, oldest first), command sleeps 0.2 s")
    w("")
    w("| | deployhook | webhook |")
    w("| --- | ---: | ---: |")
    w(f"| sent in | {r.s('dh_burst_elapsed_s')} s | {r.s('wh_burst_elapsed_s')} s |")
    w(f"| answers | {r.s('dh_burst_statuses')} | {r.s('wh_burst_statuses')} |")
    w(f"| deploy command runs | {r.s('dh_burst_runs')} | {r.s('wh_burst_runs')} |")
    w(f"| commit deployed last (its push's position, {n} = newest) | {r.s('dh_burst_final_index')} "
      f"({'the newest' if r.s('dh_burst_final_is_newest') == 'yes' else 'not the newest'}) | "
      f"{r.s('wh_burst_final_index')} ({'the newest' if r.s('wh_burst_final_is_newest') == 'yes' else 'not the newest'}) |")
    w(f"| push accepted last by deployhook (arrival order) | {r.s('dh_burst_last_accepted_index')} | |")
    w(f"| deployhook jobs | {r.s('dh_burst_job_states')} | |")
    w("")

    pg_section(w, r, dh_rps, wh_rps)
    ol = open_loop(r, dh_rej, dh_rps)
    open_loop_section(w, r, ol)

    w("## What this means")
    w("")
    para = []
    if dh_rps is not None and wh_rps:
        if ingest_ok:
            para.append(f"Ingest meets the 10× target ({ratio(dh_rps, wh_rps)}).")
        else:
            para.append(f"Ingest misses the 10× target: deployhook accepted {fmt(dh_rps)} durable pushes/s, "
                        f"{ratio(dh_rps, wh_rps)} webhook's {fmt(wh_rps)}/s, so it is short by a factor of "
                        f"{(10 * wh_rps) / dh_rps:.1f}.")
    if dh_p99 is not None:
        para.append(f"Its p99 is {ms(dh_p99)}, " + ("under" if p99_ok else f"{dh_p99 / 5000:.1f}× over") + " the 5 ms target.")
    conns = r.f("conns")
    if not ingest_ok and dh_rps and conns:
        # Little's law for a closed loop: every connection always has one request out.
        para.append(f"The two targets are tied together: wrk keeps all {conns:.0f} connections busy, so the "
                    f"mean latency is {conns:.0f} / requests/s ({conns / dh_rps * 1000:.1f} ms at "
                    f"{fmt(dh_rps)}/s), and a p99 under 5 ms needs more than {conns / 0.005:,.0f} "
                    f"requests/s to begin with.")
    if not ingest_ok and dh_rej and wh_rps:
        para.append(f"The reject run bounds what ingest could reach here: answering a forged push "
                    f"(HTTP, reading the body, one HMAC; no JSON, no store, no deploy) ran at "
                    f"{fmt(dh_rej)}/s, {dh_rej / wh_rps:.1f}× webhook's ingest rate, so on this machine "
                    f"10× would take a daemon whose ingest costs less than its reject path does now.")
    sw = r.f("dh_ingest_thread_cpu_store_writer")
    dur = (r.f("dh_ingest_duration_us") or 0) / 1e6
    busy, total = r.f("dh_ingest_machine_busy_s"), r.f("dh_ingest_machine_total_s")
    wrk_cpu = r.f("dh_ingest_wrk_cpu_s")
    own = (r.f("dh_ingest_cpu_s") or 0) + (r.f("dh_ingest_children_cpu_s") or 0)
    if busy is not None and total:
        para.append(f"During deployhook's run the machine was {busy / total:.0%} busy: "
                    f"deployhook and its deploys used {own:.1f} core-seconds, wrk "
                    f"{fmt(wrk_cpu, 1)}, and everything else (other people's builds) "
                    f"{fmt(max(busy - own - (wrk_cpu or 0), 0), 1)}, out of {total:.1f}."
                    + (" With the cores saturated, requests/s here measures how much CPU each daemon "
                       "gets as much as how fast it is; CPU per request is the steadier comparison: "
                       f"{fmt(r.f('dh_ingest_cpu_s') / r.f('dh_ingest_requests') * 1e6 if r.f('dh_ingest_cpu_s') and r.f('dh_ingest_requests') else None)} µs "
                       f"for deployhook against {fmt(r.f('wh_ingest_cpu_s') / r.f('wh_ingest_requests') * 1e6 if r.f('wh_ingest_cpu_s') and r.f('wh_ingest_requests') else None)} µs "
                       "for webhook (daemon threads only)." if busy / total >= 0.9 else ""))
    if sw is not None and dur:
        pw = (r.f("dh_ingest_sys_pwrite64") or 0) / accepted if accepted else None
        para.append(f"The single `store-writer` thread, which does every SQLite write in order, was on CPU "
                    f"{sw / dur:.0%} of the run"
                    + (f", writing {pw:.1f} WAL pages (`pwrite64`) per delivery, with "
                       f"{fmt(per_sync, 1)} deliveries per fsync on average" if pw and per_sync else "")
                    + (": it is not what saturates first here." if sw / dur < 0.6 else
                       ": it is close to saturation, and as one thread it is the ceiling."))
    fs99 = r.f("fsync_p99_ms")
    if fs99 is not None:
        para.append(f"Every 202 waits for at least one fsync, which took {r.s('fsync_p50_ms')} ms (p50) and "
                    f"{r.s('fsync_p99_ms')} ms (p99) on this disk during the run"
                    + (": with fsync's own p99 above 5 ms, a p99 under 5 ms is out of reach on this disk "
                       "while every 202 waits for one." if fs99 > 5 else "."))
    para.append("Every 202 was on disk after kill -9, both right after the run and in the middle of one"
                if durable_ok else "Not every 202 was found on disk after kill -9 (see the durability table)")
    if wh_lost is not None:
        para[-1] += (f"; webhook, for comparison, had answered 200 to {fmt(wh200)} pushes and run only "
                     f"{fmt(wh_ran)} of their commands when it was killed.")
    else:
        para[-1] += "."
    w(" ".join(para))
    w("")
    para = []
    if dh_rej is not None and wh_rej:
        para.append(f"Rejecting forged signatures runs at {fmt(dh_rej)}/s against webhook's {fmt(wh_rej)}/s "
                    f"({ratio(dh_rej, wh_rej)}): the 5× target is " + ("met." if reject_ok else f"missed by a factor of {(5 * wh_rej) / dh_rej:.1f}."))
    para.append(f"Idle memory: {mib(rss.get('dh_rss_idle_kb'))} fresh and {mib(rss.get('dh_rss_warm_kb'))} "
                f"after the first deploy, against webhook's {mib(rss.get('wh_rss_idle_kb'))} and "
                f"{mib(rss.get('wh_rss_warm_kb'))}: the target (below webhook) is " + ("met." if idle_ok and warm_ok else "missed."))
    para.append(f"Under load deployhook's RSS stays flat ({mib(h1)} in the first half of the ingest run, "
                f"{mib(h2)} in the second), while webhook's climbs from {mib(rss.get('wh_rss_warm_kb'))} to "
                f"{mib(rss.get('wh_ingest_rss_peak_kb'))}, holding the backlog of commands it has answered "
                f"200 for but not run yet.")
    w(" ".join(para))
    w("")
    para = []
    if dh_lat_med is not None and git_lat_med is not None:
        para.append(f"Push to deploy takes {fmt(dh_lat_med, 1)} ms (median) against {fmt(git_lat_med, 1)} ms "
                    f"for `git fetch` + `git checkout` alone ({ratio(dh_lat_med, git_lat_med)}).")
        meds = {}
        for k in ("accept", "claim", "checkout", "spawn"):
            xs = [r.f(f"dh_lat_{k}_ms_{i}") for i in range(1, lat_runs + 1)]
            xs = [x for x in xs if x is not None]
            if xs:
                meds[k] = statistics.median(xs)
        if len(meds) == 4:
            para.append(f"Only part of that is git: the median stages were {meds['accept']:.0f} ms to accept "
                        f"the push durably, {meds['claim']:.0f} ms until the worker claimed the job, "
                        f"{meds['checkout']:.0f} ms to fetch and check out, and {meds['spawn']:.0f} ms to start "
                        f"the command through the two stages of the launcher (`deployhook-sandbox`).")
    para.append(f"In the burst, deployhook ran the command {r.s('dh_burst_runs')} times and ended on push "
                f"{r.s('dh_burst_final_index')} of {n}; webhook ran it {r.s('wh_burst_runs')} times, "
                f"concurrently, and the last one to finish was push {r.s('wh_burst_final_index')}.")
    if (r.s("dh_burst_final_is_newest") == "yes"
            and r.s("dh_burst_last_accepted_index") not in ("n/a", str(n))):
        para.append(f"deployhook ended on the newest commit although the push of commit {r.s('dh_burst_last_accepted_index')} "
                    f"arrived after the push of commit {n} (the burst is sent on 32 connections): a "
                    f"late push that the newer commit builds on did not roll the deploy back.")
    if (r.s("dh_burst_final_is_newest") == "no"
            and r.s("dh_burst_final_index") == r.s("dh_burst_last_accepted_index")):
        para.append(f"deployhook did not end on the newest commit: the push of commit "
                    f"{r.s('dh_burst_final_index')} reached it after the push of commit {n} (the burst "
                    f"is sent on 32 connections, so arrival order is not push order), and `supersede` "
                    f"lets the last push to arrive win, not the newest commit: an older commit was "
                    f"deployed last. Forges can deliver out of order too (retries, redeliveries).")
    pw = r.f("dh_prune_probe_wait_s")
    if pw is not None and pw > 1:
        para.append(f"A problem the flood exposed: pruning {fmt(r.f('dh_prune_rows_before'))} finished jobs "
                    f"holds the store's only writer thread"
                    + (f", deleting about {prune_rate:,.0f} rows/s" if prune_rate else "")
                    + f", and a valid push sent meanwhile waited {fmt(pw, 1)} s "
                    f"(answer: `{r.s('dh_prune_probe_status')}`).")
    elif pw is not None:
        para.append(f"Pruning the {fmt(r.f('dh_prune_rows_before'))} jobs the flood left did not hold up a "
                    f"valid push ({fmt(pw * 1000, 1)} ms to its `{r.s('dh_prune_probe_status')}`).")
    wa, wf = rss.get("dh_rss_warm_anon_kb"), rss.get("dh_rss_idle_anon_kb")
    if wa and wf and wa > 4 * wf:
        para.append(f"And the first deploy (cloning the {r.s('repo_commits')}-commit repository) left "
                    f"deployhook's anonymous memory at {mib(wa)} against {mib(wf)} before it, and it stays "
                    f"there while idle.")
    w(" ".join(para))
    w("")
    return "\n".join(out), {
        "date": r.s("date"), "ingest": ratio(dh_rps, wh_rps), "dh_rps": fmt(dh_rps), "wh_rps": fmt(wh_rps),
        "p99": ms(dh_p99), "reject": ratio(dh_rej, wh_rej), "dh_rej": fmt(dh_rej), "wh_rej": fmt(wh_rej),
        "idle": f"{mib(rss.get('dh_rss_idle_kb'))} vs {mib(rss.get('wh_rss_idle_kb'))}",
        "warm": f"{mib(rss.get('dh_rss_warm_kb'))} vs {mib(rss.get('wh_rss_warm_kb'))}",
        "peak": f"{mib(rss.get('dh_ingest_rss_peak_kb'))} vs {mib(rss.get('wh_ingest_rss_peak_kb'))}",
        "durable": "yes" if durable_ok else "NO",
        "latency": f"{fmt(dh_lat_med, 1)} ms vs {fmt(git_lat_med, 1)} ms ({ratio(dh_lat_med, git_lat_med)})",
        "burst": f"{r.s('dh_burst_runs')} runs, push {r.s('dh_burst_final_index')}/{n} vs {r.s('wh_burst_runs')} runs, push {r.s('wh_burst_final_index')}/{n}",
        "ok": (ingest_ok, p99_ok, durable_ok, reject_ok, idle_ok and warm_ok, bounded_ok),
        "failed": bool(failures),
        "ol": ol,
    }


def readme_block(s):
    ok = s["ok"]
    mark = lambda b: "met" if b else "**missed**"  # noqa: E731
    lines = [
        f"Latest run ({s['date']}{', FAILED its checks' if s['failed'] else ''}; details in [RESULTS.md](RESULTS.md)):",
        "",
        "| target | latest | |",
        "| --- | --- | --- |",
        f"| ingest ≥ 10× webhook's requests/s | {s['dh_rps']} vs {s['wh_rps']} req/s = {s['ingest']} | {mark(ok[0])} |",
        f"| ingest p99 < 5 ms | {s['p99']} | {mark(ok[1])} |",
        f"| every 202 survives kill -9 | {s['durable']} | {mark(ok[2])} |",
        f"| reject ≥ 5× webhook's requests/s | {s['dh_rej']} vs {s['wh_rej']} req/s = {s['reject']} | {mark(ok[3])} |",
        f"| idle RSS below webhook's | fresh {s['idle']}; after a deploy {s['warm']} | {mark(ok[4])} |",
        f"| RSS under load bounded | peak {s['peak']} | {mark(ok[5])} |",
        f"| push-to-deploy vs git fetch + checkout (median) | {s['latency']} | |",
        f"| burst of pushes to one hook | {s['burst']} | |",
    ]
    o = s["ol"]
    if o["fsync"] is not None:
        share = 'n/a' if o['share'] is None else f"{100 * o['share']:.1f}%"
        lines += [
            f"| open loop, 1,000/s: p99 of a 202 ≤ forged p99 + 2 fsync p99 | {fmt(o['p99'], 2)} ms (limit {fmt(o['lim99'], 2)}) | {mark(o['p99_ok'])} |",
            f"| open loop, 1,000/s: p99.9 ≤ forged p99.9 + 4 fsync p99 | {fmt(o['p999'], 2)} ms (limit {fmt(o['lim999'], 2)}) | {mark(o['p999_ok'])} |",
            f"| the same while pruning 100,000 old jobs and running jobs | {fmt(o['busy99'], 2)} / {fmt(o['busy999'], 2)} ms | {mark(o['busy_ok'])} |",
            f"| saturation: ingest ≥ 50% of reject | {share} of {s['dh_rej']} req/s | {mark(o['share_ok'])} |",
        ]
    return "\n".join(lines)


def main(argv):
    values, failures = load(argv[1])
    text, summary = build(values, failures)
    with open(argv[2], "w") as f:
        f.write(text)
    if len(argv) > 3:
        try:
            with open(argv[3]) as f:
                readme = f.read()
        except FileNotFoundError:
            return
        pattern = re.compile(r"(<!-- bench:figures -->\n).*?(\n<!-- /bench:figures -->)", re.S)
        if pattern.search(readme):
            readme = pattern.sub(lambda m: m.group(1) + readme_block(summary) + m.group(2), readme)
            with open(argv[3], "w") as f:
                f.write(readme)


if __name__ == "__main__":
    main(sys.argv)
