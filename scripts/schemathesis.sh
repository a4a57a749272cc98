#!/usr/bin/env bash
# Schemathesis (from PyPI) against the live OpenAPI document: generated requests to every
# operation, with an admin's bearer token; fails on any server error or a response that
# does not match its documented schema. Bounded: a few examples per operation.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/target/st-venv"
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
fi
cargo build --locked -q -p gatehouse
bin="$root/target/debug/gatehouse"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export DATABASE_URL="sqlite://$work/gatehouse.db" GATEHOUSE_ADDR="127.0.0.1:$port" \
  GATEHOUSE_PUBLIC_URL="http://127.0.0.1:$port" GATEHOUSE_RATE_LIMITS=false GATEHOUSE_LOG=warn \
  GATEHOUSE_MAILER="file:$work/mail"
base="http://127.0.0.1:$port"
password="quartz-Lantern-47-orbit"
printf '%s\n' "$password" | "$bin" user create --email admin@example.com --role admin --password-stdin >/dev/null
"$bin" serve >"$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fs "$base/health" >/dev/null 2>&1 && break; sleep 0.1; done
csrf=$(curl -s -c "$work/jar" "$base/auth/csrf" | python3 -c 'import json, sys; print(json.load(sys.stdin)["csrfToken"])')
token=$(curl -s -b "$work/jar" "$base/auth/signin" -H "X-CSRF-Token: $csrf" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@example.com\",\"password\":\"$password\"}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])')
# Sign-out and password changes would end the session the token belongs to; the Rust
# suite and compat/ cover them.
timeout 600 "$venv/bin/st" run "$base/openapi.json" \
  --checks not_a_server_error,response_schema_conformance \
  --exclude-path-regex '^/auth/(v1/)?(logout|password)$' \
  --max-examples 10 --workers 2 --seed 1 \
  -H "Authorization: Bearer $token"
if grep -q "panicked" "$work/server.log"; then
  echo "the server panicked during the run:" >&2
  grep -A5 panicked "$work/server.log" >&2
  exit 1
fi
