#!/usr/bin/env bash
# Open-loop latency of deployhook's durable path (issue 15): distinct, correctly signed
# GitHub pushes at a fixed rate, each answer timed from its scheduled send time, next to
# the forged-signature path at the same rate and the disk's fsync latency in state_dir.
# The hook is paused, so every push is verified, parsed, routed and committed (202,
# synchronous=FULL) while no job runs to muddy the figures.
#
# Then the same signed pushes at BENCH_BUSY_RATE while the daemon has history to prune
# (100,000 finished jobs with their events and delivery records, written into the
# database before it starts, as a year of pushes would leave them) and a burst of job
# finishes (BENCH_FINISHES queued jobs of another hook, released when the sender
# starts, each a real checkout of a small repository and a `true`).
#
#   scripts/bench-open-loop.sh            # BENCH_RATES="500 1000" BENCH_SECONDS=10
#                                         # BENCH_BUSY_RATE=1000 BENCH_HISTORY=100000
#                                         # BENCH_FINISHES=1000
#                                         # DEPLOYHOOK_BIN: a daemon built elsewhere (A/B)
#                                         # BENCH_KV=FILE: also write key=value results
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RATES=${BENCH_RATES:-500 1000}
SECONDS_EACH=${BENCH_SECONDS:-10}
BUSY_RATE=${BENCH_BUSY_RATE:-1000}
HISTORY=${BENCH_HISTORY:-100000}
FINISHES=${BENCH_FINISHES:-1000}
KV=${BENCH_KV:-/dev/null}
cd "$ROOT"
if [[ -z ${DEPLOYHOOK_BIN:-} ]]; then
    cargo build --release --locked --quiet
fi
DH_BIN=${DEPLOYHOOK_BIN:-$ROOT/target/release/deployhook}
cargo bench --locked --quiet --bench open_loop --no-run 2>/dev/null
sender() { cargo bench --locked --quiet --bench open_loop -- "$@"; }

W=$(mktemp -d /tmp/deployhook-open-loop.XXXXXX)
DH=
trap '[[ -n $DH ]] && kill "$DH" 2>/dev/null; rm -rf "$W"' EXIT
SECRET=open-loop-secret-$RANDOM$RANDOM
printf '%s' "$SECRET" > "$W/secret"
chmod 600 "$W/secret"
git init -q --bare "$W/origin.git"
git -C "$W/origin.git" symbolic-ref HEAD refs/heads/main
python3 "$ROOT/scripts/bench/mkrepo.py" 20 | git -C "$W/origin.git" fast-import --quiet
TIP=$(git -C "$W/origin.git" rev-parse main)
PARENT=$(git -C "$W/origin.git" rev-parse main~1)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
cat > "$W/hooks.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
state_dir = "$W/state"
command_user = "$(id -un)"

[[hook]]
id = "site"
forge = "github"
secret_file = "$W/secret"
repository = "acme/website"
clone_url = "$W/origin.git"

[[hook.rule]]
branches = ["main"]
commands = [["true"]]

[[hook]]
id = "work"
forge = "github"
secret_file = "$W/secret"
repository = "acme/website"
clone_url = "$W/origin.git"

[[hook.rule]]
branches = ["main"]
queue = "fifo"
commands = [["true"]]
TOML
ctl() { "$DH_BIN" "$@" --url "$URL" --config "$W/hooks.toml" >/dev/null; }
start() {
    "$DH_BIN" serve --config "$W/hooks.toml" 2>> "$W/daemon.log" &
    DH=$!
    for _ in $(seq 1 200); do
        curl -fsS "$URL/healthz" >/dev/null 2>&1 && return
        sleep 0.05
    done
    echo "deployhook did not start; its log:" >&2
    cat "$W/daemon.log" >&2
    exit 1
}
stop() { kill "$DH"; wait "$DH" 2>/dev/null || true; DH=; }
start
ctl pause site --reason "open-loop benchmark"

