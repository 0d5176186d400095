#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ and runs each for SECONDS, one after the other.
#
#   scripts/fuzz.sh SECONDS [TARGET...]     # all targets, or only the ones named
#
# Exits 1 when any target found a crash (its input is in fuzz/artifacts/<target>/), 2 on
# a usage or build error. Corpora (fuzz/corpus/<target>/) are kept between runs and
# seeded from tests/fixtures and hooks.toml every time.
#
# cargo-fuzz needs nightly-only rustc flags; on a stable toolchain RUSTC_BOOTSTRAP=1 lets
# it use them. Set FUZZ_SANITIZER=address for AddressSanitizer (the targets reach only
# safe Rust, so it is off by default: it halves the speed). FUZZ_JOBS=N runs N targets
# at once.
set -euo pipefail

usage() {
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
}
[[ $# -ge 1 && $1 =~ ^[0-9]+$ && $1 -gt 0 ]] || usage
seconds=$1
shift

root=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$root/fuzz"
fixtures="$root/tests/fixtures"
export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-none}
jobs=${FUZZ_JOBS:-1}

command -v cargo-fuzz >/dev/null || {
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
}
command -v openssl >/dev/null || {
    echo "openssl is needed to sign the seed inputs" >&2
    exit 2
}

cd "$fuzz"
all_targets=$(cargo fuzz list)
if [[ $# -gt 0 ]]; then
    targets="$*"
    for t in $targets; do
        grep -qx "$t" <<<"$all_targets" || {
            echo "no fuzz target $t; targets: $(echo $all_targets)" >&2
            exit 2
        }
    done
else
    targets=$all_targets
fi

# -a: debug assertions on (integer overflow panics), in an optimised build.
cargo fuzz build -O -a -s "$sanitizer" || exit 2

# --- Seeds -------------------------------------------------------------------------
# The input format (fuzz/src/lib.rs): header lines, a blank line, the body.
secret="It's a Secret to Everybody"
whsec_hex=$(printf '%s' MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | od -An -tx1 | tr -d ' \n')
now=1700000000

hmac_hex() { openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1; }
sw_sig() { # id, body file
    { printf '%s.%s.' "$1" "$now"; cat "$2"; } |
        openssl dgst -sha256 -mac HMAC -macopt "hexkey:$whsec_hex" -binary | base64 -w0
}
urlencode() { perl -pe 's/([^A-Za-z0-9_.~-])/sprintf("%%%02X", ord($1))/seg'; }

# seed TARGET NAME BODY-FILE HEADER-LINE...
seed() {
    local target=$1 name=$2 body=$3
    shift 3
    mkdir -p "corpus/$target"
    { printf '%s\n' "$@"; printf '\n'; cat "$body"; } >"corpus/$target/seed-$name"
}
# intake_seed HOOK-INDEX NAME BODY-FILE HEADER-LINE...: the first byte picks the hook.
intake_seed() {
    local pick=$1 name=$2 body=$3
    shift 3
    mkdir -p corpus/intake
    { printf "\\x$(printf %02x "$pick")"; printf '%s\n' "$@"; printf '\n'; cat "$body"; } \
        >"corpus/intake/seed-$name"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
json='Content-Type: application/json'
form='Content-Type: application/x-www-form-urlencoded'

for f in push push-tag push-delete ping issues; do
    body="$fixtures/github/$f.json"
    event=push
    [[ $f == ping || $f == issues ]] && event=$f
    sig="sha256=$(hmac_hex <"$body")"
    seed parse_github "$f" "$body" "$json" "X-GitHub-Event: $event" "X-GitHub-Delivery: d-$f"
    seed verify_github "$f" "$body" "$json" "X-Hub-Signature-256: $sig"
    intake_seed 0 "github-$f" "$body" "$json" "X-GitHub-Event: $event" "X-GitHub-Delivery: d-$f"
done
{ printf 'payload='; urlencode <"$fixtures/github/push.json"; } >"$tmp/github-form"
seed parse_github form "$tmp/github-form" "$form" "X-GitHub-Event: push"
seed verify_github sha1 "$fixtures/github/ping.json" "X-Hub-Signature: sha1=$(openssl dgst -sha1 -hmac "$secret" -r <"$fixtures/github/ping.json" | cut -d' ' -f1)"

for f in push tag-push push-truncated; do
    body="$fixtures/gitlab/$f.json"
    event="Push Hook"
    [[ $f == tag-push ]] && event="Tag Push Hook"
    seed parse_gitlab "$f" "$body" "$json" "X-Gitlab-Event: $event" "Idempotency-Key: k-$f"
    seed verify_gitlab_token "$f" "$body" "$json" "X-Gitlab-Token: gl-token-0123456789"
    intake_seed 2 "gitlab-$f" "$body" "$json" "X-Gitlab-Event: $event"
done
seed parse_gitlab signed "$fixtures/gitlab/push.json" "$json" "X-Gitlab-Event: Push Hook" "webhook-id: msg_1"
seed parse_gitlab system "$fixtures/gitlab/push.json" "$json" "X-Gitlab-Event: System Hook"
intake_seed 3 gitlab-signed "$fixtures/gitlab/push.json" "$json" "X-Gitlab-Event: Push Hook" "webhook-id: msg_1"

for forge in gitea forgejo gogs; do
    body="$fixtures/$forge/push.json"
    Forge=${forge^}
    sig=$(hmac_hex <"$body")
    seed parse_gitea "$forge" "$body" "$json" "X-$Forge-Event: push" "X-$Forge-Delivery: d-$forge"
    seed verify_gitea "$forge" "$body" "$json" "X-$Forge-Signature: $sig"
    { printf 'payload='; urlencode <"$body"; } >"$tmp/$forge-form"
    seed parse_gitea "$forge-form" "$tmp/$forge-form" "$form" "X-$Forge-Event: push"
    seed verify_gitea "$forge-form" "$tmp/$forge-form" "$form" "X-$Forge-Signature: $sig"
done
intake_seed 4 gitea "$fixtures/gitea/push.json" "$json" "X-Gitea-Event: push"
intake_seed 5 forgejo "$fixtures/forgejo/push.json" "$json" "X-Forgejo-Event: push"
intake_seed 6 gogs-form "$tmp/gogs-form" "$form" "X-Gogs-Event: push"

for f in bitbucket/repo-push bitbucket/repo-push-two-refs bitbucket-server/refs-changed bitbucket-server/diagnostics-ping; do
    body="$fixtures/$f.json"
    case $f in
    */repo-push*) event=repo:push ;;
    */refs-changed) event=repo:refs_changed ;;
    *) event=diagnostics:ping ;;
    esac
    name=${f//\//-}
    seed parse_bitbucket "$name" "$body" "$json" "X-Event-Key: $event" "X-Request-UUID: {u-$name}"
    seed verify_bitbucket "$name" "$body" "$json" "X-Hub-Signature: sha256=$(hmac_hex <"$body")"
    intake_seed 7 "$name" "$body" "$json" "X-Event-Key: $event"
done

body="$fixtures/generic/push.json"
seed parse_generic push "$body" "$json" "webhook-id: msg_1"
seed verify_standard_webhooks push "$body" "$json" "webhook-id: msg_1" \
    "webhook-timestamp: $now" "webhook-signature: v1a,xyz v1,$(sw_sig msg_1 "$body")"
intake_seed 8 generic "$body" "$json" "webhook-id: msg_1"

mkdir -p corpus/config
cp "$root/hooks.toml" corpus/config/seed-hooks.toml
cat >corpus/config/seed-all-keys.toml <<'EOF'
[server]
listen = "[::1]:0"
state_dir = "/var/lib/deployhook"
max_body = "64KiB"
max_concurrent_jobs = 2
kill_grace = "1m30s"
max_log_size = "1MB"
keep_jobs = 10
keep_for = "7d"

[[hook]]
id = "gl"
forge = "gitlab"
secret_env = ["HOOK_WHSEC"]
repository = "acme/app"
clone_url = "ssh://git@git.example.invalid/acme/app.git"
shallow = true
submodules = true

[[hook.rule]]
branches = ["main", "release/**", "{a,b}-[0-9]*"]
paths = ["src/**", "!docs"]
commands = [["make", "deploy"], "echo done"]
timeout = "90s"
queue = "fifo"
retry_interrupted = true
env = { DEPLOY_ENV = "production" }
run_as = "nobody"
limits = { cpu = "10m", memory = "2GiB", nofile = 1024, nproc = 512 }
sandbox = true

[[hook]]
id = "gh"
forge = "github"
secret_env = "HOOK_SECRET"
legacy_sha1 = true
repository = "acme/site"
clone_url = "https://git.example.invalid/acme/site.git"

[[hook.rule]]
tags = ["v*"]
commands = ["make release"]
EOF
cat >corpus/config/seed-errors.toml <<'EOF'
[server]
listen = "nowhere"
max_body = "25 parsecs"
frobnicate = 1

[[hook]]
id = "gh"
forge = "githbu"
secret = "x"
secret_file = "missing"
repository = "acme"

[[hook.rule]]
branches = ["a..b", "[unclosed"]
commands = []
timeout = "soon"
EOF

# --- Run ---------------------------------------------------------------------------
dict_for() {
    case $1 in
    config) echo "$fuzz/dict/config.dict" ;;
    *) echo "$fuzz/dict/payload.dict" ;;
    esac
}

