#!/usr/bin/env bash
# Vendors the request-body schemas of the GitHub operations deployhook calls, taken from
# GitHub's official OpenAPI description as the npm package @octokit/openapi publishes it.
#
#   scripts/github-openapi-fragment.sh [VERSION]     # the newest version when none is given
#
# Writes tests/fixtures/github-openapi/requests.json (each operation's JSON request-body
# schema, every $ref resolved inline, with the package's version and licence) and copies the
# package's LICENSE beside it. notify::forge_api's unit tests check every GitHub body the
# builders make against these schemas, offline; run this again to move to a newer
# description, then run those tests. Needs npm (through its configured registry), node and tar.
set -euo pipefail

usage() {
    echo "usage: $0 [VERSION]" >&2
    exit 2
}
[[ $# -le 1 ]] || usage
spec="@octokit/openapi${1:+@$1}"

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/tests/fixtures/github-openapi"
for tool in npm node tar; do
    command -v "$tool" >/dev/null || {
        echo "$tool is needed" >&2
        exit 2
    }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$spec" >/dev/null)
tarball=$(find "$tmp" -maxdepth 1 -name 'octokit-openapi-*.tgz' | head -n 1)
[[ -n $tarball ]] || {
    echo "npm pack $spec made no tarball" >&2
    exit 1
}
tar -xzf "$tarball" -C "$tmp"
pkg="$tmp/package"
# api.github.com, not ghec or ghes-*: deployhook's default API is github.com's.
description="$pkg/generated/api.github.com.json"
[[ -f $description && -f $pkg/LICENSE ]] || {
    echo "$spec does not have generated/api.github.com.json and LICENSE: has its layout changed?" >&2
    exit 1
}

mkdir -p "$out"
node - "$pkg/package.json" "$description" "$out/requests.json" <<'EOF'
const fs = require("fs");
const [pkgPath, descriptionPath, outPath] = process.argv.slice(2);
const pkg = JSON.parse(fs.readFileSync(pkgPath, "utf8"));
const doc = JSON.parse(fs.readFileSync(descriptionPath, "utf8"));

// The operations notify::forge_api builds requests for.
const operations = [
  ["post", "/repos/{owner}/{repo}/statuses/{sha}"],
  ["post", "/repos/{owner}/{repo}/deployments"],
  ["post", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses"],
];

function pointer(ref) {
  if (!ref.startsWith("#/")) throw new Error(`not a local $ref: ${ref}`);
  return ref
    .slice(2)
    .split("/")
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((node, key) => {
      if (node === undefined || !(key in node)) throw new Error(`dangling $ref: ${ref}`);
      return node[key];
    }, doc);
}

// Copies `node` with every {"$ref": ...} replaced by what it points at (siblings of a $ref
// are kept, as OpenAPI 3.1 allows). A cycle would make the fragment infinite: refused.
function resolve(node, seen = []) {
  if (Array.isArray(node)) return node.map((n) => resolve(n, seen));
  if (node === null || typeof node !== "object") return node;
  let base = {};
  if (typeof node.$ref === "string") {
    if (seen.includes(node.$ref)) throw new Error(`cyclic $ref: ${node.$ref}`);
    base = resolve(pointer(node.$ref), [...seen, node.$ref]);
  }
  const copy = { ...base };
  for (const [k, v] of Object.entries(node)) {
    if (k !== "$ref") copy[k] = resolve(v, seen);
  }
  return copy;
}

const fragment = {
  source: `${pkg.name} ${pkg.version}`,
  license: pkg.license,
  extracted_by: "scripts/github-openapi-fragment.sh",
  operations: {},
};
for (const [method, path] of operations) {
  const op = doc.paths?.[path]?.[method];
  if (!op) throw new Error(`${method.toUpperCase()} ${path} is not in the description`);
  const body = resolve(op.requestBody ?? {});
  const schema = body.content?.["application/json"]?.schema;
  if (!schema) throw new Error(`${method.toUpperCase()} ${path} has no application/json request body`);
  fragment.operations[`${method.toUpperCase()} ${path}`] = schema;
}
fs.writeFileSync(outPath, JSON.stringify(fragment, null, 2) + "\n");
console.log(`${outPath}: ${fragment.source} (${fragment.license})`);
EOF
cp "$pkg/LICENSE" "$out/LICENSE"
echo "$out/LICENSE"
