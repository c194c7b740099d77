#!/usr/bin/env bash
# Stops the sshd hosts start.sh started in SSH_DIR (default /tmp/kiln-sshd): every host, or only
# the hosts named as arguments (`stop.sh host2` takes one host down). For each host it ends the
# listening sshd recorded in hostI/sshd.pid and the per-connection sshd processes it forked, so
# that open (multiplexed) connections to the host drop too, as when a machine goes down.
# Nothing else is signalled. Idempotent. `--purge` also deletes SSH_DIR (only with no host names).
set -u

SSH_DIR=${SSH_DIR:-/tmp/kiln-sshd}
PURGE=0
HOSTS=()
for a in "$@"; do
  case "$a" in
    --purge) PURGE=1 ;;
    *) HOSTS+=("$a") ;;
  esac
done

# PID and all its descendants, from one pass over /proc (`PID (comm) STATE PPID ...`).
tree() {
  cat /proc/[0-9]*/stat 2>/dev/null | sed -n 's/^\([0-9]*\) (.*) [A-Za-z] \([0-9]*\) .*/\1 \2/p' |
    awk -v root="$1" '{ parent[$1] = $2 } END {
      keep[root] = 1; print root
      do { added = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; print p; added = 1 } } while (added)
    }'
}

# Running: exists and is not a zombie (an unreaped zombie still answers kill -0).
running() { [ -r "/proc/$1/stat" ] && ! grep -qE '^[0-9]+ \(.*\) [ZX] ' "/proc/$1/stat" 2>/dev/null; }

stop_host() { # DIR
  local d=$1 pf=$1/sshd.pid p pids
  [ -f "$pf" ] || return 0
  p=$(cat "$pf")
  if kill -0 "$p" 2>/dev/null && grep -q sshd "/proc/$p/cmdline" 2>/dev/null; then
    pids=$(tree "$p")
    kill $pids 2>/dev/null
    for _ in $(seq 1 50); do
      alive=0
      for q in $pids; do running "$q" && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.1
    done
    for q in $pids; do running "$q" && kill -KILL "$q" 2>/dev/null; done
  fi
  rm -f "$pf"
  echo "$(basename "$d") stopped"
}

[ -d "$SSH_DIR" ] || { echo "sshd harness: nothing in $SSH_DIR"; exit 0; }
if [ ${#HOSTS[@]} -gt 0 ]; then
  for h in "${HOSTS[@]}"; do stop_host "$SSH_DIR/$h"; done
else
  for d in "$SSH_DIR"/host*/; do [ -d "$d" ] && stop_host "${d%/}"; done
  [ "$PURGE" = 1 ] && rm -rf "$SSH_DIR"
fi
exit 0
