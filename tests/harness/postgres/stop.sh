#!/usr/bin/env bash
# Stops the cluster tests/harness/postgres/start.sh started (pg_ctl stop: a signal to the
# postmaster of that data directory only). Idempotent. --purge also deletes its directory.
# Env: KILN_PG_PORT (55433), KILN_PG_DIR (${TMPDIR:-/tmp}/kiln-pg-$KILN_PG_PORT)
set -u
PORT=${KILN_PG_PORT:-55433}
DIR=${KILN_PG_DIR:-${TMPDIR:-/tmp}/kiln-pg-$PORT}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
if [ -f "$DIR/data/postmaster.pid" ] && [ -n "$BIN" ]; then
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  else
    "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
fi
[ "${1:-}" = "--purge" ] && rm -rf "$DIR" "$DIR.lock"
echo "postgres stopped"
