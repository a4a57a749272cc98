#!/usr/bin/env bash
# Runs the official Supabase clients (supabase-js from npm, supabase-py from PyPI, pinned in
# package-lock.json and python/requirements.txt) against a live gatehouse, once on SQLite and
# once on Postgres. Part of `make test`.
#
# Each backend gets two servers from the same binary, each with its own database:
# - the plain one (GATEHOUSE_URL, ANON_KEY, SERVICE_ROLE_KEY) has no mailer, so sign-ups
#   are confirmed at once;
# - the mail one (MAIL_GATEHOUSE_URL, MAIL_ANON_KEY, MAIL_SERVICE_ROLE_KEY) writes every
#   message as an .eml file in MAIL_DIR, so sign-ups wait for confirmation and the mailed
#   flows (js/mail.test.mjs, python/test_mail.py) can read their codes and links.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}

cargo build --locked -q -p gatehouse
bin="$target/debug/gatehouse"

(cd compat && npm ci --no-audit --no-fund --loglevel=error)
venv="$target/compat-venv"
if [ ! -x "$venv/bin/pytest" ] || ! cmp -s compat/python/requirements.txt "$venv/requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r compat/python/requirements.txt
  cp compat/python/requirements.txt "$venv/requirements.txt"
fi

admin_url=${GATEHOUSE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
pids=()
dbs=()
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  for db in "${dbs[@]:-}"; do
    [ -n "$db" ] && psql "$admin_url" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true
  done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# new_database BACKEND WORK NAME: sets db_url to a fresh, empty database (a Postgres one
# is dropped at the end). Not in a $(...) subshell: it records what to drop in dbs.
new_database() {
  if [ "$1" = sqlite ]; then
    db_url="sqlite://$2/$3.db"
  else
    local db_name="gatehouse_compat_$$_${RANDOM}_$3"
    psql "$admin_url" -q -c "CREATE DATABASE $db_name"
    dbs+=("$db_name")
    db_url="${admin_url%/*}/$db_name"
  fi
}

# api_key JSON FIELD
api_key() {
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2" <<<"$1"
}

# wait_healthy URL LOG: until /health answers (10 s), else the log's tail and failure.
wait_healthy() {
  for _ in $(seq 1 100); do
    curl -fs "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server at $1 did not start; its log:" >&2
  tail -50 "$2" >&2
  return 1
}

run_backend() {
  local backend=$1 work port mail_port db_url keys
  work=$(mktemp -d)
  dbs=()
  # The plain server: no mailer.
  port=$(free_port)
  export DATABASE_URL GATEHOUSE_ADDR="127.0.0.1:$port" GATEHOUSE_PUBLIC_URL="http://127.0.0.1:$port" \
    GATEHOUSE_REFRESH_REUSE_INTERVAL=1s GATEHOUSE_REAUTH_WINDOW=5s GATEHOUSE_LOG=warn \
    GATEHOUSE_RATE_LIMIT_SIGNUP_IP=1000/1m GATEHOUSE_RATE_LIMIT_SIGNIN_IP=1000/1m \
    GATEHOUSE_RATE_LIMIT_SIGNIN_ACCOUNT_IP=100/1m GATEHOUSE_RATE_LIMIT_REFRESH_IP=1000/1m
  new_database "$backend" "$work" gatehouse
  DATABASE_URL=$db_url
  keys=$("$bin" keys api-keys --json)
  ANON_KEY=$(api_key "$keys" anon_key)
  SERVICE_ROLE_KEY=$(api_key "$keys" service_role_key)
  "$bin" serve >"$work/server.log" 2>&1 &
  local pid=$!
  pids+=("$pid")

  # The mail server: the same settings, plus a mailer writing .eml files, so sign-ups
  # need confirmation. Relaxed mail limits; redirects allowed to the tests' app URL.
  mail_port=$(free_port)
  new_database "$backend" "$work" mail
  local mail_env=(DATABASE_URL="$db_url" GATEHOUSE_ADDR="127.0.0.1:$mail_port"
    GATEHOUSE_PUBLIC_URL="http://127.0.0.1:$mail_port" GATEHOUSE_MAILER="file:$work/mail"
    GATEHOUSE_RATE_LIMIT_MAIL_IP=1000/1m GATEHOUSE_RATE_LIMIT_MAIL_ADDRESS=1000/1m
    GATEHOUSE_RATE_LIMIT_VERIFY_IP=1000/1m GATEHOUSE_REDIRECT_URLS='http://localhost:3000/**')
  keys=$(env "${mail_env[@]}" "$bin" keys api-keys --json)
  MAIL_ANON_KEY=$(api_key "$keys" anon_key)
  MAIL_SERVICE_ROLE_KEY=$(api_key "$keys" service_role_key)
  env "${mail_env[@]}" "$bin" serve >"$work/mail-server.log" 2>&1 &
  local mail_pid=$!
  pids+=("$mail_pid")

  local status=0
  wait_healthy "http://127.0.0.1:$port" "$work/server.log" || status=1
  wait_healthy "http://127.0.0.1:$mail_port" "$work/mail-server.log" || status=1
  export GATEHOUSE_URL="http://127.0.0.1:$port" ANON_KEY SERVICE_ROLE_KEY REUSE_INTERVAL_MS=1000 REAUTH_WINDOW_MS=5000
  export MAIL_GATEHOUSE_URL="http://127.0.0.1:$mail_port" MAIL_DIR="$work/mail" MAIL_ANON_KEY MAIL_SERVICE_ROLE_KEY
  if [ $status -eq 0 ]; then
    echo "== compat on $backend: supabase-js"
    (cd compat && node --test --test-concurrency=1 js/) || status=1
    echo "== compat on $backend: supabase-py"
    "$venv/bin/pytest" -q compat/python || status=1
  fi
  kill "$pid" "$mail_pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  wait "$mail_pid" 2>/dev/null || true
  for db in "${dbs[@]:-}"; do
    [ -n "$db" ] && psql "$admin_url" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  done
  dbs=()
  if [ $status -ne 0 ]; then
    echo "compat failed on $backend; server log (no mailer):" >&2
    tail -50 "$work/server.log" >&2
    echo "compat failed on $backend; mail server log:" >&2
    tail -50 "$work/mail-server.log" >&2
    return 1
  fi
  rm -rf "$work"
}

run_backend sqlite
run_backend postgres
