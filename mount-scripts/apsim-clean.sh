#!/usr/bin/env bash
# apsim-clean.sh [--force] DIR
#
# Cleans what a dead apsim daemon left at DIR: a stale mount (every access fails with
# "Transport endpoint is not connected") is detached with `fusermount -uz`, else `umount -l`,
# and the runtime record (${APSIM_RUN_DIR:-/run/apsim}/<name>-<hash>.json) is removed. For CI
# clean-up steps and systemd's ExecStartPre; no Node needed.
#
# - Nothing mounted at DIR: only the record is removed; exit 0.
# - A live apsim mount is left alone (exit 1) unless --force: then its daemon gets SIGTERM
#   (it unmounts itself), and the mount is detached if it is still there after 10 s.
# - A hung one (its daemon alive but not answering within 3 s: SIGSTOPped, stuck) has its FUSE
#   connection aborted (/sys/fs/fuse/connections/N/abort, else `umount -f`), so every client
#   waiting on it gets ECONNABORTED, then it is detached and the daemon gets SIGTERM + SIGCONT.
# - Anything else mounted at DIR (not fuse.apsim) is never touched: exit 1.
# Exit status: 0 when DIR is clean afterwards, 1 otherwise.
set -euo pipefail

die () { echo "apsim-clean.sh: $*" >&2; exit 1; }

force=0
while [ $# -gt 0 ]; do
  case $1 in
    --force) force=1; shift ;;
    -h|--help) sed -n '2,16{s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[ $# = 1 ] || die "usage: apsim-clean.sh [--force] DIR"

# Canonical without touching DIR itself (a stale mount answers ENOTCONN): the parent's real path.
arg=${1%/}
[ -n "$arg" ] || die "DIR must not be /"
case $arg in /*) ;; *) arg=$PWD/$arg ;; esac
parent=$(realpath -m -- "$(dirname -- "$arg")")
dir=${parent%/}/$(basename -- "$arg")

run_dir=${APSIM_RUN_DIR:-/run/apsim}
# daemon/runtime.ts names the record after the mountpoint: basename with [^A-Za-z0-9_.-] as _,
# then the first 12 hex digits of the SHA-256 of the whole path.
base=$(basename -- "$dir" | LC_ALL=C sed 's/[^A-Za-z0-9_.-]/_/g')
record=$run_dir/${base:-root}-$(printf %s "$dir" | sha256sum | cut -c1-12).json

fstype () { awk -v d="$dir" '$5 == d { sub(/.* - /, ""); t = $1 } END { print t }' /proc/self/mountinfo; }
# The FUSE connection number: the minor of the mount's device (mountinfo's third field, 0:N).
connection () { awk -v d="$dir" '$5 == d { split($3, dev, ":"); n = dev[2] } END { print n }' /proc/self/mountinfo; }
mounted () { [ -n "$(fstype)" ]; }

recorded_pid () {
  [ -f "$record" ] && sed -n 's/^ *"pid": *\([0-9][0-9]*\).*/\1/p' "$record" | head -1
}

# An apsim daemon's command line has `mount` and ends in cli.js or apsim; a recycled pid does not.
is_daemon () {
  [ -r "/proc/$1/cmdline" ] && tr '\0' '\n' < "/proc/$1/cmdline" | grep -qxE 'mount' &&
    tr '\0' '\n' < "/proc/$1/cmdline" | grep -qE '(^|/)(cli\.js|apsim)$'
}

detach () {
  fusermount -uz "$dir" 2>/dev/null || fusermount3 -uz "$dir" 2>/dev/null || umount -l "$dir" 2>/dev/null || true
}

t=$(fstype)
if [ -z "$t" ]; then
  rm -f "$record"
  exit 0
fi
[ "$t" = fuse.apsim ] || die "$dir is a $t mount, not apsim's; not touching it"

# readdir, not stat: the kernel answers a stat of the root from its attribute cache for a
# second after the daemon died; a readdir always asks the daemon.
if timeout 3 ls -a -- "$dir" >/dev/null 2>&1; then
  [ "$force" = 1 ] || die "$dir is a live apsim mount; stop it with 'apsim umount $dir' (or use --force)"
  pid=$(recorded_pid || true)
  if [ -n "$pid" ] && is_daemon "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do mounted || break; sleep 0.1; done
  fi
else
  pid=$(recorded_pid || true)
  if [ -n "$pid" ] && is_daemon "$pid"; then
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)
    why="daemon pid $pid does not answer"
    [ "$state" = T ] && why="daemon pid $pid stopped"
    echo "apsim-clean.sh: $dir is a hung apsim mount ($why); aborting its connection" >&2
    conn=/sys/fs/fuse/connections/$(connection)
    if [ -w "$conn/abort" ]; then echo 1 > "$conn/abort"; else umount -f "$dir" 2>/dev/null || true; fi
    detach
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true
  else
    echo "apsim-clean.sh: $dir is a stale apsim mount; detaching it" >&2
  fi
fi
mounted && detach
for _ in $(seq 50); do mounted || break; sleep 0.1; done
mounted && die "$dir is still mounted"
rm -f "$record"
exit 0
