#!/usr/bin/env bash
# Side-by-side benchmark of deployhook against Debian's `webhook` (adnanh/webhook), both on
# loopback with equivalent configs, results in benches/RESULTS.md (see benches/README.md).
#
#   scripts/bench.sh            # needs root or sudo only to apt-get install what is missing
#
# Scenarios: 1 ingest (distinct signed 7.7 KB GitHub pushes, wrk, 64 connections) with a
# kill -9 of deployhook after the run and another in the middle of a run, counting that
# every 202 is on disk; 2 reject (wrong signature); 3 RSS idle / under load; 4 push-to-deploy
# latency on a 10,000-commit repository against `git fetch` + `git checkout`; 5 a burst of
# 1,000 pushes to one hook; 6 ingest on the PostgreSQL store (a throwaway cluster), one
# replica and two behind the same connections, counting that every 202 is in the
# database; 7 open loop: fixed-rate pushes timed from their scheduled send time, forged
# ones at the same rate, fsync, and a busy run (scripts/bench-open-loop.sh). Exits
# non-zero if either daemon answered wrongly.
#
# Knobs (environment): BENCH_DURATION (ingest seconds, 15), BENCH_REJECT_DURATION (10),
# BENCH_CONNECTIONS (64), BENCH_LAT_RUNS (7), BENCH_BURST (1000), BENCH_OPEN_LOOP_RATES
# ("500 1000"), BENCH_OPEN_LOOP_SECONDS (10), BENCH_OUT (RESULTS.md
# path), DEPLOYHOOK_BIN (skip the cargo build), BENCH_KEEP=1 (keep the temp dir).
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/scripts/bench
DURATION=${BENCH_DURATION:-15}
REJECT_DURATION=${BENCH_REJECT_DURATION:-10}
CONNS=${BENCH_CONNECTIONS:-64}
LAT_RUNS=${BENCH_LAT_RUNS:-7}
BURST=${BENCH_BURST:-1000}
OPEN_LOOP_RATES=${BENCH_OPEN_LOOP_RATES:-500 1000}
OPEN_LOOP_SECONDS=${BENCH_OPEN_LOOP_SECONDS:-10}
OUT=${BENCH_OUT:-$ROOT/benches/RESULTS.md}
THREADS=$(nproc)
COMMITS=10000
SECRET=bench-secret-$RANDOM$RANDOM
START_TS=$EPOCHREALTIME

W=$(mktemp -d /tmp/deployhook-bench.XXXXXX)
RES=$W/results.env         # every measured value, key=value; report.py reads it
FAILURES=()
DH_PID='' WH_PID='' BG_PIDS=()

