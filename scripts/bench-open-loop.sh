#!/usr/bin/env bash
# Open-loop latency of deployhook's durable path (issue 15): distinct, correctly signed
# GitHub pushes at a fixed rate, each answer timed from its scheduled send time, next to
# the forged-signature path at the same rate and the disk's fsync latency in state_dir.
# The hook is paused, so every push is verified, parsed, routed and committed (202,
# synchronous=FULL) while no job runs to muddy the figures.
#
#   scripts/bench-open-loop.sh            # BENCH_RATES="500 1000" BENCH_SECONDS=10
#                                         # DEPLOYHOOK_BIN: a daemon built elsewhere (A/B)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RATES=${BENCH_RATES:-500 1000}
SECONDS_EACH=${BENCH_SECONDS:-10}
cd "$ROOT"
cargo build --release --locked --quiet
DH_BIN=${DEPLOYHOOK_BIN:-$ROOT/target/release/deployhook}
cargo bench --locked --quiet --bench open_loop --no-run 2>/dev/null
sender() { cargo bench --locked --quiet --bench open_loop -- "$@"; }

W=$(mktemp -d /tmp/deployhook-open-loop.XXXXXX)
trap 'kill "${DH:-}" 2>/dev/null || true; rm -rf "$W"' EXIT
SECRET=open-loop-secret-$RANDOM$RANDOM
printf '%s' "$SECRET" > "$W/secret"
chmod 600 "$W/secret"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/hooks.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
state_dir = "$W/state"

[[hook]]
id = "site"
forge = "github"
secret_file = "$W/secret"
repository = "acme/website"
clone_url = "$ROOT"

[[hook.rule]]
branches = ["main"]
commands = [["true"]]
TOML
"$DH_BIN" serve --config "$W/hooks.toml" 2> "$W/daemon.log" &
DH=$!
for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.05
done
"$DH_BIN" pause site --url "http://127.0.0.1:$PORT" \
    --config "$W/hooks.toml" --reason "open-loop benchmark" >/dev/null

echo "| rate | path | sent | as expected | p50 ms | p99 ms | p99.9 ms | max ms |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
row() {
    local rate=$1 what=$2 line=$3
    eval "$(tr ' ' '\n' <<<"$line" | sed 's/^/local /')"
    echo "| $rate/s | $what | $sent | $ok | $p50 | $p99 | $p999 | $max |"
}
for rate in $RATES; do
    row "$rate" "signed push (202)" "$(sender send "127.0.0.1:$PORT" site "$SECRET" "$rate" "$SECONDS_EACH" --tag "r$rate-")"
    row "$rate" "forged signature (401)" "$(sender send "127.0.0.1:$PORT" site "$SECRET" "$rate" "$SECONDS_EACH" --forged --tag "f$rate-")"
done
fs=$(sender fsync "$W/state" 2000)
eval "$(tr ' ' '\n' <<<"$fs" | sed 's/^/f_/')"
echo
echo "fsync in state_dir (4 KiB, 2000 times): p50 ${f_p50} ms, p99 ${f_p99} ms, max ${f_max} ms"
