#!/usr/bin/env bash
# A large repository's first and incremental deploy (issue 15): a generated repository
# about the size of git's own (80,000 commits, a pack of about 500 MB; made here with
# `git fast-import`, nothing fetched), served by `git daemon` on loopback. deployhook's
# time from the push to its command starting, against `git clone --no-checkout` +
# `git checkout` (first) and `git fetch` + `git checkout` (one more commit); the daemon's
# peak RSS against git's (index-pack is git clone's largest process), and its RSS after
# the job. Results: benches/LARGE-REPO.md.
#
#   scripts/bench-large-repo.sh     # BENCH_COMMITS=80000 BENCH_COMMIT_BYTES=12800 BENCH_INCREMENTS=5
#                                   # DEPLOYHOOK_BIN: a daemon built elsewhere
set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/scripts/bench
COMMITS=${BENCH_COMMITS:-80000}
BYTES=${BENCH_COMMIT_BYTES:-12800}
INCREMENTS=${BENCH_INCREMENTS:-5}
OUT=${BENCH_OUT:-$ROOT/benches/LARGE-REPO.md}
if [[ -z ${DEPLOYHOOK_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release --locked --quiet)
fi
DH=${DEPLOYHOOK_BIN:-$ROOT/target/release/deployhook}
[[ -x "$(git --exec-path)/git-daemon" ]] || { echo "$0: needs git daemon (git-daemon-sysvinit)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "$0: needs GNU time (/usr/bin/time)" >&2; exit 1; }

W=$(mktemp -d /tmp/deployhook-large.XXXXXX)
DH_PID='' GD_PID=''
cleanup() {
    [[ -n $DH_PID ]] && kill "$DH_PID" 2>/dev/null
    [[ -n $GD_PID ]] && kill "$GD_PID" 2>/dev/null
    wait 2>/dev/null || true
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
log() { printf '[large %s] %s\n' "$(date +%T)" "$*" >&2; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
kb() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }

log "generating $COMMITS commits of $BYTES bytes"
t0=$EPOCHREALTIME
mkdir -p "$W/srv"
git init -q --bare "$W/srv/large.git"
git -C "$W/srv/large.git" symbolic-ref HEAD refs/heads/main
python3 "$HERE/mklarge.py" "$COMMITS" "$BYTES" | git -C "$W/srv/large.git" fast-import --quiet
git -C "$W/srv/large.git" repack -adq
touch "$W/srv/large.git/git-daemon-export-ok"
gen_s=$(secs "$t0" "$EPOCHREALTIME")
pack_mb=$(du -sm "$W/srv/large.git/objects/pack" | cut -f1)
TIP=$(git -C "$W/srv/large.git" rev-parse main)
log "repository ready in ${gen_s}s: ${pack_mb} MB of pack"

read -r GD_PORT DH_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')
git daemon --reuseaddr --listen=127.0.0.1 --port="$GD_PORT" --base-path="$W/srv" "$W/srv" >"$W/git-daemon.log" 2>&1 &
GD_PID=$!
URL=git://127.0.0.1:$GD_PORT/large.git
until git ls-remote "$URL" >/dev/null 2>&1; do sleep 0.1; done

SECRET=large-secret-$RANDOM$RANDOM
printf '%s' "$SECRET" > "$W/secret"
chmod 600 "$W/secret"
cat > "$W/stamp.sh" <<'SH'
#!/bin/bash
echo "$EPOCHREALTIME $DEPLOYHOOK_SHA" >> "$1"
SH
chmod +x "$W/stamp.sh"
cat > "$W/hooks.toml" <<TOML
[server]
listen = "127.0.0.1:$DH_PORT"
state_dir = "$W/state"
command_user = "$(id -un)"

[[hook]]
id = "large"
forge = "github"
secret_file = "$W/secret"
repository = "acme/website"
clone_url = "$URL"

[[hook.rule]]
branches = ["main"]
timeout = "30m"
commands = [["$W/stamp.sh", "$W/ran"]]
TOML
"$DH" check --config "$W/hooks.toml" >/dev/null
"$DH" serve --config "$W/hooks.toml" >"$W/deployhook.log" 2>&1 &
DH_PID=$!
until (exec 3<>"/dev/tcp/127.0.0.1/$DH_PORT") 2>/dev/null; do sleep 0.05; done
sleep 1
idle_kb=$(kb "$DH_PID" VmRSS)

deploy() { # before after delivery -> seconds from the push to the command
    local st t0 _
    read -r st t0 _ < <(python3 "$HERE/payload.py" push "http://127.0.0.1:$DH_PORT/hooks/large" "$SECRET" "$1" "$2" "$3" 60)
    [[ $st == 202 ]] || { echo "$0: deployhook answered $st" >&2; exit 1; }
    until grep -q " $2\$" "$W/ran" 2>/dev/null; do
        kill -0 "$DH_PID" || { echo "$0: deployhook died; see $W/deployhook.log" >&2; exit 1; }
        sleep 0.05
    done
    secs "$t0" "$(sed -n "s/^\([0-9.]*\) $2\$/\1/p" "$W/ran" | head -n 1)"
}

# RSS split while the first deploy runs: anonymous memory (the indexer's own) apart from
# the pack's file pages it has mapped, which VmHWM counts too.
sample() { while kill -0 "$DH_PID" 2>/dev/null; do echo "$(kb "$DH_PID" RssAnon) $(kb "$DH_PID" RssFile)"; sleep 0.1; done; }
sample > "$W/rss.samples" &
SAMPLER=$!
log "first deploy: deployhook"
first_dh=$(deploy 0000000000000000000000000000000000000000 "$TIP" first)
kill "$SAMPLER"
read -r anon_peak_kb file_peak_kb < <(awk '$1 > a { a = $1 } $2 > f { f = $2 } END { print a + 0, f + 0 }' "$W/rss.samples")
sleep 2
peak_kb=$(kb "$DH_PID" VmHWM)
after_kb=$(kb "$DH_PID" VmRSS)
log "first deploy: git clone --no-checkout + git checkout"
t0=$EPOCHREALTIME
/usr/bin/time -f '%M' -o "$W/clone.rss" git clone -q --no-checkout "$URL" "$W/baseline"
git -C "$W/baseline" checkout -q --detach "$TIP"
first_git=$(secs "$t0" "$EPOCHREALTIME")
git_peak_kb=$(tail -n 1 "$W/clone.rss")

log "incremental deploys: $INCREMENTS commits, one at a time"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
head=$TIP
for ((i = 1; i <= INCREMENTS; i++)); do
    python3 "$HERE/mklarge.py" --append "$head" $((COMMITS + i - 1)) "$BYTES" | git -C "$W/srv/large.git" fast-import --quiet
    new=$(git -C "$W/srv/large.git" rev-parse main)
    git_inc() {
        local t0=$EPOCHREALTIME
        git -C "$W/baseline" fetch -q origin
        git -C "$W/baseline" checkout -q --detach "$new"
        secs "$t0" "$EPOCHREALTIME" >> "$W/inc_git"
        echo >> "$W/inc_git"
    }
    dh_inc() {
        local took
        took=$(deploy "$head" "$new" "inc-$i")
        echo "$took" >> "$W/inc_dh"
    }
    # Alternately first, so that neither always finds the other's reads in the page cache.
    if ((i % 2)); then dh_inc; git_inc; else git_inc; dh_inc; fi
    head=$new
done
inc_dh=$(median < "$W/inc_dh")
inc_git=$(median < "$W/inc_git")
sleep 2
end_kb=$(kb "$DH_PID" VmRSS)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
{
    echo "# A large repository's deploys (issue 15)"
    echo
    echo "Written by \`scripts/bench-large-repo.sh\` from the run it just did. A generated repository"
    echo "($COMMITS commits, $(git -C "$W/srv/large.git" ls-tree -r main | wc -l) files, ${pack_mb} MB of pack after \`git repack -ad\`;"
    echo "made in ${gen_s} s) served by \`git daemon\` on loopback. deployhook: time from the push to its"
    echo "command starting (fetch with git2, checkout, spawn). git: the same work on the command line."
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(git --version),"
    echo "deployhook $("$DH" --version | cut -d' ' -f2) ($(git -C "$ROOT" rev-parse --short HEAD))."
    echo
    echo "| | deployhook | git | deployhook / git |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| first deploy (clone + checkout) | ${first_dh} s | ${first_git} s | $(ratio "$first_dh" "$first_git") |"
    echo "| one more commit (fetch + checkout; median of $INCREMENTS) | ${inc_dh} s | ${inc_git} s | $(ratio "$inc_dh" "$inc_git") |"
    echo "| peak RSS (deployhook's VmHWM; git clone's largest process, index-pack) | $(mib "$peak_kb") | $(mib "$git_peak_kb") | $(ratio "$peak_kb" "$git_peak_kb") |"
    echo
    echo "Of deployhook's peak, sampled every 100 ms during the first deploy: anonymous memory"
    echo "at most $(mib "$anon_peak_kb"), file pages mapped (the pack) at most $(mib "$file_peak_kb")."
    echo
    echo "deployhook's RSS: $(mib "$idle_kb") idle before, $(mib "$after_kb") 2 s after the first deploy,"
    echo "$(mib "$end_kb") after the last. Each one more commit, deployhook: $(paste -sd' ' "$W/inc_dh") s;"
    echo "git: $(paste -sd' ' "$W/inc_git") s."
    echo
    met=$(awk -v a="$first_dh" -v b="$first_git" 'BEGIN { print (a <= b ? "met" : "**missed**") }')
    inc_met=$(awk -v a="$inc_dh" -v b="$inc_git" 'BEGIN { print (a <= b ? "met" : "**missed**") }')
    near=$(awk -v a="$end_kb" -v b="$idle_kb" 'BEGIN { print (a <= 2 * b ? "met" : "**missed**") }')
    echo "Targets (issue 15): the first deploy at or under 1.0× git's time: $met in this run;"
    echo "one more commit at or under 1.0× git's: $inc_met;"
    echo "memory after the job back near idle (at most twice the idle RSS): $near. One run on a"
    echo "shared machine: read the times as ±10 %."
} > "$OUT"
cat "$OUT"
