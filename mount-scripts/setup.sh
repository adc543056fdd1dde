#!/usr/bin/env bash
# Installs what apsim needs on a Debian or Ubuntu machine, as root: FUSE (libfuse2, called
# libfuse2t64 on Ubuntu 24.04, for fuse-native; fuse3 for fusermount), Node.js when missing,
# the npm dependencies, and the build.
# Safe to run again; it only installs what is missing.
# --clients also installs the real tools the integration tests drive (mdevctl, libvirt, udev,
# systemd: mount-scripts/install-clients.sh); the tests install them themselves otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in
  --clients) bash mount-scripts/install-clients.sh ;;
  '') ;;
  *) echo "usage: setup.sh [--clients]" >&2; exit 2 ;;
esac

need=()
# fuse-native needs libfuse2; Ubuntu 24.04 renamed the package libfuse2t64.
dpkg -s libfuse2 >/dev/null 2>&1 || dpkg -s libfuse2t64 >/dev/null 2>&1 || need+=(libfuse2)
command -v fusermount >/dev/null 2>&1 || command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
# The distribution's Node.js satisfies `engines` (>=18): Debian 12 and Ubuntu 24.04 ship 18.19.
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  if apt-cache show libfuse2t64 >/dev/null 2>&1; then need=("${need[@]/#libfuse2/libfuse2t64}"); fi
  echo "apsim setup: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
  { echo "apsim setup: Node.js $(node --version) is too old; apsim needs Node.js 18 or newer" >&2; exit 1; }

# Users who are not root mount through fusermount, which opens /dev/fuse as the user: the fuse
# package's udev rule makes it 0666; without udevd (containers, minimal VMs) it keeps the
# kernel's 0600 and rootless apsim cannot mount. Apply the rule's mode.
if [ -c /dev/fuse ] && [ "$(stat -c %a /dev/fuse)" = 600 ]; then
  echo "apsim setup: /dev/fuse is 0600 (no udev rule applied); making it 0666 as the fuse package's rule does" >&2
  chmod 0666 /dev/fuse
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
