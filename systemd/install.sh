#!/usr/bin/env bash
# Installs the systemd units and the two commands they run, as root:
#   /usr/local/bin/apsim        runs this checkout's build/daemon/cli.js with node
#   /usr/local/bin/apsim-clean  mount-scripts/apsim-clean.sh
#   /etc/systemd/system/apsim.service, /etc/systemd/system/apsim@.service
# and reloads systemd when it runs (not with --no-reload). Build first: bash mount-scripts/setup.sh. Then
#   systemctl enable --now apsim.service       # the default host at /run/apsim/sys
#   systemctl start apsim@lpar1.service        # a host named lpar1 at /run/apsim/lpar1/sys
set -euo pipefail
reload=1
[ "${1:-}" = --no-reload ] && reload=0
repo=$(cd "$(dirname "$0")/.." && pwd)
node=$(command -v node) || { echo "install.sh: node is missing (bash mount-scripts/setup.sh)" >&2; exit 1; }
[ -f "$repo/build/daemon/cli.js" ] || { echo "install.sh: $repo is not built (bash mount-scripts/setup.sh)" >&2; exit 1; }

install -d /usr/local/bin /etc/systemd/system
printf '#!/bin/sh\nexec %q %q "$@"\n' "$node" "$repo/build/daemon/cli.js" > /usr/local/bin/apsim.tmp
chmod 755 /usr/local/bin/apsim.tmp
mv -f /usr/local/bin/apsim.tmp /usr/local/bin/apsim
install -m 755 "$repo/mount-scripts/apsim-clean.sh" /usr/local/bin/apsim-clean
install -m 644 "$repo/systemd/apsim.service" "$repo/systemd/apsim@.service" /etc/systemd/system/
if [ "$reload" = 1 ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
echo "apsim: installed /usr/local/bin/apsim, /usr/local/bin/apsim-clean, apsim.service and apsim@.service"
