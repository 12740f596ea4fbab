#!/usr/bin/env bash
# Install (Debian package) and start a throwaway PostgreSQL server for the test suite.
# Usage: scripts/postgres.sh start|stop|url.  Data lives in ${POLKU_PG_DATA:-var/pg}; the server listens on
# 127.0.0.1:${POLKU_PG_PORT:-55432} and trusts local connections (tests only, never production).
# The fault tests (tests/faults) run their own server with another port and data folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${POLKU_PG_PORT:-55432}"
DATA="${POLKU_PG_DATA:-$PWD/var/pg}"
URL="postgresql://polku@127.0.0.1:${PORT}/polku"

find_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

install() {
  if [ -z "$(find_bin)" ]; then
    echo "postgres.sh: installing PostgreSQL from Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql >/dev/null
  fi
}

as_pg() {
  # initdb and postgres refuse to run as root: use the postgres system user when we are root
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

start() {
  install
  local bin; bin=$(find_bin)
  mkdir -p "$DATA"
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$DATA"; fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    as_pg "'$bin/initdb' -D '$DATA' -U postgres -A trust --no-sync -E UTF8 >/dev/null"
  fi
  if ! as_pg "'$bin/pg_ctl' -D '$DATA' status" >/dev/null 2>&1; then
    as_pg "'$bin/pg_ctl' -D '$DATA' -l '$DATA/server.log' -w -o \"-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" start" >/dev/null
  fi
  "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname='polku'" | grep -q 1 \
    || "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc "CREATE ROLE polku LOGIN CREATEDB"
  "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='polku'" | grep -q 1 \
    || "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc "CREATE DATABASE polku OWNER polku"
  echo "$URL"
}

stop() {
  local bin; bin=$(find_bin) || exit 0
  [ -f "$DATA/PG_VERSION" ] && as_pg "'$bin/pg_ctl' -D '$DATA' -m fast stop" >/dev/null 2>&1 || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
