#!/usr/bin/env bash
# Stops slurmd, slurmctld and munged that start.sh started in SLURM_DIR (default /tmp/kiln-slurm),
# by their pid files; nothing else is signalled. Idempotent.
#
#   stop.sh                 stop the daemons
#   stop.sh --release PID   forget user PID (see KILN_SLURM_HOLDER in start.sh); stop the daemons
#                           only when no other recorded user is still alive
#   stop.sh --purge         stop the daemons and delete SLURM_DIR (jobs' state included)
set -u

SLURM_DIR=${SLURM_DIR:-/tmp/kiln-slurm}
PURGE=0
RELEASE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) PURGE=1 ;;
    --release) RELEASE=${2:-}; shift ;;
    *) echo "slurm harness: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

# Running: exists and is not a zombie (an unreaped zombie still answers kill -0).
running() { [ -r "/proc/$1/stat" ] && ! grep -qE '^[0-9]+ \(.*\) [ZX] ' "/proc/$1/stat" 2>/dev/null; }

[ -d "$SLURM_DIR" ] || { echo "slurm harness: nothing in $SLURM_DIR"; exit 0; }
exec 9>"$SLURM_DIR/.lock"
flock 9

if [ -n "$RELEASE" ]; then
  rm -f "$SLURM_DIR/holders/$RELEASE"
  for f in "$SLURM_DIR"/holders/*; do
    [ -e "$f" ] || continue
    p=$(basename "$f")
    if running "$p"; then echo "slurm harness: still used by process $p"; exit 0; fi
    rm -f "$f"
  done
fi

stop_pid() { # PIDFILE NAME
  local f=$1 p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if running "$p" && grep -q "$2" "/proc/$p/cmdline" 2>/dev/null; then
    kill "$p"
    for _ in $(seq 1 50); do running "$p" || break; sleep 0.1; done
    running "$p" && kill -KILL "$p"
  fi
  rm -f "$f"
}
stop_pid "$SLURM_DIR/run/slurmd.pid" slurmd
stop_pid "$SLURM_DIR/run/slurmctld.pid" slurmctld
stop_pid "$SLURM_DIR/munge/munged.pid" munged
# The links start.sh made, when they still point here.
[ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$SLURM_DIR/slurm.conf" ] && rm -f /etc/slurm/slurm.conf
[ "$(readlink /run/munge/munge.socket.2 2>/dev/null)" = "$SLURM_DIR/munge/munge.socket.2" ] && rm -f /run/munge/munge.socket.2
[ "$PURGE" = 1 ] && rm -rf "$SLURM_DIR"
echo "slurm stopped"
exit 0
