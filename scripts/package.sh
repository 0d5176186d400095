#!/usr/bin/env bash
# Builds the .deb and .rpm packages:
#   target/debian/deployhook_<version>-1_<arch>.deb
#   target/generate-rpm/deployhook-<version>-1.<arch>.rpm
# from one release build, with the man pages, shell completions and hooks.toml schema
# that `deployhook generate` writes into target/assets/. Metadata: Cargo.toml
# ([package.metadata.deb], [package.metadata.generate-rpm]); files: packaging/.
#
#   scripts/package.sh                  # both packages; prints their paths
#   scripts/package.sh --update-schema  # only refresh packaging/hooks.schema.json
#
# Needs cargo-deb and cargo-generate-rpm (cargo install --locked cargo-deb
# cargo-generate-rpm), and dpkg-shlibdeps (dpkg-dev) for the .deb's dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

assets=target/assets

if [ "${1:-}" = "--update-schema" ]; then
    cargo run --locked --quiet -- generate --out "$assets" >/dev/null
    cp "$assets/hooks.schema.json" packaging/hooks.schema.json
    echo "packaging/hooks.schema.json"
    exit 0
elif [ $# -gt 0 ]; then
    echo "usage: $0 [--update-schema]" >&2
    exit 2
fi

for tool in cargo-deb cargo-generate-rpm; do
    if ! command -v "$tool" >/dev/null; then
        echo "$0: $tool is missing: cargo install --locked $tool" >&2
        exit 1
    fi
done

cargo build --release --locked
target=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

rm -rf "$assets" "$target"/debian/deployhook_*.deb "$target"/generate-rpm/deployhook-*.rpm
"$target/release/deployhook" generate --out "$assets" >/dev/null
# Both formats want compressed man pages; -n keeps the bytes the same from run to run.
gzip -9n "$assets"/*.1 "$assets"/*.5
# cargo-deb strips the binaries itself; cargo-generate-rpm packs what it is given.
strip --strip-unneeded -o "$assets/deployhook" "$target/release/deployhook"
strip --strip-unneeded -o "$assets/deployhook-sandbox" "$target/release/deployhook-sandbox"
# Debian wants a changelog in its own format; the project's history is CHANGELOG.md.
version=$("$target/release/deployhook" --version | cut -d' ' -f2)
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
cat >"$assets/changelog" <<EOF
deployhook ($version-1) unstable; urgency=medium

  * Upstream release $version: see the project's CHANGELOG.md.

 -- deployhook maintainers <maintainers@deployhook.invalid>  $date
EOF
if ! cmp -s "$assets/hooks.schema.json" packaging/hooks.schema.json; then
    echo "$0: packaging/hooks.schema.json is stale: run $0 --update-schema" >&2
    exit 1
fi

cargo deb --locked --no-build >/dev/null
cargo generate-rpm --target-dir "$target"
ls -1 "$target"/debian/deployhook_*.deb "$target"/generate-rpm/deployhook-*.rpm
