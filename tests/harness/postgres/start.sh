#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for kiln's tests: initdb into a scratch directory, TCP on
# 127.0.0.1 only, role and database `kiln` (password `kiln`). Idempotent and safe to run from
# several test binaries at once (flock): a second start finds it running and only prints the URL.
# Adapted from the team's checked testbed script. Debian's `postgresql` package provides the
# binaries (/usr/lib/postgresql/*/bin, off PATH); it is installed with apt-get when missing and
# this runs as root. initdb refuses to run as root, so as root the cluster runs as the
# `postgres` user (created if missing); as any other user it runs as that user.
#
# Env: KILN_PG_PORT (55433), KILN_PG_DIR (${TMPDIR:-/tmp}/kiln-pg-$KILN_PG_PORT)
# Prints on stdout: postgres://kiln:kiln@127.0.0.1:$KILN_PG_PORT/kiln
set -euo pipefail
PORT=${KILN_PG_PORT:-55433}
DIR=${KILN_PG_DIR:-${TMPDIR:-/tmp}/kiln-pg-$PORT}
mkdir -p "$DIR"
exec 9>"$DIR.lock"
flock 9

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql) >&2
  else
    echo "PostgreSQL is not installed: install Debian's postgresql package (apt-get install postgresql)" >&2
    exit 1
  fi
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)

if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd -r -m -s /bin/bash postgres
  chown postgres:postgres "$DIR"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi
chmod 0700 "$DIR"

if [ ! -f "$DIR/data/PG_VERSION" ]; then
  rm -rf "$DIR/data"
  as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
  cat >>"$DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
fsync = off                     # throwaway test cluster: speed over durability
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 64MB
CONF
fi
if ! as_pg "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >/dev/null 9>&- \
    || { tail -n 20 "$DIR/server.log" >&2; exit 1; }
fi
psql_pg() { as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -qtAc "$1"; }
psql_pg "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='kiln') THEN CREATE ROLE kiln LOGIN PASSWORD 'kiln'; END IF; END\$\$;" >/dev/null
psql_pg "SELECT 1 FROM pg_database WHERE datname='kiln'" | grep -q 1 || psql_pg "CREATE DATABASE kiln OWNER kiln" >/dev/null
echo "postgres://kiln:kiln@127.0.0.1:$PORT/kiln"
