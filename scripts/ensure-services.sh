#!/usr/bin/env bash
# Makes sure the services the tests use answer: Postgres on 127.0.0.1:5432 (the tests
# create their databases there) and Redis on 127.0.0.1:6379 (shared rate limits). Starts
# this machine's own when they are down. GATEHOUSE_TEST_POSTGRES_URL points the tests at
# another Postgres, and then this one is not checked.
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {
  for _ in $(seq 1 60); do
    if answers "$1"; then return 0; fi
    sleep 0.5
  done
  echo "$2 did not come up on 127.0.0.1:$1" >&2
  return 1
}

if [ -z "${GATEHOUSE_TEST_POSTGRES_URL:-}" ] && ! answers 5432; then
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
  wait_for 5432 Postgres
fi

if ! answers 6379; then
  echo "Redis is not answering on 127.0.0.1:6379; starting it" >&2
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
  else
    echo "no redis-server here: start a Redis on 127.0.0.1:6379" >&2
    exit 1
  fi
  wait_for 6379 Redis
fi
