#!/usr/bin/env bash
# apsim-ns.sh [--mdevctl-dir D] [--share-net] DIR -- CMD [ARGS...]
#
# Runs CMD in private mount and network namespaces where the live apsim mount DIR is bound over
# /sys, so tools with hard-coded paths (mdevctl 1.2, libvirt, udevadm, ap-check) see the
# simulated host, and udev listeners (libvirt, udevadm monitor --udev, pyudev) hear its events.
# No Node in the loop: start the host first, e.g. with `apsim mount DIR --daemon` or the
# apsim@.service unit, then
#
#   apsim-ns.sh /run/apsim/sys -- mdevctl types
#   apsim-ns.sh /run/apsim/sys -- bash -c 'udevadm info /sys/devices/ap/card04'
#
# - As root, plain namespaces; as another user, a user namespace too, where CMD is root
#   (unprivileged user namespaces must be allowed; the reason is given when they are not).
# - The host's mount table is never touched: the bind exists only inside the namespace and
#   goes away with its last process. DIR must be the mount's root (binding a subdirectory
#   breaks the tree's relative links).
# - The network namespace is new, with loopback up: udev-relay.pl broadcasts the host's
#   uevents there, as udevd would, and nowhere else. --share-net keeps the host's network
#   instead; then udev listeners get no events.
# - --mdevctl-dir D binds D over /etc/mdevctl.d too (mdevctl's persistent definitions and
#   callouts), so `mdevctl define` leaves the host's /etc alone; skipped when the host has no
#   /etc/mdevctl.d (no mdevctl installed).
# - CMD gets SYSFS_ROOT=/sys (s390-tools), SYSTEMD_DEVICE_VERIFY_SYSFS=0 (libudev, and so
#   libvirt and udevadm, accept /sys only if it is sysfs unless this is set) and
#   APSIM_ROOT=DIR (the mount itself, for `apsim lpar`, `apsim guest`, ...).
# - When CMD exits, whatever it left running in the namespace (a libvirtd, a sleep) gets
#   SIGTERM, then SIGKILL after 5 s: nothing outlives the run using the simulated /sys.
# - SIGTERM and SIGHUP are passed on to CMD; SIGINT from the terminal reaches CMD directly.
# - What was ended is said on a terminal, elsewhere only with APSIM_VERBOSE=1.
#
# Exit status: CMD's, 128+N when signal N ended it, 125 when the namespace could not be set
# up. (`apsim run` uses this script with --exec: CMD replaces the script, and apsim run
# itself passes signals on and ends what CMD left behind.)
set -euo pipefail

die () { echo "apsim-ns.sh: $*" >&2; exit 125; }
usage () { sed -n '2,35{s/^# \{0,1\}//;p}' "$0"; exit "${1:-125}"; }
here=$(dirname "$(realpath -e -- "$0")")