mkdir -p "$fuzz/logs"
run_one() {
    local t=$1 start status
    start=$(date +%s)
    set +e
    cargo fuzz run -O -a -s "$sanitizer" "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -dict="$(dict_for "$t")" -print_final_stats=1 >"$fuzz/logs/$t.log" 2>&1
    status=$?
    set -e
    local stats
    stats=$(awk '/^stat::number_of_executed_units/ {print $2}' "$fuzz/logs/$t.log")
    echo "$status" >"$tmp/$t.status"
    echo "$t: exit $status after $(($(date +%s) - start))s, ${stats:-?} runs (log: fuzz/logs/$t.log)"
}

failed=()
running=0
declare -A pids=()
for t in $targets; do
    run_one "$t" &
    pids[$t]=$!
    running=$((running + 1))
    if [[ $running -ge $jobs ]]; then
        wait -n || true
        running=$((running - 1))
    fi
done
for t in "${!pids[@]}"; do
    wait "${pids[$t]}" 2>/dev/null || true
done
# Each run left its exit status: `wait -n` cannot say which job ended.
for t in $targets; do
    if [[ $(cat "$tmp/$t.status" 2>/dev/null) != 0 ]]; then
        failed+=("$t")
    fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "crashes (or failed runs) in: ${failed[*]}; inputs in fuzz/artifacts/<target>/" >&2
    exit 1
fi
echo "no crashes in: $(echo $targets)"
