#!/usr/bin/env bash
# Package test: builds the .deb and .rpm (scripts/package.sh), checks their contents and
# metadata, lints the .deb, then installs it on this machine and uses it: `deployhook
# check` on the default config, the unit's ExecStart run by hand as the deployhook user
# (PID 1 here is not systemd) with systemd's readiness protocol checked, a signed push
# deployed by a second daemon, a reinstall that keeps a changed conffile, then remove and
# purge, checking what is left after each step.
#
# Runs as root, on Debian 12 (CI runs it from .ci/run); installs what it needs with
# apt-get and cargo install. It leaves the package purged and the deployhook user in place
# (as a real purge does). Any earlier installation of the package is purged first.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

unit=/usr/lib/systemd/system/deployhook.service
state=/var/lib/deployhook
work=$state/pkgtest # the pushed-to daemon's config, repository and store

step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - started))"; }
fail() {
    echo "test-packages: FAIL: $*" >&2
    exit 1
}
expect_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }
expect_file() { [ -e "$1" ] || fail "$1 is missing"; }
expect_gone() { [ ! -e "$1" ] || fail "$1 is still there"; }
# expect_stat PATH OWNER:GROUP MODE
expect_stat() { expect_eq "$(stat -c '%U:%G %a' "$1")" "$2 $3" "owner and mode of $1"; }
# A deadline for everything that waits, so a hang fails instead of stalling CI.
wait_until() { # SECONDS WHAT COMMAND...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || fail "timed out after waiting for $what"
        sleep 0.1
    done
}

[ "$(id -u)" = 0 ] || fail "run as root: it installs and purges the package"