echo "| rate | path | sent | as expected | p50 ms | p99 ms | p99.9 ms | max ms |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
row() { # key rate what line: prints a table row, appends key_field=value to $KV
    local key=$1 rate=$2 what=$3 line=$4 sent ok p50 p99 p999 max
    eval "$(tr ' ' '\n' <<<"$line" | grep -E '^(sent|ok|p50|p99|p999|max)=')"
    echo "| $rate/s | $what | $sent | $ok | $p50 | $p99 | $p999 | $max |"
    tr ' ' '\n' <<<"$line" | sed "s/^/ol_${key}_/" >> "$KV"
    [[ $sent == "$ok" ]] || { echo "$what at $rate/s: $((sent - ok)) unexpected answers" >&2; exit 1; }
}
for rate in $RATES; do
    row "signed_$rate" "$rate" "signed push (202)" "$(sender send "127.0.0.1:$PORT" site "$SECRET" "$rate" "$SECONDS_EACH" --tag "r$rate-")"
    row "forged_$rate" "$rate" "forged signature (401)" "$(sender send "127.0.0.1:$PORT" site "$SECRET" "$rate" "$SECONDS_EACH" --forged --tag "f$rate-")"
done
fs=$(sender fsync "$W/state" 2000)
tr ' ' '\n' <<<"$fs" | sed 's/^/ol_fsync_/' >> "$KV"
eval "$(tr ' ' '\n' <<<"$fs" | sed 's/^/f_/')"

# Busy: history to prune and jobs finishing while the pushes arrive.
ctl pause work --reason "held until the busy run starts"
sender send "127.0.0.1:$PORT" work "$SECRET" 1000 "$(awk -v n="$FINISHES" 'BEGIN { print n / 1000 }')" \
    --tag "w-" --shas "$PARENT" "$TIP" > "$W/work.out"
grep -q "ok=$FINISHES " "$W/work.out" || { echo "queueing the work jobs: $(cat "$W/work.out")" >&2; exit 1; }
stop
python3 - "$W/state/deployhook.db" "$HISTORY" "$PARENT" "$TIP" <<'PY'
import sqlite3, sys, time
db, n, before, after = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = sqlite3.connect(db)
old = int(time.time()) - 400 * 86400
jobs = [("site", 0, "succeeded", "github", "acme/website", "refs/heads/main", before, after,
         f"old-{i}", old + i // 1000, old + i // 1000, "exit status 0", "0", "site")
        for i in range(n)]
c.executemany("""INSERT INTO jobs (hook, rule, state, forge, repository, git_ref, before_sha,
                 after_sha, delivery, created_at, finished_at, detail, rule_key, lane)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", jobs)
first = c.execute("SELECT max(id) FROM jobs").fetchone()[0] - n + 1
events = [(first + i, "site", kind, (old + i // 1000) * 1000, reason)
          for i in range(n) for kind, reason in (("queued", "push"), ("succeeded", "exit status 0"))]
c.executemany("INSERT INTO job_events (job, hook, kind, at, reason) VALUES (?, ?, ?, ?, ?)", events)
c.executemany("""INSERT INTO delivery_log (hook, delivery, forge, event, git_ref, after_sha,
                 received_at, outcome, jobs, reason) VALUES (?, ?, 'github', 'push',
                 'refs/heads/main', ?, ?, 'queued', ?, 'queued')""",
              [("site", f"old-{i}", after, (old + i // 1000) * 1000, str(first + i)) for i in range(n)])
c.commit()
PY
count() { python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$W/state/deployhook.db" "$1"; }
jobs_before=$(count "SELECT count(*) FROM jobs")
start
ctl resume work
busy=$(sender send "127.0.0.1:$PORT" site "$SECRET" "$BUSY_RATE" "$SECONDS_EACH" --tag "b-")
stop
pruned=$((jobs_before + SECONDS_EACH * BUSY_RATE - $(count "SELECT count(*) FROM jobs")))
finished=$((FINISHES - $(count "SELECT count(*) FROM jobs WHERE hook = 'work'
                                 AND state IN ('queued', 'held', 'running', 'interrupted')")))
row "busy" "$BUSY_RATE" "signed push (202), pruning and finishing" "$busy"
{
    echo "ol_seconds=$SECONDS_EACH"
    echo "ol_busy_rate=$BUSY_RATE"
    echo "ol_busy_history=$HISTORY"
    echo "ol_busy_pruned=$pruned"
    echo "ol_busy_finished=$finished"
    echo "ol_busy_queued=$FINISHES"
} >> "$KV"
echo
echo "fsync in state_dir (4 KiB, 2000 times): p50 ${f_p50} ms, p99 ${f_p99} ms, max ${f_max} ms"
echo "busy run: $pruned of $HISTORY old jobs pruned and $finished of $FINISHES work jobs finished during its ${SECONDS_EACH} s"
