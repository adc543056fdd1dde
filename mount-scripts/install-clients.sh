#!/usr/bin/env bash
# Installs the real client tools the integration tests run against apsim, from Debian
# packages, as root: mdevctl, libvirt (libvirtd with its nodedev driver, and virsh), udev
# (udevadm), systemd (systemd-analyze), pyudev (a libudev client in Python), and what runs the
# README's fixture recipes (pytest, go). Only what is missing; safe to run concurrently (one
# apt at a time) and again. `bash mount-scripts/setup.sh --clients` runs it; so do the tests.
set -euo pipefail

missing () {
  need=()
  command -v mdevctl >/dev/null || need+=(mdevctl)
  [ -x /usr/sbin/libvirtd ] && compgen -G '/usr/lib/*/libvirt/connection-driver/libvirt_driver_nodedev.so' >/dev/null || need+=(libvirt-daemon)
  command -v virsh >/dev/null || need+=(libvirt-clients)
  command -v udevadm >/dev/null || need+=(udev)
  command -v systemd-analyze >/dev/null || need+=(systemd)
  command -v sudo >/dev/null || need+=(sudo)
  [ -d /usr/lib/python3/dist-packages/pyudev ] || need+=(python3-pyudev)
  /usr/bin/python3 -c 'import pytest' 2>/dev/null || need+=(python3-pytest)
  command -v go >/dev/null || need+=(golang-go)
}

missing
[ ${#need[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || { echo "install-clients.sh: ${need[*]} missing; installing needs root" >&2; exit 1; }

mkdir -p /run/lock
exec 9>/run/lock/apsim-install-clients.lock
flock 9
missing # another run may have installed them while this one waited
[ ${#need[@]} -eq 0 ] && exit 0
echo "apsim: installing ${need[*]}" >&2
apt=(apt-get -o DPkg::Lock::Timeout=300 -y -qq --no-install-recommends)
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine may be empty or old: update once if the install fails.
if ! "${apt[@]}" install "${need[@]}" >/dev/null 2>&1; then
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  "${apt[@]}" install "${need[@]}" >/dev/null
fi
missing
[ ${#need[@]} -eq 0 ] || { echo "install-clients.sh: still missing after the install: ${need[*]}" >&2; exit 1; }
