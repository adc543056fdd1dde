#!/usr/bin/env bash
# apsim-ns.sh [--mdevctl-dir D] DIR -- CMD [ARGS...]
#
# Runs CMD in a private mount namespace where the live apsim mount DIR is bound over /sys, so
# tools with hard-coded paths (mdevctl 1.2, libvirt, udevadm, ap-check) see the simulated
# host. Root only (unshare -m). No Node in the loop: start the host first, e.g. with
# `apsim mount DIR --daemon` or the apsim@.service unit, then
#
#   apsim-ns.sh /run/apsim/sys -- mdevctl types
#   apsim-ns.sh /run/apsim/sys -- bash -c 'udevadm info /sys/devices/ap/card04'
#
# - The host's mount table is never touched: the bind exists only inside the namespace and
#   goes away with its last process. DIR must be the mount's root (binding a subdirectory
#   breaks the tree's relative links).
# - --mdevctl-dir D binds D over /etc/mdevctl.d too (mdevctl's persistent definitions and
#   callouts), so `mdevctl define` leaves the host's /etc alone; skipped when the host has no
#   /etc/mdevctl.d (no mdevctl installed).
# - CMD gets SYSFS_ROOT=/sys (s390-tools), SYSTEMD_DEVICE_VERIFY_SYSFS=0 (libudev, and so
#   libvirt and udevadm, accept /sys only if it is sysfs unless this is set) and
#   APSIM_ROOT=DIR (the mount itself, for `apsim lpar`, `apsim guest`, ...).
# - When CMD exits, whatever it left running in the namespace (a libvirtd, a sleep) gets
#   SIGTERM, then SIGKILL after 5 s: nothing outlives the run using the simulated /sys.
# - SIGTERM and SIGHUP are passed on to CMD; SIGINT from the terminal reaches CMD directly.
#
# Exit status: CMD's, 128+N when signal N ended it, 125 when the namespace could not be set
# up. (`apsim run` uses this script with --exec: CMD replaces the script, and apsim run
# itself passes signals on and ends what CMD left behind.)
set -euo pipefail

die () { echo "apsim-ns.sh: $*" >&2; exit 125; }
usage () { sed -n '2,30{s/^# \{0,1\}//;p}' "$0"; exit "${1:-125}"; }

inner=0
exec_cmd=0
mdevctl_dir=
while [ $# -gt 0 ]; do
  case $1 in
    --inner) inner=1; shift ;;
    --exec) exec_cmd=1; shift ;;
    --mdevctl-dir) [ $# -ge 2 ] || die "--mdevctl-dir needs a directory"; mdevctl_dir=$2; shift 2 ;;
    --mdevctl-dir=*) mdevctl_dir=${1#*=}; shift ;;
    -h|--help) usage 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[ $# -ge 3 ] && [ "$2" = -- ] || die "usage: apsim-ns.sh [--mdevctl-dir D] DIR -- CMD [ARGS...]"
dir=$1
shift 2

if [ "$inner" = 0 ]; then
  [ "$(id -u)" = 0 ] || die "a mount namespace needs root (use apsim run --env-only for SYSFS_ROOT alone)"
  command -v unshare >/dev/null || die "unshare (util-linux) is missing"
  dir=$(realpath -e -- "$dir" 2>/dev/null) || die "$1: no such directory, or a dead mount (apsim-clean.sh cleans it)"
  fstype=$(awk -v d="$dir" '$5 == d { sub(/.* - /, ""); t = $1 } END { print t }' /proc/self/mountinfo)
  [ "$fstype" = fuse.apsim ] || die "$dir is not an apsim mount${fstype:+ ($fstype)}; start one with apsim mount $dir --daemon"
  [ -d "$dir/bus/ap" ] || die "$dir does not answer (a stale mount? apsim-clean.sh cleans it)"
  if [ -n "$mdevctl_dir" ]; then
    mdevctl_dir=$(realpath -e -- "$mdevctl_dir" 2>/dev/null) && [ -d "$mdevctl_dir" ] || die "--mdevctl-dir: no such directory"
  fi
  opts=()
  [ "$exec_cmd" = 1 ] && opts+=(--exec)
  [ -n "$mdevctl_dir" ] && opts+=(--mdevctl-dir "$mdevctl_dir")
  exec unshare --mount --propagation private -- "$BASH" "$0" --inner "${opts[@]}" "$dir" -- "$@"
fi

# Inside the namespace: every mount is private, so nothing below reaches the host's table.
mount --bind "$dir" /sys || die "cannot bind $dir over /sys"
if [ -n "$mdevctl_dir" ] && [ -d /etc/mdevctl.d ]; then
  mount --bind "$mdevctl_dir" /etc/mdevctl.d || die "cannot bind $mdevctl_dir over /etc/mdevctl.d"
fi
export SYSFS_ROOT=/sys SYSTEMD_DEVICE_VERIFY_SYSFS=0 APSIM_ROOT=$dir
command -v -- "$1" >/dev/null || { echo "apsim-ns.sh: $1: command not found" >&2; exit 127; }

if [ "$exec_cmd" = 1 ]; then
  # apsim run learns the namespace (to end what CMD leaves behind) from fd APSIM_NS_FD, and
  # answers once it holds the namespace open: its inode number cannot then be reused by
  # another namespace, however soon CMD and all it started exit.
  if [ -n "${APSIM_NS_FD:-}" ]; then
    readlink "/proc/$$/ns/mnt" >&"$APSIM_NS_FD"
    read -r _ <&"$APSIM_NS_FD" || true
    exec {APSIM_NS_FD}>&-
    unset APSIM_NS_FD
  fi
  exec "$@"
fi

# Ends every other process of this namespace: TERM, then KILL after 5 s.
end_leftovers () {
  local pids=() still=() p i
  mapfile -t pids < <(pgrep --ns $$ --nslist mnt)
  for p in "${pids[@]}"; do [ "$p" != $$ ] && still+=("$p"); done
  [ ${#still[@]} -gt 0 ] || return 0
  echo "apsim-ns.sh: ending what the command left running: ${still[*]}" >&2
  kill -TERM "${still[@]}" 2>/dev/null || true
  for i in $(seq 50); do
    pids=("${still[@]}"); still=()
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && still+=("$p"); done
    [ ${#still[@]} -gt 0 ] || return 0
    sleep 0.1
  done
  kill -KILL "${still[@]}" 2>/dev/null || true
}

set +e
# A background command of a script ignores SIGINT and reads /dev/null; env and <&0 undo both.
env --default-signal=INT,QUIT "$@" <&0 &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM
trap 'kill -HUP "$child" 2>/dev/null' HUP
trap ':' INT # the terminal sent it to CMD as well
while :; do
  wait "$child"
  rc=$?
  kill -0 "$child" 2>/dev/null || break
done
wait "$child" 2>/dev/null
r=$?
[ "$r" != 127 ] && rc=$r # the wait above was cut short by a signal: this one has CMD's status
trap - TERM HUP INT
end_leftovers
exit "$rc"
