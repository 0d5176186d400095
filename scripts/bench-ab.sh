#!/usr/bin/env bash
# A/B of two deployhook builds at saturation: for each build in turn (interleaved, ROUNDS
# times), a fresh daemon on a fresh state_dir takes distinct signed GitHub pushes from wrk
# (64 connections, real deploys of a small repository, supersede queue: the shipped
# defaults), then forged ones (the reject path: HTTP + verify, no parse, no store). Prints
# one table row per run and each build's medians, with ingest as a share of reject.
# Numbers go in commit messages; scripts/bench.sh stays the report of record.
#
#   scripts/bench-ab.sh A_BIN B_BIN     # BENCH_ROUNDS=3 BENCH_SECONDS=10 BENCH_CONNECTIONS=64
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/bench" && pwd)
[[ $# == 2 ]] || { echo "usage: $0 A_BIN B_BIN" >&2; exit 2; }
BINS=("$1" "$2")
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=2
for tool in wrk git python3 curl; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 1; }
done

W=$(mktemp -d /tmp/deployhook-ab.XXXXXX)
DH_PID=
trap '[[ -n $DH_PID ]] && kill "$DH_PID" 2>/dev/null; rm -rf "$W"' EXIT
SECRET=ab-secret-$RANDOM$RANDOM
printf '%s' "$SECRET" > "$W/secret"
chmod 600 "$W/secret"
git init -q --bare "$W/origin.git"
git -C "$W/origin.git" symbolic-ref HEAD refs/heads/main
python3 "$HERE/mkrepo.py" 200 | git -C "$W/origin.git" fast-import --quiet
TIP=$(git -C "$W/origin.git" rev-parse main)
PARENT=$(git -C "$W/origin.git" rev-parse main~1)
N=$((SECS * 40000 + 50000))
for r in $(seq 1 "$ROUNDS"); do
    for b in 0 1; do
        python3 "$HERE/payload.py" wrk-data "$W/data-$r-$b" "$N" "$SECRET" "$PARENT" "$TIP" "r$r-b$b-" >/dev/null
    done
done
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

rate() { # wrk-output expected-status: requests/s; any other answer fails the run
    awk -v want="status_$2" '
        $1 == "RESULT" && $2 ~ /^status_/ && $2 != want && $3 > 0 { bad = bad " " $2 "x" $3 }
        $1 == "RESULT" && $2 == want { ok = $3 }
        $1 == "RESULT" && $2 == "requests" { n = $3 }
        $1 == "RESULT" && $2 == "duration_us" { us = $3 }
        END {
            if (bad != "" || ok == 0) { print "unexpected answers:" bad > "/dev/stderr"; exit 1 }
            printf "%.0f\n", n / (us / 1e6)
        }' "$1"
}

run() { # round build: one daemon, ingest then reject; prints "ingest_rps reject_rps"
    local r=$1 b=$2 state=$W/state-$1-$2
    cat > "$W/hooks-$r-$b.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
state_dir = "$state"
command_user = "$(id -un)"

[[hook]]
id = "bench"
forge = "github"
secret_file = "$W/secret"
repository = "acme/website"
clone_url = "$W/origin.git"
[[hook.rule]]
branches = ["main"]
commands = [["true"]]
TOML
    "${BINS[$b]}" serve --config "$W/hooks-$r-$b.toml" >>"$W/daemon-$b.log" 2>&1 &
    DH_PID=$!
    local deadline=$((SECONDS + 30))
    until curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { echo "build $b did not start; see $W/daemon-$b.log" >&2; exit 1; }
        sleep 0.05
    done
    local rps=()
    wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --timeout 10s -s "$HERE/ingest.lua" \
        "http://127.0.0.1:$PORT/hooks/bench" -- "$W/data-$r-$b" "ab$r$b-" "$THREADS" > "$W/ingest.out"
    rps+=("$(rate "$W/ingest.out" 202)")
    wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --timeout 10s -s "$HERE/reject.lua" \
        "http://127.0.0.1:$PORT/hooks/bench" -- "$W/data-$r-$b/bad" > "$W/reject.out"
    rps+=("$(rate "$W/reject.out" 401)")
    kill "$DH_PID"
    wait "$DH_PID" 2>/dev/null || true
    DH_PID=
    echo "${rps[*]}"
}

echo "| round | build | ingest req/s | reject req/s | ingest / reject |"
echo "| --- | --- | ---: | ---: | ---: |"
for r in $(seq 1 "$ROUNDS"); do
    for b in 0 1; do
        read -r ing rej < <(run "$r" "$b")
        echo "$b $ing $rej" >> "$W/all"
        awk -v r="$r" -v b="$b" -v i="$ing" -v j="$rej" \
            'BEGIN { printf "| %s | %s | %.0f | %.0f | %.1f%% |\n", r, (b ? "B" : "A"), i, j, 100 * i / j }'
    done
done
for b in 0 1; do
    awk -v b="$b" '$1 == b { print $2, $3 }' "$W/all" | sort -n | awk -v name="$([[ $b == 0 ]] && echo A || echo B)" '
        { i[NR] = $1; j[NR] = $2 } END { m = int((NR + 1) / 2); printf "%s median ingest %.0f req/s\n", name, i[m] }'
done