log() { printf '[bench %6.1fs] %s\n' "$(elapsed)" "$*" >&2; }
elapsed() { awk -v a="$START_TS" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
fail() { log "FAIL: $*"; FAILURES+=("$*"); }
die() { log "FATAL: $*"; exit 1; }
put() { printf '%s=%s\n' "$1" "$2" >> "$RES"; }   # put KEY VALUE
get() { sed -n "s/^$1=//p" "$RES" | tail -n 1; }
num() { local v; v=$(get "$1"); echo "${v:-0}"; }

cleanup() {
    local rc=$?
    for p in "${BG_PIDS[@]}" $DH_PID $WH_PID; do
        [[ -n $p ]] && kill -9 "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ -n ${PG:-} && -f $PG/data/postmaster.pid ]]; then
        pg_as "$pg_bin/pg_ctl" -D "$PG/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    if [[ ${BENCH_KEEP:-0} == 1 || $rc != 0 ]]; then
        log "work files kept in $W"
    else
        rm -rf "$W"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------
# Tools
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
need=()
command -v webhook >/dev/null || need+=(webhook)
command -v wrk >/dev/null || need+=(wrk)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v git >/dev/null || need+=(git)
command -v python3 >/dev/null || need+=(python3)
# The PostgreSQL runs start a throwaway cluster (initdb + pg_ctl, as postgres when root).
command -v initdb >/dev/null || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
command -v runuser >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    as_root apt-get install -y "${need[@]}" >"$W/apt.log" 2>&1 ||
        { as_root apt-get update >>"$W/apt.log" 2>&1 && as_root apt-get install -y "${need[@]}" >>"$W/apt.log" 2>&1; } ||
        die "apt-get install ${need[*]} failed; see $W/apt.log"
fi
HAVE_PERF=0
if command -v perf >/dev/null &&
    perf stat -e syscalls:sys_enter_fdatasync -- true >/dev/null 2>&1; then
    HAVE_PERF=1
fi

if [[ -n ${DEPLOYHOOK_BIN:-} ]]; then
    DH=$DEPLOYHOOK_BIN
else
    log "cargo build --release --locked"
    build_start=$EPOCHREALTIME
    (cd "$ROOT" && cargo build --release --locked) >"$W/build.log" 2>&1 ||
        { tail -n 30 "$W/build.log" >&2; die "cargo build failed"; }
    put build_s "$(awk -v a="$build_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
    DH=$ROOT/target/release/deployhook
fi
[[ -x $DH ]] || die "no deployhook binary at $DH"

# ---------------------------------------------------------------------------------------
# Environment
put date "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
put nproc "$(nproc)"
put cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
put mem "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
put kernel "$(uname -sr)"
put loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
put dh_version "$("$DH" --version 2>/dev/null | head -n 1 || echo unknown) ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ', uncommitted changes in the tree'))"
put wh_version "$(webhook -version 2>&1 | head -n 1)"
put wrk_version "$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
put git_version "$(git --version)"
put python_version "$(python3 --version 2>&1)"
put duration "$DURATION"
put reject_duration "$REJECT_DURATION"
put conns "$CONNS"
put threads "$THREADS"
put perf "$HAVE_PERF"

# ---------------------------------------------------------------------------------------
# The repository: 10,000 commits by git fast-import
log "creating a $COMMITS-commit repository"
git init -q --bare "$W/origin.git"
git -C "$W/origin.git" symbolic-ref HEAD refs/heads/main
python3 "$HERE/mkrepo.py" "$COMMITS" | git -C "$W/origin.git" fast-import --quiet
TIP=$(git -C "$W/origin.git" rev-parse main)
PARENT=$(git -C "$W/origin.git" rev-parse main~1)
put repo_commits "$(git -C "$W/origin.git" rev-list --count main)"
put repo_size "$(du -sh "$W/origin.git" | cut -f1)"
put repo_files "$(git -C "$W/origin.git" ls-tree -r main | wc -l)"

# Request data for wrk: distinct bodies + their signatures
N_INGEST=$((DURATION * 40000 + 50000))
N_PG=$((DURATION * 10000 + 20000))   # per replica; PostgreSQL commits cost more than SQLite's
put body_bytes "$(python3 "$HERE/payload.py" wrk-data "$W/wrk-ingest" "$N_INGEST" "$SECRET" "$PARENT" "$TIP")"
python3 "$HERE/payload.py" wrk-data "$W/wrk-kill" 300000 "$SECRET" "$PARENT" "$TIP" k >/dev/null
for t in one a b; do
    python3 "$HERE/payload.py" wrk-data "$W/wrk-pg-$t" "$N_PG" "$SECRET" "$PARENT" "$TIP" "pg$t" >/dev/null
done

# ---------------------------------------------------------------------------------------
# Configs: the same hooks for both daemons
mkdir -p "$W/out" "$W/dh-state"
printf '%s' "$SECRET" > "$W/secret"
chmod 600 "$W/secret"
cat > "$W/record.sh" <<'EOF'
#!/bin/sh
echo "$DEPLOYHOOK_SHA" >> "$1"
EOF
cat > "$W/burst.sh" <<'EOF'
#!/bin/sh
sleep 0.2
echo "$DEPLOYHOOK_SHA" >> "$1"
EOF
cat > "$W/stamp.sh" <<'EOF'
#!/bin/bash
echo "$EPOCHREALTIME $DEPLOYHOOK_SHA" >> "$1"
EOF
chmod +x "$W/record.sh" "$W/burst.sh" "$W/stamp.sh"

read -r DH_PORT WH_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')

# deployhook: server defaults except listen and state_dir
dh_hook() { # id script log
    cat <<EOF

[[hook]]
id = "$1"
forge = "github"
secret_file = "$W/secret"
repository = "acme/website"
clone_url = "$W/origin.git"
[[hook.rule]]
branches = ["main"]
commands = [["$W/$2", "$W/out/$3"]]
EOF
}
{
    # Commands run as the invoking user, as webhook's do: the same work on both sides.
    printf '[server]\nlisten = "127.0.0.1:%s"\nstate_dir = "%s"\ncommand_user = "%s"\n' "$DH_PORT" "$W/dh-state" "$(id -un)"
    dh_hook bench record.sh dh-ingest.log
    dh_hook burst burst.sh dh-burst.log
    dh_hook latency stamp.sh dh-latency.log
} > "$W/hooks.toml"
"$DH" check --config "$W/hooks.toml" >"$W/check.log" 2>&1 || { cat "$W/check.log" >&2; die "deployhook check failed"; }

# webhook: HMAC-SHA256 of X-Hub-Signature-256, then the same branch and repository checks
wh_hook() { # id script log
    cat <<EOF
  {
    "id": "$1",
    "execute-command": "$W/$2",
    "command-working-directory": "$W",
    "pass-arguments-to-command": [{"source": "string", "name": "$W/out/$3"}],
    "pass-environment-to-command": [{"source": "payload", "name": "after", "envname": "DEPLOYHOOK_SHA"}],
    "trigger-rule": {"and": [
      {"match": {"type": "payload-hmac-sha256", "secret": "$SECRET",
                 "parameter": {"source": "header", "name": "X-Hub-Signature-256"}}},
      {"match": {"type": "value", "value": "refs/heads/main", "parameter": {"source": "payload", "name": "ref"}}},
      {"match": {"type": "value", "value": "acme/website", "parameter": {"source": "payload", "name": "repository.full_name"}}}
    ]}
  }
EOF
}
{ echo "["; wh_hook bench record.sh wh-ingest.log; echo ","; wh_hook burst burst.sh wh-burst.log; echo "]"; } > "$W/hooks.json"

# ---------------------------------------------------------------------------------------
# Daemons and probes
DH_CONFIG=$W/hooks.toml
DH_STATE=$W/dh-state
wait_port() { # port pid name
    local deadline=$((SECONDS + 30))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        kill -0 "$2" 2>/dev/null || die "$3 exited at startup; see $W/$3.log"
        ((SECONDS < deadline)) || die "$3 does not listen on port $1 after 30 s"
        sleep 0.05
    done
}
start_dh() {
    "$DH" serve --config "$DH_CONFIG" >>"$W/deployhook.log" 2>&1 &
    DH_PID=$!
    wait_port "$DH_PORT" "$DH_PID" deployhook
}
start_wh() {
    webhook -hooks "$W/hooks.json" -ip 127.0.0.1 -port "$WH_PORT" >>"$W/webhook.log" 2>&1 &
    WH_PID=$!
    wait_port "$WH_PORT" "$WH_PID" webhook
}
kill9_dh() {
    kill -9 "$DH_PID"
    wait "$DH_PID" 2>/dev/null || true
    DH_PID=
}
kill9_wh() {
    kill -9 "$WH_PID"
    wait "$WH_PID" 2>/dev/null || true
    WH_PID=
}
status_kb() { # pid field: a kB field of /proc/pid/status (VmRSS, RssAnon, RssFile, VmHWM)
    local k v _
    while read -r k v _; do [[ $k == "$2:" ]] && { echo "$v"; return; }; done < "/proc/$1/status"
    echo 0
}
rss_kb() { status_kb "$1" VmRSS; }
put_rss() { # key pid: VmRSS plus its anonymous / file-backed split
    put "$1_kb" "$(rss_kb "$2")"
    put "$1_anon_kb" "$(status_kb "$2" RssAnon)"
    put "$1_file_kb" "$(status_kb "$2" RssFile)"
}
sample_rss() { # pid file: one VmRSS sample every 100 ms
    while kill -0 "$1" 2>/dev/null; do rss_kb "$1" >> "$2" 2>/dev/null || true; sleep 0.1; done
}
cpu_ticks() { # pid: "self children" CPU ticks
    awk '{ print $14 + $15, $16 + $17 }' "/proc/$1/stat"
}
machine_ticks() { # "busy total" CPU ticks of the whole machine, all cores
    awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
thread_ticks() { # pid: "thread-name ticks", summed over threads of the same name
    local t
    for t in "/proc/$1/task/"*; do
        printf '%s %s\n' "$(tr -c 'a-zA-Z0-9\n' _ < "$t/comm" 2>/dev/null)" "$(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null)"
    done | awk 'NF == 2 { s[$1] += $2 } END { for (c in s) print c, s[c] }' | sort
}
sql() { sqlite3 -batch "$DH_STATE/deployhook.db" "$1"; }
dh_wait_idle() { # hook seconds: until no job of the hook is queued or running
    local deadline=$((SECONDS + $2))
    while [[ $(sql "select count(*) from jobs where hook = '$1' and state in ('queued', 'running')") != 0 ]]; do
        ((SECONDS < deadline)) || { fail "deployhook: jobs of hook $1 still pending after $2 s"; return 1; }
        sleep 0.1
    done
}
wh_wait_idle() { # seconds: until webhook has no child process left
    local deadline=$((SECONDS + $1))
    while pgrep -P "$WH_PID" >/dev/null; do
        ((SECONDS < deadline)) || { fail "webhook: commands still running after $1 s"; return 1; }
        sleep 0.1
    done
}
jobs_since() { # unix time: what happened to the jobs that ended since then, counted
    sql "select group_concat(n || '× ' || state || ' (' || detail || ')', '; ') from
         (select state, case when state = 'superseded' then 'by a newer push' else coalesce(detail, '') end detail, count(*) n from jobs
          where coalesce(finished_at, 0) >= $1 group by state, detail)"
}
push() { # url before after delivery [timeout] -> "status t0 t1"
    python3 "$HERE/payload.py" push "$1" "$SECRET" "$2" "$3" "$4" "${5:-30}"
}
lines() { if [[ -f $1 ]]; then wc -l < "$1"; else echo 0; fi; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

# The disk's own fsync latency: the floor under any durable 202 (4 KiB write + fsync)
python3 - "$W" > "$W/fsync.out" <<'EOF'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
t = []
for _ in range(200):
    os.write(fd, b"x" * 4096)
    a = time.perf_counter(); os.fsync(fd); t.append(time.perf_counter() - a)
os.close(fd); os.unlink(path); t.sort()
print(f"fsync_p50_ms={t[100] * 1e3:.2f}\nfsync_p99_ms={t[197] * 1e3:.2f}")
EOF
cat "$W/fsync.out" >> "$RES"
put fs "$(df -T "$W" | awk 'NR == 2 { print $2 }')"

DH_URL=http://127.0.0.1:$DH_PORT/hooks
WH_URL=http://127.0.0.1:$WH_PORT/hooks
log "starting deployhook on :$DH_PORT and webhook on :$WH_PORT"
start_dh
start_wh

# 3a. idle RSS, before any request
sleep 2
put_rss dh_rss_idle "$DH_PID"
put_rss wh_rss_idle "$WH_PID"

# Warm-up and correctness: one valid push each (deployhook clones the repository now, so
# the runs below do not pay for the first clone)
read -r st _ < <(push "$DH_URL/bench" "$PARENT" "$TIP" warm-bench)
[[ $st == 202 ]] || die "deployhook answered $st to a valid push (expected 202); see $W/deployhook.log"
dh_wait_idle bench 60 || die "the warm-up deploy did not finish"
[[ $(sql "select state from jobs where hook = 'bench' order by id desc limit 1") == succeeded ]] ||
    die "deployhook's warm-up deploy failed: $(sql "select detail from jobs order by id desc limit 1")"
read -r st _ < <(push "$WH_URL/bench" "$PARENT" "$TIP" warm-bench)
[[ $st == 200 ]] || die "webhook answered $st to a valid push (expected 200); see $W/webhook.log"
wh_wait_idle 10 || true
grep -qx "$TIP" "$W/out/wh-ingest.log" 2>/dev/null || die "webhook did not run its command on a valid push"
sleep 1
put_rss dh_rss_warm "$DH_PID"
put_rss wh_rss_warm "$WH_PID"

# ---------------------------------------------------------------------------------------
# wrk runs
run_wrk() { # tag pid seconds script url args...: runs wrk, samples RSS and CPU of pid
    local tag=$1 pid=$2 secs=$3 script=$4 url=$5
    shift 5
    : > "$W/$tag.rss"
    sample_rss "$pid" "$W/$tag.rss" &
    local sampler=$!
    BG_PIDS+=("$sampler")
    local perf_pid=
    if [[ $HAVE_PERF == 1 && $tag == dh_ingest ]]; then
        perf stat -x, -o "$W/$tag.perf" \
            -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,syscalls:sys_enter_pwrite64 \
            -p "$pid" -- sleep "$secs" 2>/dev/null &
        perf_pid=$!
        BG_PIDS+=("$perf_pid")
    fi
    local cpu0 cpu1 tck machine0 machine1 timer=()
    [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -f '%U %S' -o "$W/$tag.time")
    thread_ticks "$pid" > "$W/$tag.threads0"
    cpu0=$(cpu_ticks "$pid")
    machine0=$(machine_ticks)
    "${timer[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 10s --latency -s "$HERE/$script" "$url" -- "$@" \
        > "$W/$tag.wrk" 2>&1 || fail "wrk $tag exited with $?"
    machine1=$(machine_ticks)
    cpu1=$(cpu_ticks "$pid" 2>/dev/null || echo "$cpu0")
    thread_ticks "$pid" > "$W/$tag.threads1"
    kill "$sampler" 2>/dev/null || true
    [[ -n $perf_pid ]] && { wait "$perf_pid" 2>/dev/null || true; }
    sed -n "s/^RESULT \([a-z0-9_]*\) \(.*\)$/${tag}_\1=\2/p" "$W/$tag.wrk" >> "$RES"
    [[ -n $(get "${tag}_requests") ]] || die "wrk $tag printed no results: $(tail -n 5 "$W/$tag.wrk")"
    tck=$(getconf CLK_TCK)
    put "${tag}_cpu_s" "$(awk -v a="${cpu0% *}" -v b="${cpu1% *}" -v t="$tck" 'BEGIN { printf "%.2f", (b - a) / t }')"
    put "${tag}_machine_busy_s" "$(awk -v a="${machine0% *}" -v b="${machine1% *}" -v t="$tck" 'BEGIN { printf "%.2f", (b - a) / t }')"
    put "${tag}_machine_total_s" "$(awk -v a="${machine0#* }" -v b="${machine1#* }" -v t="$tck" 'BEGIN { printf "%.2f", (b - a) / t }')"
    [[ -s $W/$tag.time ]] && put "${tag}_wrk_cpu_s" "$(awk 'NF == 2 { printf "%.2f", $1 + $2 }' "$W/$tag.time" | tail -n 1)"
    join -a 2 -e 0 -o 0,1.2,2.2 "$W/$tag.threads0" "$W/$tag.threads1" |
        awk -v tag="$tag" -v t="$tck" '{ printf "%s_thread_cpu_%s=%.2f\n", tag, $1, ($3 - $2) / t }' >> "$RES"
    put "${tag}_children_cpu_s" "$(awk -v a="${cpu0#* }" -v b="${cpu1#* }" -v t="$tck" 'BEGIN { printf "%.2f", (b - a) / t }')"
    # RSS: peak over the run, and peaks of its first and second half (bounded or growing?)
    awk -v tag="$tag" '{ v[NR] = $1 } END {
        m = 0; h1 = 0; h2 = 0
        for (i = 1; i <= NR; i++) { if (v[i] > m) m = v[i]; if (i <= NR / 2) { if (v[i] > h1) h1 = v[i] } else if (v[i] > h2) h2 = v[i] }
        printf "%s_rss_peak_kb=%d\n%s_rss_peak_first_half_kb=%d\n%s_rss_peak_second_half_kb=%d\n%s_rss_samples=%d\n", tag, m, tag, h1, tag, h2, tag, NR
    }' "$W/$tag.rss" >> "$RES"
    if [[ -s $W/$tag.perf ]]; then
        awk -F, -v tag="$tag" '$3 ~ /syscalls:sys_enter_/ { n = $3; sub(/.*sys_enter_/, "", n); printf "%s_sys_%s=%s\n", tag, n, $1 }' \
            "$W/$tag.perf" >> "$RES"
    fi
}
allowance() { local n=$1; echo $((n / 1000 > 1 ? n / 1000 : 1)); }   # 0.1%, at least 1
wrk_errors() { echo $(($(num "$1_errors_connect") + $(num "$1_errors_read") + $(num "$1_errors_write") + $(num "$1_errors_timeout"))); }

# 2. reject (first, while both daemons are fresh)
log "2. reject: webhook, ${REJECT_DURATION}s"
run_wrk wh_reject "$WH_PID" "$REJECT_DURATION" reject.lua "$WH_URL/bench" "$W/wrk-ingest/bad"
put wh_reject_answer "$(curl -sS -m 10 "$WH_URL/bench" -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
    -H "X-Hub-Signature-256: $(head -n 1 "$W/wrk-ingest/bad")" --data-binary "@$W/wrk-ingest/bad" | head -c 120 | tr '\n' ' ')"
log "2. reject: deployhook, ${REJECT_DURATION}s"
run_wrk dh_reject "$DH_PID" "$REJECT_DURATION" reject.lua "$DH_URL/bench" "$W/wrk-ingest/bad"
sleep 1
put_rss dh_rss_after_reject "$DH_PID"
put_rss wh_rss_after_reject "$WH_PID"

# 1. ingest: webhook, then kill -9 it and count which 200s ran their command
log "1. ingest: webhook, ${DURATION}s, $CONNS connections"
before=$(lines "$W/out/wh-ingest.log")
run_wrk wh_ingest "$WH_PID" "$DURATION" ingest.lua "$WH_URL/bench" "$W/wrk-ingest" wh- "$THREADS"
put wh_ingest_commands_at_end "$(($(lines "$W/out/wh-ingest.log") - before))"
put_rss wh_rss_after_ingest "$WH_PID"
sleep 5
put wh_ingest_commands_5s_later "$(($(lines "$W/out/wh-ingest.log") - before))"
kill9_wh
sleep 1
put wh_ingest_commands_after_kill "$(($(lines "$W/out/wh-ingest.log") - before))"
start_wh

# 1. ingest: deployhook, then kill -9, restart on the same state_dir and count
log "1. ingest: deployhook, ${DURATION}s, $CONNS connections"
before=$(lines "$W/out/dh-ingest.log")
jobs_before=$(sql "select coalesce(max(seq), 0) from sqlite_sequence where name = 'jobs'")
run_wrk dh_ingest "$DH_PID" "$DURATION" ingest.lua "$DH_URL/bench" "$W/wrk-ingest" dh- "$THREADS"
put dh_ingest_commands_at_end "$(($(lines "$W/out/dh-ingest.log") - before))"
put_rss dh_rss_after_ingest "$DH_PID"
kill9_dh
sleep 1
restart_ts=$(date +%s)
start_dh
put dh_ingest_deliveries_on_disk "$(sql "select count(*) from deliveries where hook = 'bench' and key like 'id:dh-%'")"
put dh_ingest_jobs_created "$(($(sql "select coalesce(max(seq), 0) from sqlite_sequence where name = 'jobs'") - jobs_before))"
put dh_ingest_jobs_rows "$(sql "select count(*) from jobs where hook = 'bench' and delivery like 'dh-%'")"
put_rss dh_rss_restart "$DH_PID"
dh_wait_idle bench 60 || true
put dh_restart1_jobs "$(jobs_since "$restart_ts")"

# 1b. kill -9 in the middle of a run
KILL_SECS=6
log "1b. durability: kill -9 deployhook 3 s into a ${KILL_SECS}s run"
wrk -t"$THREADS" -c"$CONNS" -d"${KILL_SECS}s" --timeout 2s -s "$HERE/ingest.lua" "$DH_URL/bench" -- "$W/wrk-kill" kill- "$THREADS" \
    > "$W/dh_kill.wrk" 2>&1 &
kill_wrk=$!
BG_PIDS+=("$kill_wrk")
sleep 3
kill9_dh
wait "$kill_wrk" || fail "wrk (kill run) exited with $?"
sed -n "s/^RESULT \([a-z0-9_]*\) \(.*\)$/dh_kill_\1=\2/p" "$W/dh_kill.wrk" >> "$RES"
restart_ts=$(date +%s)
start_dh
put dh_kill_deliveries_on_disk "$(sql "select count(*) from deliveries where hook = 'bench' and key like 'id:kill-%'")"
dh_wait_idle bench 60 || true
put dh_restart2_jobs "$(jobs_since "$restart_ts")"

# 1c. the history prune after a flood: keep_jobs (100 per hook) deletes the superseded jobs;
# how long does a valid push wait meanwhile?
log "1c. a valid push while deployhook prunes the flood's finished jobs"
rows0=$(sql "select count(*) from jobs")
put dh_prune_rows_before "$rows0"
deadline=$((SECONDS + 20))
while [[ $(sql "select count(*) from jobs") == "$rows0" ]] && ((SECONDS < deadline)); do sleep 0.2; done
c0=$(sql "select count(*) from jobs"); t0=$EPOCHREALTIME
read -r st p0 p1 < <(push "$DH_URL/bench" "$PARENT" "$TIP" probe-after-flood 60)
c1=$(sql "select count(*) from jobs"); t1=$EPOCHREALTIME
put dh_prune_probe_status "$st"
put dh_prune_probe_wait_s "$(awk -v a="$p0" -v b="$p1" 'BEGIN { printf "%.3f", b - a }')"
put dh_prune_rows_at_probe "$c0"
put dh_prune_rows_left "$c1"
put dh_prune_window_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
kill9_dh

# ---------------------------------------------------------------------------------------
# 6. The PostgreSQL store: a throwaway cluster on a unix socket (fsync and
# synchronous_commit on, as shipped), one replica and then two replicas behind the same
# $CONNS wrk connections (half to each); every 202 must be committed.
log "6. PostgreSQL: starting a throwaway cluster"
# Debian keeps the server's programs (initdb, pg_ctl, createdb, psql) together there.
pg_bin=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1 | xargs -r dirname)
[[ -n $pg_bin ]] || pg_bin=$(dirname "$(command -v initdb)")
pg_as() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PG=$W/pg
mkdir -p "$PG"
chmod 711 "$W"
[[ $(id -u) == 0 ]] && chown postgres "$PG"
pg_as "$pg_bin/initdb" -D "$PG/data" -A trust -U deployhook --no-sync >"$W/initdb.log" 2>&1 ||
    die "initdb failed; see $W/initdb.log"
pg_as "$pg_bin/pg_ctl" -D "$PG/data" -l "$PG/server.log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories='$PG' -c max_connections=100" start >"$W/pg_ctl.log" 2>&1 ||
    die "PostgreSQL did not start; see $PG/server.log"
put pg_version "$("$pg_bin/postgres" --version)"
psql_db() { "$pg_bin/psql" -X -q -At -h "$PG" -U deployhook -d "$1" -c "$2"; }
pg_config() { # file port state db node
    {
        printf '[server]\nlisten = "127.0.0.1:%s"\nstate_dir = "%s"\ncommand_user = "%s"\n' "$2" "$3" "$(id -un)"
        printf '\n[store]\nbackend = "postgres"\nurl = "postgres:///%s?host=%s&user=deployhook"\nnode_name = "%s"\n' "$4" "$PG" "$5"
        dh_hook bench record.sh "dh-pg-$5.log"
    } > "$1"
    "$DH" check --config "$1" >"$W/check-pg.log" 2>&1 || { cat "$W/check-pg.log" >&2; die "deployhook check of $1 failed"; }
}
read -r PG_PORT_A PG_PORT_B < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')
pg_wrk() { # tag port data prefix conns: wrk in the background, RESULT lines in $W/tag.wrk
    wrk -t"$(( THREADS < $5 ? THREADS : $5 ))" -c"$5" -d"${DURATION}s" --timeout 10s --latency -s "$HERE/ingest.lua" \
        "http://127.0.0.1:$2/hooks/bench" -- "$3" "$4" "$(( THREADS < $5 ? THREADS : $5 ))" > "$W/$1.wrk" 2>&1
}
# 6a. one replica
"$pg_bin/createdb" -h "$PG" -U deployhook bench1
pg_config "$W/pg-one.toml" "$PG_PORT_A" "$W/pg-one-state" bench1 one
"$DH" serve --config "$W/pg-one.toml" >>"$W/deployhook-pg-one.log" 2>&1 &
PG1_PID=$!
BG_PIDS+=("$PG1_PID")
wait_port "$PG_PORT_A" "$PG1_PID" deployhook-pg-one
log "6a. PostgreSQL, one replica: ingest ${DURATION}s, $CONNS connections"
m0=$(machine_ticks)
pg_wrk dh_pg1 "$PG_PORT_A" "$W/wrk-pg-one" pg1- "$CONNS" || fail "wrk dh_pg1 exited with $?"
m1=$(machine_ticks)
put dh_pg1_machine_busy_s "$(awk -v a="${m0% *}" -v b="${m1% *}" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / t }')"
sed -n "s/^RESULT \([a-z0-9_]*\) \(.*\)$/dh_pg1_\1=\2/p" "$W/dh_pg1.wrk" >> "$RES"
kill -9 "$PG1_PID"; wait "$PG1_PID" 2>/dev/null || true
# A delivery's replay key and its first job's id are committed with the job (the job row
# itself may be pruned already: superseded and past keep_jobs).
put dh_pg1_deliveries_in_db "$(psql_db bench1 "select count(*) from deliveries where hook = 'bench' and key like 'id:pg1-%' and job is not null")"
put dh_pg1_jobs_in_db "$(psql_db bench1 "select count(*) from jobs where hook = 'bench' and delivery like 'pg1-%'")"
# 6b. two replicas on one database, half the connections each
"$pg_bin/createdb" -h "$PG" -U deployhook bench2
pg_config "$W/pg-a.toml" "$PG_PORT_A" "$W/pg-a-state" bench2 a
pg_config "$W/pg-b.toml" "$PG_PORT_B" "$W/pg-b-state" bench2 b
"$DH" serve --config "$W/pg-a.toml" >>"$W/deployhook-pg-a.log" 2>&1 &
PGA_PID=$!
"$DH" serve --config "$W/pg-b.toml" >>"$W/deployhook-pg-b.log" 2>&1 &
PGB_PID=$!
BG_PIDS+=("$PGA_PID" "$PGB_PID")
wait_port "$PG_PORT_A" "$PGA_PID" deployhook-pg-a
wait_port "$PG_PORT_B" "$PGB_PID" deployhook-pg-b
log "6b. PostgreSQL, two replicas: ingest ${DURATION}s, $((CONNS / 2)) connections to each"
m0=$(machine_ticks)
pg_wrk dh_pg2a "$PG_PORT_A" "$W/wrk-pg-a" pg2a- $((CONNS / 2)) &
wa=$!
pg_wrk dh_pg2b "$PG_PORT_B" "$W/wrk-pg-b" pg2b- $((CONNS / 2)) &
wb=$!
wait "$wa" || fail "wrk dh_pg2a exited with $?"
wait "$wb" || fail "wrk dh_pg2b exited with $?"
m1=$(machine_ticks)
put dh_pg2_machine_busy_s "$(awk -v a="${m0% *}" -v b="${m1% *}" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / t }')"
for t in dh_pg2a dh_pg2b; do
    sed -n "s/^RESULT \([a-z0-9_]*\) \(.*\)$/${t}_\1=\2/p" "$W/$t.wrk" >> "$RES"
done
kill -9 "$PGA_PID" "$PGB_PID"; wait "$PGA_PID" "$PGB_PID" 2>/dev/null || true
put dh_pg2_deliveries_in_db "$(psql_db bench2 "select count(*) from deliveries where hook = 'bench' and key like 'id:pg2%' and job is not null")"
put dh_pg2_jobs_in_db "$(psql_db bench2 "select count(*) from jobs where hook = 'bench' and delivery like 'pg2%'")"
put dh_pg2_owners "$(psql_db bench2 "select count(distinct split_part(owner, ':', 1)) from jobs where owner is not null")"
pg_as "$pg_bin/pg_ctl" -D "$PG/data" -m immediate stop >>"$W/pg_ctl.log" 2>&1 || true

# ---------------------------------------------------------------------------------------
# Latency and burst on a fresh deployhook (new state_dir), so the flood above does not
# interfere
DH_STATE=$W/dh-state2
DH_CONFIG=$W/hooks2.toml
sed "s|$W/dh-state\"|$DH_STATE\"|" "$W/hooks.toml" > "$DH_CONFIG"
start_dh

# 4. push-to-deploy latency: one new commit per run, deployhook vs git fetch + checkout
log "4. latency: $LAT_RUNS pushes of one new commit each"
read -r st _ < <(push "$DH_URL/latency" "$PARENT" "$TIP" warm-latency)
[[ $st == 202 ]] || die "deployhook answered $st to the latency warm-up push"
dh_wait_idle latency 60 || die "the latency warm-up deploy did not finish"
git clone -q --no-local "$W/origin.git" "$W/baseline"   # the git command line's own clone
git -C "$W/baseline" checkout -q --detach "$TIP"
wait_line() { # file pattern seconds
    local deadline=$((SECONDS + $3))
    until grep -q "$2" "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.01
    done
}
dh_run() { # i head new
    local st t0 t1
    read -r st t0 _ < <(push "$DH_URL/latency" "$2" "$3" "lat-$1")
    [[ $st == 202 ]] || { fail "deployhook answered $st to latency push $1"; return; }
    echo "$1 $t0 $3" >> "$W/lat_runs.txt"
    wait_line "$W/out/dh-latency.log" " $3\$" 60 || { fail "deployhook: latency push $1 never ran its command"; return; }
    t1=$(sed -n "s/^\([0-9.]*\) $3\$/\1/p" "$W/out/dh-latency.log" | head -n 1)
    put "dh_latency_ms_$1" "$(ms "$t0" "$t1")"
}
git_run() { # i new
    local t0=$EPOCHREALTIME
    git -C "$W/baseline" fetch -q origin
    git -C "$W/baseline" checkout -q --detach "$2"
    put "git_latency_ms_$1" "$(ms "$t0" "$EPOCHREALTIME")"
}
head=$TIP
for ((i = 1; i <= LAT_RUNS; i++)); do
    python3 "$HERE/mkrepo.py" --append "$head" $((COMMITS + i)) | git -C "$W/origin.git" fast-import --quiet
    new=$(git -C "$W/origin.git" rev-parse main)
    if ((i % 2)); then dh_run "$i" "$head" "$new"; git_run "$i" "$new"; else git_run "$i" "$new"; dh_run "$i" "$head" "$new"; fi
    dh_wait_idle latency 60 || true
    head=$new
done
put lat_runs "$LAT_RUNS"
python3 "$HERE/latency_breakdown.py" "$W/deployhook.log" "$DH_STATE/logs" "$W/out/dh-latency.log" "$W/lat_runs.txt" \
    >> "$RES" 2>"$W/latency_breakdown.err" || log "latency breakdown failed: $(tail -n 1 "$W/latency_breakdown.err")"
last_job=$(sql "select max(id) from jobs where hook = 'latency'")
put dh_latency_checkout_line "$(grep -h 'checked out' "$DH_STATE/logs/$last_job.log" 2>/dev/null | tail -n 1 | sed 's/.*\(checked out\)/\1/')"

# 5. burst: BURST pushes (the newest BURST commits, oldest first) to one hook
log "5. burst: $BURST pushes to one hook, each daemon"
git -C "$W/origin.git" rev-list --reverse --parents -n "$BURST" main | awk '{ print $2, $1 }' > "$W/burst.shas"
NEWEST=$(git -C "$W/origin.git" rev-parse main)
burst_index() { # sha -> its position among the burst pushes (1 = oldest, BURST = newest)
    awk -v s="$1" '$2 == s { print NR; found = 1 } END { if (!found) print "none" }' "$W/burst.shas"
}
for d in wh dh; do
    if [[ $d == dh ]]; then url=$DH_URL/burst ok=202; else url=$WH_URL/burst ok=200; fi
    python3 "$HERE/payload.py" burst "$url" "$SECRET" "$W/burst.shas" 32 "burst-$d" > "$W/${d}_burst.out"
    put "${d}_burst_elapsed_s" "$(sed -n 's/^elapsed //p' "$W/${d}_burst.out")"
    answered=$(awk -v ok="$ok" '$1 == "status" && $2 == ok { print $3 }' "$W/${d}_burst.out")
    put "${d}_burst_ok" "${answered:-0}"
    put "${d}_burst_statuses" "$(awk '$1 == "status" { printf "%s%s×%s", sep, $2, $3; sep = ", " }' "$W/${d}_burst.out")"
    [[ ${answered:-0} == "$BURST" ]] || fail "$d: burst: only ${answered:-0} of $BURST valid pushes got $ok ($(get "${d}_burst_statuses"))"
    log_file=$W/out/$d-burst.log
    if [[ $d == dh ]]; then
        dh_wait_idle burst 120 || true
    else # until every command has run, or nothing new for 5 s
        stable=0 prev=-1
        deadline=$((SECONDS + 120))
        while (($(lines "$log_file") < BURST && stable < 50 && SECONDS < deadline)); do
            cur=$(lines "$log_file")
            if ((cur == prev)); then stable=$((stable + 1)); else stable=0 prev=$cur; fi
            sleep 0.1
        done
        wh_wait_idle 30 || true
    fi
    put "${d}_burst_runs" "$(lines "$log_file")"
    last=$(tail -n 1 "$log_file" 2>/dev/null || true)
    put "${d}_burst_final_index" "$(burst_index "$last")"
    put "${d}_burst_final_is_newest" "$([[ $last == "$NEWEST" ]] && echo yes || echo no)"
    put "${d}_burst_distinct" "$(sort -u "$log_file" 2>/dev/null | wc -l)"
done
last_delivery=$(sql "select delivery from jobs where hook = 'burst' order by id desc limit 1")
put dh_burst_last_accepted_index "$(( ${last_delivery#burst-dh-} + 1 ))"
put dh_burst_job_states "$(sql "select group_concat(state || '×' || n, ', ') from (select state, count(*) n from jobs where hook = 'burst' group by state)")"
put burst_n "$BURST"

# ---------------------------------------------------------------------------------------
# 7. Open loop (scripts/bench-open-loop.sh, its own daemon and state_dir): answer times at
# a fixed rate from each request's scheduled send time, the forged path at the same rate,
# fsync in state_dir, and a busy run with history to prune and jobs running.
log "7. open loop: ${OPEN_LOOP_RATES} /s, ${OPEN_LOOP_SECONDS} s each, then a busy run"
DEPLOYHOOK_BIN=$DH BENCH_RATES=$OPEN_LOOP_RATES BENCH_SECONDS=$OPEN_LOOP_SECONDS BENCH_KV="$W/open-loop.kv" \
    bash "$ROOT/scripts/bench-open-loop.sh" > "$W/open-loop.md" 2>&1 ||
    fail "open-loop run failed: $(tail -n 3 "$W/open-loop.md" | tr '\n' ' ')"
[[ -s $W/open-loop.kv ]] && cat "$W/open-loop.kv" >> "$RES"

# ---------------------------------------------------------------------------------------
# Checks: wrong answers fail the run
n=$(num dh_ingest_requests); bad=$((n - $(num dh_ingest_status_202) + $(wrk_errors dh_ingest)))
put dh_ingest_bad "$bad"
((bad <= $(allowance "$n"))) || fail "deployhook: $bad of $n valid ingest requests were not answered 202"
((n > 0)) || fail "deployhook: no ingest request completed"
(($(num dh_ingest_overflow) == 0)) || fail "ingest data too small: wrk reused bodies; raise N_INGEST"
n=$(num wh_ingest_requests); bad=$((n - $(num wh_ingest_status_200) + $(wrk_errors wh_ingest)))
put wh_ingest_bad "$bad"
((bad <= $(allowance "$n"))) || fail "webhook: $bad of $n valid ingest requests were not answered 200"
((n > 0)) || fail "webhook: no ingest request completed"
(($(num dh_ingest_deliveries_on_disk) >= $(num dh_ingest_status_202))) ||
    fail "durability: wrk saw $(num dh_ingest_status_202) 202s but only $(num dh_ingest_deliveries_on_disk) deliveries survived kill -9"
# Jobs created, not rows left: the worker may already have pruned superseded ones.
(($(num dh_ingest_jobs_created) >= $(num dh_ingest_status_202))) ||
    fail "durability: wrk saw $(num dh_ingest_status_202) 202s but only $(num dh_ingest_jobs_created) jobs were created before kill -9"
(($(num dh_kill_deliveries_on_disk) >= $(num dh_kill_status_202))) ||
    fail "durability: wrk saw $(num dh_kill_status_202) 202s before kill -9 but only $(num dh_kill_deliveries_on_disk) deliveries are on disk"
(($(num dh_kill_status_202) > 0)) || fail "durability: no 202 before the kill -9 in the middle of the run"
n=$(num dh_reject_requests); bad=$((n - $(num dh_reject_status_401) + $(wrk_errors dh_reject)))
put dh_reject_bad "$bad"
((bad <= $(allowance "$n"))) || fail "deployhook: $bad of $n forged requests were not answered 401"
n=$(num wh_reject_requests)
wh_accepted=$(awk -F= '$1 ~ /^wh_reject_status_2[0-9][0-9]$/ { s += $2 } END { print s + 0 }' "$RES")
put wh_reject_accepted "$wh_accepted"
((wh_accepted == 0)) || fail "webhook: $wh_accepted forged requests were answered 2xx"
(($(wrk_errors wh_reject) <= $(allowance "$n"))) || fail "webhook: $(wrk_errors wh_reject) socket errors while rejecting"
for ((i = 1; i <= LAT_RUNS; i++)); do
    [[ -n $(get "dh_latency_ms_$i") ]] || fail "latency run $i has no deployhook measurement"
done
(($(num dh_burst_runs) > 0)) || fail "deployhook: the burst deployed nothing"
for t in dh_pg1 dh_pg2a dh_pg2b; do
    n=$(num "${t}_requests"); bad=$((n - $(num "${t}_status_202") + $(wrk_errors "$t")))
    put "${t}_bad" "$bad"
    ((n > 0)) || fail "deployhook on PostgreSQL ($t): no ingest request completed"
    ((bad <= $(allowance "$n"))) || fail "deployhook on PostgreSQL ($t): $bad of $n valid ingest requests were not answered 202"
    (($(num "${t}_overflow") == 0)) || fail "PostgreSQL ingest data too small ($t): wrk reused bodies; raise N_PG"
done
(($(num dh_pg1_deliveries_in_db) >= $(num dh_pg1_status_202))) ||
    fail "durability (PostgreSQL): wrk saw $(num dh_pg1_status_202) 202s but only $(num dh_pg1_deliveries_in_db) deliveries with a job are in the database"
pg2_202=$(($(num dh_pg2a_status_202) + $(num dh_pg2b_status_202)))
put dh_pg2_status_202 "$pg2_202"
(($(num dh_pg2_deliveries_in_db) >= pg2_202)) ||
    fail "durability (PostgreSQL, two replicas): wrk saw $pg2_202 202s but only $(num dh_pg2_deliveries_in_db) deliveries with a job are in the database"
kill -0 "$DH_PID" 2>/dev/null || fail "deployhook died"
kill -0 "$WH_PID" 2>/dev/null || fail "webhook died"

put loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
put failures "${#FAILURES[@]}"
for f in "${FAILURES[@]}"; do put failure "$f"; done
put total_s "$(elapsed)"
log "writing $OUT"
python3 "$HERE/report.py" "$RES" "$OUT.tmp" "$ROOT/benches/README.md" ||
    die "report.py could not write the report; the measured values are in $RES (kept)"
mv "$OUT.tmp" "$OUT"
if ((${#FAILURES[@]})); then
    log "${#FAILURES[@]} check(s) failed:"
    printf '  - %s\n' "${FAILURES[@]}" >&2
    exit 1
fi
log "done in $(elapsed) s; results in $OUT"