step "tools"
need=()
command -v rpm >/dev/null || need+=(rpm)
command -v lintian >/dev/null || need+=(lintian)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v man >/dev/null || need+=(man-db) # systemd-analyze verify looks up man:deployhook(1)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v git >/dev/null || need+=(git)
command -v python3 >/dev/null || need+=(python3-minimal) # listens on NOTIFY_SOCKET
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Pinned, so that a new release cannot change the packages under the test. Unoptimized
# (cargo-deb keeps its compressors optimized): half the build time, on a fresh CI machine
# minutes, for a few seconds more when packing.
tools=()
command -v cargo-deb >/dev/null || tools+=(cargo-deb@3.8.0)
command -v cargo-generate-rpm >/dev/null || tools+=(cargo-generate-rpm@0.21.1)
if ((${#tools[@]})); then
    CARGO_PROFILE_RELEASE_OPT_LEVEL=0 cargo install --locked --quiet "${tools[@]}"
fi

step "build"
built=$(scripts/package.sh)
deb=$(grep -E '/deployhook_[^/]*\.deb$' <<<"$built") || fail "no .deb: $built"
rpm=$(grep -E '/deployhook-[^/]*\.rpm$' <<<"$built") || fail "no .rpm: $built"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)

files=(
    /etc/deployhook/hooks.toml
    /usr/bin/deployhook
    /usr/libexec/deployhook/deployhook-sandbox
    /usr/lib/systemd/system/deployhook.service
    /usr/share/bash-completion/completions/deployhook
    /usr/share/deployhook/hooks.schema.json
    /usr/share/doc/deployhook/README.md
    /usr/share/fish/vendor_completions.d/deployhook.fish
    /usr/share/man/man1/deployhook.1.gz
    /usr/share/man/man1/deployhook-check.1.gz
    /usr/share/man/man1/deployhook-serve.1.gz
    /usr/share/man/man5/hooks.toml.5.gz
)

step "the .deb: $deb"
dpkg-deb --info "$deb" >/dev/null
expect_eq "$(dpkg-deb -f "$deb" Package Version Architecture | tr '\n' ' ')" \
    "Package: deployhook Version: $version-1 Architecture: $(dpkg --print-architecture) " \
    "control fields"
depends=$(dpkg-deb -f "$deb" Depends)
for dep in adduser libc6 libssl3; do
    [[ $depends == *"$dep"* ]] || fail "Depends lacks $dep: $depends"
done
deb_files=$(dpkg-deb -c "$deb" | awk '{print substr($6, 2)}')
for f in "${files[@]}" /usr/share/zsh/vendor-completions/_deployhook \
    /usr/share/doc/deployhook/copyright /usr/share/doc/deployhook/changelog.Debian.gz; do
    grep -qx "$f" <<<"$deb_files" || fail "$f is not in the .deb"
done
expect_eq "$(dpkg-deb -I "$deb" conffiles)" /etc/deployhook/hooks.toml "the .deb's conffiles"
for script in postinst prerm postrm; do
    dpkg-deb -I "$deb" "$script" | sh -n || fail "$script is not valid sh"
done
# Warnings fail too; the only info-level tags are about how Rust builds binaries.
lintian_out=$(lintian --fail-on error,warning "$deb" 2>&1) || fail "lintian: $lintian_out"
lintian_out=$(grep -v '^running with root' <<<"$lintian_out" || true)
echo "lintian: ${lintian_out:-no errors, no warnings}"

step "the .rpm: $rpm"
expect_eq "$(rpm -qp --qf '%{NAME} %{VERSION}-%{RELEASE} %{ARCH}' "$rpm" 2>/dev/null)" \
    "deployhook $version-1 $(uname -m)" "rpm name and version"
rpm_files=$(rpm -qpl "$rpm" 2>/dev/null)
for f in "${files[@]}" /usr/share/zsh/site-functions/_deployhook; do
    grep -qx "$f" <<<"$rpm_files" || fail "$f is not in the .rpm"
done
# c: %config, n: noreplace (an edited file is kept on upgrade).
expect_eq "$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEMODES:perms}\n]' "$rpm" 2>/dev/null |
    grep '^/etc/')" "/etc/deployhook/hooks.toml cn root:deployhook -rw-r-----" "the .rpm's config file"
rpm_scripts=$(rpm -qp --scripts "$rpm" 2>/dev/null)
for want in "useradd --system" "install -d -o deployhook" "disable --now" "try-restart"; do
    [[ $rpm_scripts == *"$want"* ]] || fail "the .rpm's scriptlets lack '$want'"
done
rpm -qp --requires "$rpm" 2>/dev/null | grep -qx '/usr/sbin/useradd' || fail "rpm requires"

step "install"
if dpkg-query -W -f='${Status}' deployhook 2>/dev/null | grep -q 'installed\|config-files'; then
    echo "purging an earlier installation of deployhook first"
    dpkg --purge deployhook >/dev/null
fi
out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" </dev/null 2>&1) ||
    fail "apt-get install $deb: $out"
for f in "${files[@]}"; do expect_file "$f"; done
expect_eq "$(/usr/bin/deployhook --version)" "deployhook $version" "deployhook --version"
expect_eq "$(getent passwd deployhook | cut -d: -f6,7)" "$state:/usr/sbin/nologin" \
    "the deployhook user's home and shell"
getent passwd deployhook-run >/dev/null || fail "the package did not create the deployhook-run user"
expect_eq "$(id -gn deployhook-run)" deployhook-run "deployhook-run's group"
expect_stat "$state" deployhook:deployhook 750
expect_stat "$state/api-token" deployhook:deployhook 600
grep -Eqx '[0-9a-f]{64}' "$state/api-token" || fail "the installed API token is not 64 hex digits"
expect_stat /etc/deployhook root:deployhook 750
expect_stat /etc/deployhook/hooks.toml root:root 644
cmp -s /usr/share/deployhook/hooks.schema.json packaging/hooks.schema.json ||
    fail "the installed schema is not packaging/hooks.schema.json"
expect_eq "$(man -w deployhook)" /usr/share/man/man1/deployhook.1.gz "man -w deployhook"
expect_eq "$(man -w 5 hooks.toml)" /usr/share/man/man5/hooks.toml.5.gz "man -w 5 hooks.toml"

step "the unit"
verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify printed: $verify"
exposure=$(systemd-analyze security --offline=true "$unit" 2>&1 |
    sed -n 's/.*Overall exposure level for deployhook.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "no exposure level from systemd-analyze security"
awk -v e="$exposure" 'BEGIN { exit !(e <= 4.0) }' || fail "exposure $exposure is above 4.0"
echo "systemd-analyze security --offline=true: $exposure"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
exec_pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
expect_eq "$exec_start" "/usr/bin/deployhook serve --config /etc/deployhook/hooks.toml" ExecStart

# As systemd starts the service: its user and groups, its ambient capabilities, its
# working directory, a clean environment. setpriv and env exec, so a daemon started in the
# background is $!.
caps=$(sed -n 's/^AmbientCapabilities=//p' "$unit" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
[ -n "$caps" ] || fail "the unit grants no AmbientCapabilities"
as_deployhook=(setpriv --reuid=deployhook --regid=deployhook --init-groups
    --inh-caps="$caps" --ambient-caps="$caps"
    env -i -C "$state" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    HOME="$state" USER=deployhook LOGNAME=deployhook SHELL=/usr/sbin/nologin LANG=C.UTF-8)
as_deployhook() { "${as_deployhook[@]}" "$@"; }
daemons=()
tmp=$(mktemp -d)
chmod 0755 "$tmp" # the deployhook user reaches the notify socket in it
cleanup() {
    local pid
    for pid in "${daemons[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! alive "$1"; }
stop_daemon() { # PID LOG
    kill -TERM "$1"
    wait_until 60 "deployhook to stop" dead "$1"
    wait "$1" || fail "the daemon exited with $?: $(cat "$2")"
    grep -q 'stopped' "$2" || fail "no 'stopped' in the log: $(cat "$2")"
}

step "ExecStartPre: deployhook check on the default config"
# shellcheck disable=SC2086 # the unit's command line, split as systemd splits it
check_out=$(as_deployhook $exec_pre 2>&1) || fail "$exec_pre: $check_out"
expect_eq "$check_out" "/etc/deployhook/hooks.toml: ok (0 hooks)" "$exec_pre"

step "ExecStart on the default config, with systemd's NOTIFY_SOCKET"
if (exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null; then
    echo "SKIPPED: 127.0.0.1:9000 is taken on this machine (CI's is free)"
else
    install -d -m 0755 "$tmp/notify"
    python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
open(sys.argv[1] + ".ready", "w").close()
while True:
    msg = s.recv(4096).decode()
    print(msg.replace("\n", " "), flush=True)
    if "STOPPING=1" in msg:
        break
' "$tmp/notify/socket" >"$tmp/notify.log" &
    notify_listener=$!
    daemons+=("$notify_listener")
    wait_until 10 "the NOTIFY_SOCKET listener" test -e "$tmp/notify/socket.ready"
    # shellcheck disable=SC2086
    "${as_deployhook[@]}" NOTIFY_SOCKET="$tmp/notify/socket" $exec_start 2>"$tmp/default.log" &
    pid=$!
    daemons+=("$pid")
    wait_until 60 "READY=1" grep -q 'READY=1' "$tmp/notify.log"
    alive "$pid" || fail "the daemon died: $(cat "$tmp/default.log")"
    expect_eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:9000/hooks/none)" \
        404 "a push to a hook the default config does not have"
    # ExecReload=
    kill -HUP "$pid"
    wait_until 30 "the reload" grep -q 'config reloaded' "$tmp/default.log"
    reloaded() { grep -q RELOADING=1 "$tmp/notify.log" && [ "$(grep -c READY=1 "$tmp/notify.log")" -ge 2 ]; }
    wait_until 10 "RELOADING=1, then READY=1" reloaded
    stop_daemon "$pid" "$tmp/default.log"
    wait_until 10 "STOPPING=1" dead "$notify_listener"
    echo "notifications: $(tr '\n' '|' <"$tmp/notify.log")"
fi

step "a signed push, deployed by deployhook-run for the deployhook user's daemon"
secret_b64=$(openssl rand -base64 32)
# The commands' user passes through to its work tree, as through a real state_dir (the
# daemon makes its state_dir 0751 when commands run as another user).
install -d -o deployhook -g deployhook -m 0751 "$work"
chmod 0751 "$state"
printf 'whsec_%s' "$secret_b64" >"$work/secret"
chown deployhook:deployhook "$work/secret"
chmod 0600 "$work/secret"
as_deployhook git init -q -b main "$work/repo"
as_deployhook git -C "$work/repo" -c user.name=test -c user.email=test@example.invalid \
    commit -q --allow-empty -m "the pushed commit"
sha=$(as_deployhook git -C "$work/repo" rev-parse HEAD)
cat >"$work/hooks.toml" <<'EOF'
[server]
listen = "127.0.0.1:0"
state_dir = "state"

[[hook]]
id = "app"
forge = "generic"
secret_file = "secret"
repository = "acme/app"
clone_url = "repo"

[[hook.rule]]
branches = ["main"]
commands = ["echo \"deployed $DEPLOYHOOK_SHA as $(id -un)\""]
EOF
chown deployhook:deployhook "$work/hooks.toml"
# shellcheck disable=SC2086
"${as_deployhook[@]}" ${exec_start/\/etc\/deployhook\/hooks.toml/$work/hooks.toml} 2>"$tmp/push.log" &
pid=$!
daemons+=("$pid")
listening() {
    alive "$pid" || fail "the daemon died: $(cat "$tmp/push.log")"
    addr=$(sed 's/\x1b\[[0-9;]*m//g' "$tmp/push.log" | grep -o 'listening on [0-9.:]*' | cut -d' ' -f3)
    [ -n "$addr" ]
}
wait_until 60 "the daemon to listen" listening
# Signed exactly as README.md shows for a generic hook (Standard Webhooks).
body='{"repository":"acme/app","ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"'$sha'"}'
id="msg_$(date +%s%N)"
ts=$(date +%s)
key=$(printf '%s' "$secret_b64" | base64 -d | od -An -tx1 | tr -d ' \n')
sig=$(printf '%s' "$id.$ts.$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64)
status=$(curl -sS -o "$tmp/answer" -w '%{http_code}' "http://$addr/hooks/app" \
    -H 'Content-Type: application/json' -H "webhook-id: $id" -H "webhook-timestamp: $ts" \
    -H "webhook-signature: v1,$sig" --data-binary "$body")
expect_eq "$status" 202 "the push's status ($(cat "$tmp/answer"))"
grep -q '"status":"queued"' "$tmp/answer" || fail "answer: $(cat "$tmp/answer")"
job_done() {
    /usr/bin/deployhook jobs --url "http://$addr" --config "$work/hooks.toml" >"$tmp/jobs" 2>&1 || return 1
    ! grep -Eq ' (queued|running) ' "$tmp/jobs"
}
wait_until 120 "the job to finish" job_done
grep -Eq '^ +1 +app +0 +succeeded ' "$tmp/jobs" || fail "job: $(cat "$tmp/jobs"; /usr/bin/deployhook logs 1 --url "http://$addr" --config "$work/hooks.toml")"
/usr/bin/deployhook logs 1 --url "http://$addr" --config "$work/hooks.toml" >"$tmp/job.log"
grep -q "deployed $sha as deployhook-run" "$tmp/job.log" || fail "job log: $(cat "$tmp/job.log")"
sed 's/\x1b\[[0-9;]*m//g' "$tmp/push.log" | grep -q 'launcher=/usr/libexec/deployhook/deployhook-sandbox' ||
    fail "the daemon does not start commands through the packaged launcher: $(grep -i launcher "$tmp/push.log")"
echo "push answered 202; job 1 succeeded: $(grep -o "deployed $sha as deployhook-run" "$tmp/job.log")"
stop_daemon "$pid" "$tmp/push.log"
expect_file "$work/state/deployhook.db"

step "reinstall keeps a changed conffile"
echo '# changed here' >>/etc/deployhook/hooks.toml
dpkg -i "$deb" </dev/null >/dev/null 2>&1 || fail "dpkg -i $deb"
expect_eq "$(tail -n1 /etc/deployhook/hooks.toml)" "# changed here" "the conffile after a reinstall"
expect_stat /etc/deployhook root:deployhook 750

step "remove: program gone, config and data kept"
dpkg --remove deployhook >/dev/null
expect_eq "$(dpkg-query -W -f='${Status}' deployhook)" "deinstall ok config-files" "status"
for f in /usr/bin/deployhook /usr/libexec/deployhook "$unit" /usr/share/deployhook /usr/share/man/man1/deployhook.1.gz; do
    expect_gone "$f"
done
expect_eq "$(tail -n1 /etc/deployhook/hooks.toml)" "# changed here" "the conffile after remove"
expect_file "$work/state/deployhook.db"
getent passwd deployhook >/dev/null || fail "remove deleted the deployhook user"

step "purge: config and data gone, the user kept"
dpkg --purge deployhook >/dev/null
dpkg-query -W deployhook >/dev/null 2>&1 && fail "dpkg still knows deployhook"
expect_gone /etc/deployhook
expect_gone "$state"
dpkg-statoverride --list /etc/deployhook >/dev/null && fail "the statoverride is left"
getent passwd deployhook >/dev/null || fail "purge deleted the deployhook user"

echo
echo "test-packages: ok: both packages built and checked; lintian clean, exposure $exposure ($((SECONDS - started))s)"
