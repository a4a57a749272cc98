#!/usr/bin/env bash
# Makes sure a Postgres server answers on 127.0.0.1:5432 (the tests create their databases
# there). Starts this machine's cluster when it is down. Skipped when
# GATEHOUSE_TEST_POSTGRES_URL points the tests at another server.
set -euo pipefail

if [ -n "${GATEHOUSE_TEST_POSTGRES_URL:-}" ]; then
  exit 0
fi
answers() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if answers; then
  exit 0
fi
echo "Postgres is not answering on 127.0.0.1:5432; starting it" >&2
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
else
  echo "no pg_ctlcluster here: start a Postgres on 127.0.0.1:5432 (trust auth for user postgres)" >&2
  echo "or set GATEHOUSE_TEST_POSTGRES_URL=postgres://user:pass@host:port/postgres" >&2
  exit 1
fi
for _ in $(seq 1 60); do
  if answers; then exit 0; fi
  sleep 0.5
done
echo "Postgres did not come up on 127.0.0.1:5432" >&2
exit 1
