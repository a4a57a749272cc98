#!/usr/bin/env bash
# Runs the official Supabase clients (supabase-js from npm, supabase-py from PyPI, pinned in
# package-lock.json and python/requirements.txt) against a live gatehouse, once on SQLite and
# once on Postgres. Part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cargo build --locked -q -p gatehouse
bin="$root/target/debug/gatehouse"

(cd compat && npm ci --no-audit --no-fund --loglevel=error)
venv="$root/target/compat-venv"
if [ ! -x "$venv/bin/pytest" ] || ! cmp -s compat/python/requirements.txt "$venv/requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r compat/python/requirements.txt
  cp compat/python/requirements.txt "$venv/requirements.txt"
fi

admin_url=${GATEHOUSE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
pids=()
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

run_backend() {
  local backend=$1 work db_url db_name="" port
  work=$(mktemp -d)
  if [ "$backend" = sqlite ]; then
    db_url="sqlite://$work/gatehouse.db"
  else
    db_name="gatehouse_compat_$$_$RANDOM"
    psql "$admin_url" -q -c "CREATE DATABASE $db_name"
    db_url="${admin_url%/*}/$db_name"
  fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export DATABASE_URL="$db_url" GATEHOUSE_ADDR="127.0.0.1:$port" GATEHOUSE_PUBLIC_URL="http://127.0.0.1:$port" \
    GATEHOUSE_REFRESH_REUSE_INTERVAL=1s GATEHOUSE_REAUTH_WINDOW=5s GATEHOUSE_LOG=warn \
    GATEHOUSE_RATE_LIMIT_SIGNUP_IP=1000/1m GATEHOUSE_RATE_LIMIT_SIGNIN_IP=1000/1m \
    GATEHOUSE_RATE_LIMIT_SIGNIN_ACCOUNT_IP=100/1m GATEHOUSE_RATE_LIMIT_REFRESH_IP=1000/1m
  keys=$("$bin" keys api-keys --json)
  ANON_KEY=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["anon_key"])' <<<"$keys")
  SERVICE_ROLE_KEY=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["service_role_key"])' <<<"$keys")
  "$bin" serve >"$work/server.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  export GATEHOUSE_URL="http://127.0.0.1:$port" ANON_KEY SERVICE_ROLE_KEY REUSE_INTERVAL_MS=1000 REAUTH_WINDOW_MS=5000
  echo "== compat on $backend: supabase-js"
  local status=0
  (cd compat && node --test --test-concurrency=1 js/) || status=1
  echo "== compat on $backend: supabase-py"
  "$venv/bin/pytest" -q compat/python || status=1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ -n "$db_name" ]; then psql "$admin_url" -q -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)"; fi
  if [ $status -ne 0 ]; then
    echo "compat failed on $backend; server log:" >&2
    tail -50 "$work/server.log" >&2
    return 1
  fi
  rm -rf "$work"
}

run_backend sqlite
run_backend postgres
