#!/usr/bin/env bash
# Installs what apsim needs on a Debian machine, as root: FUSE (libfuse2 for fuse-native,
# fuse3 for fusermount), Node.js when missing, the npm dependencies, and the build.
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
dpkg -s libfuse2 >/dev/null 2>&1 || need+=(libfuse2)
command -v fusermount >/dev/null 2>&1 || command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "apsim setup: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