inner=0
exec_cmd=0
mdevctl_dir=
share_net=0
feed=
host_netns=
while [ $# -gt 0 ]; do
  case $1 in
    --inner) inner=1; shift ;;
    --exec) exec_cmd=1; shift ;;
    --mdevctl-dir) [ $# -ge 2 ] || die "--mdevctl-dir needs a directory"; mdevctl_dir=$2; shift 2 ;;
    --mdevctl-dir=*) mdevctl_dir=${1#*=}; shift ;;
    --share-net) share_net=1; shift ;;
    --udev-feed) [ $# -ge 2 ] || die "--udev-feed needs a socket"; feed=$2; shift 2 ;;
    --host-netns) [ $# -ge 2 ] || die "--host-netns needs a namespace"; host_netns=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[ $# -ge 3 ] && [ "$2" = -- ] || die "usage: apsim-ns.sh [--mdevctl-dir D] [--share-net] DIR -- CMD [ARGS...]"
dir=$1
shift 2

# Why this machine refuses unprivileged user namespaces, naming the setting.
userns_refused () {
  local f v
  for f in kernel/unprivileged_userns_clone:0 user/max_user_namespaces:0 kernel/apparmor_restrict_unprivileged_userns:1; do
    v=$(cat "/proc/sys/${f%:*}" 2>/dev/null) || continue
    if [ "$v" = "${f#*:}" ]; then
      local name=${f%:*}
      echo "${name//\//.} = $v"
      return
    fi
  done
  echo "no sysctl says why (a seccomp or LSM policy of the container?)"
}

if [ "$inner" = 0 ]; then
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
  ns=(--mount --propagation private)
  if [ "$share_net" = 1 ]; then
    echo "apsim-ns.sh: --share-net: CMD shares the host's network namespace, where simulated devices must not be announced; udev listeners get no events" >&2
    opts+=(--share-net)
  else
    ns+=(--net)
    if [ -z "$feed" ]; then
      if [ "$(id -u)" = 0 ]; then run_dir=/run/apsim; elif [ -n "${XDG_RUNTIME_DIR:-}" ]; then run_dir=$XDG_RUNTIME_DIR/apsim; else run_dir=/tmp/apsim-$(id -u); fi
      hash=$(printf %s "$dir" | sha256sum)
      feed=${APSIM_RUN_DIR:-$run_dir}/udev-${hash:0:16}.sock
    fi
    opts+=(--udev-feed "$feed" --host-netns "$(readlink /proc/self/ns/net)")
  fi
  if [ "$(id -u)" != 0 ]; then
    # CMD is root of a user namespace of its own: it may bind over /sys and write every file
    # the host's user (who owns the mount) may.
    ns=(--user --map-root-user "${ns[@]}")
    unshare "${ns[@]}" true 2>/dev/null || die "unprivileged user namespaces are refused on this machine ($(userns_refused)); run as root, or use apsim run --env-only"
  fi
  exec unshare "${ns[@]}" -- "$BASH" "$0" --inner "${opts[@]}" "$dir" -- "$@"
fi

# Inside the namespace: every mount is private, so nothing below reaches the host's table.
mount --bind "$dir" /sys || die "cannot bind $dir over /sys"
if [ -n "$mdevctl_dir" ] && [ -d /etc/mdevctl.d ]; then
  mount --bind "$mdevctl_dir" /etc/mdevctl.d || die "cannot bind $mdevctl_dir over /etc/mdevctl.d"
fi
# libudev listens to udevd's group only where udevd seems to run (/run/udev/control, or /dev
# a devtmpfs); a container has neither: a private /run/udev says it does.
if [ "$share_net" = 0 ] && [ ! -e /run/udev/control ] && [ "$(findmnt -no FSTYPE /dev 2>/dev/null)" != devtmpfs ] && [ -d /run/udev ]; then
  mount -t tmpfs -o mode=0755 tmpfs /run/udev && : > /run/udev/control || echo "apsim-ns.sh: cannot make /run/udev/control; libudev listeners may stay deaf" >&2
fi
relay=
if [ "$share_net" = 0 ]; then
  relay=$(perl "$here/udev-relay.pl" "$feed" "$host_netns") || echo "apsim-ns.sh: no udev relay; udev listeners get no events" >&2
fi
export SYSFS_ROOT=/sys SYSTEMD_DEVICE_VERIFY_SYSFS=0 APSIM_ROOT=$dir
command -v -- "$1" >/dev/null || { echo "apsim-ns.sh: $1: command not found" >&2; exit 127; }

if [ "$exec_cmd" = 1 ]; then
  # apsim run learns the namespace (to end what CMD leaves behind) from fd APSIM_NS_FD, and
  # answers once it holds the namespace open: its inode number cannot then be reused by
  # another namespace, however soon CMD and all it started exit.
  if [ -n "${APSIM_NS_FD:-}" ]; then
    echo "$(readlink "/proc/$$/ns/mnt")${relay:+ relay=$relay}" >&"$APSIM_NS_FD"
    read -r _ <&"$APSIM_NS_FD" || true
    exec {APSIM_NS_FD}>&-
    unset APSIM_NS_FD
  fi
  exec "$@"
fi

# Ends every other process of this namespace: TERM, then KILL after 5 s.
end_leftovers () {
  local pids=() still=() p i
  [ -n "$relay" ] && kill -TERM "$relay" 2>/dev/null
  mapfile -t pids < <(pgrep --ns $$ --nslist mnt)
  for p in "${pids[@]}"; do [ "$p" != $$ ] && [ "$p" != "$relay" ] && still+=("$p"); done
  [ ${#still[@]} -gt 0 ] || return 0
  # An info line: on a terminal, elsewhere only with APSIM_VERBOSE=1.
  if [ -t 2 ] || [ "${APSIM_VERBOSE:-}" = 1 ]; then echo "apsim-ns.sh: ending what the command left running: ${still[*]}" >&2; fi
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
