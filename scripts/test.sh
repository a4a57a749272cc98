#!/usr/bin/env bash
# The whole test suite: what `make test` and CI run. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-services.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
cargo nextest run --workspace --locked --no-fail-fast
scripts/check-openapi.sh
compat/run.sh
scripts/schemathesis.sh
