#!/usr/bin/env bash
# Sends a correctly signed GitHub push to a running deployhook, signed with openssl exactly
# as GitHub signs it. Matches the shipped hooks.toml's "website" hook.
#
#   scripts/demo-push.sh [URL] [SECRET] [BRANCH]
set -euo pipefail
url=${1:-http://127.0.0.1:9000/hooks/website}
secret=${2:-demo-secret-change-me}
branch=${3:-main}
after=$(printf '%040x' "$(date +%s)")   # a made-up commit id, new each run
body=$(printf '{"ref":"refs/heads/%s","before":"%040d","after":"%s","repository":{"full_name":"acme/website"},"pusher":{"name":"demo"},"commits":[{"added":["site/index.html"],"removed":[],"modified":[]}]}' \
    "$branch" 0 "$after")
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
curl -sS -i "$url" \
    -H 'Content-Type: application/json' \
    -H 'X-GitHub-Event: push' \
    -H "X-GitHub-Delivery: demo-$(date +%s%N)" \
    -H "X-Hub-Signature-256: sha256=$sig" \
    --data-binary "$body"
echo
