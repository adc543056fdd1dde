#!/usr/bin/env bash
# Installs what is missing, mounts the default simulated host (the LPAR of the kernel's
# vfio-ap documentation: adapters 4, 5 (CEX5C) and 6 (CEX5A), domains 4, 0x47, 0xab, 0xff)
# at ${APSIM_DIR:-/run/apsim/sys}, and shows it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash mount-scripts/setup.sh
S=${APSIM_DIR:-/run/apsim/sys}
mkdir -p "$S"
if node build/daemon/cli.js status "$S" >/dev/null 2>&1; then
  echo "apsim: already mounted at $S"
else
  node build/daemon/cli.js mount "$S" --daemon
fi
echo
echo "== $S/bus/ap"
for f in ap_adapter_mask ap_usage_domain_mask apmask aqmask ap_domain bindings features; do
  printf '%-22s %s\n' "$f" "$(cat "$S/bus/ap/$f")"
done
echo
echo "== cards and queues ($S/devices/ap)"
for c in "$S"/devices/ap/card*; do
  printf '%s  type=%s online=%s driver=%s\n' "$(basename "$c")" "$(cat "$c/type")" "$(cat "$c/online")" "$(basename "$(readlink "$c/driver")")"
  for q in "$c"/[0-9a-f][0-9a-f].*; do
    printf '  %s  driver=%s\n' "$(basename "$q")" "$(basename "$(readlink "$q/driver")")"
  done
done
echo
echo "== $S/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough"
T=$S/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough
printf 'name=%s device_api=%s available_instances=%s\n' "$(cat "$T/name")" "$(cat "$T/device_api")" "$(cat "$T/available_instances")"
echo
echo "Unmount with: node build/daemon/cli.js umount $S"
