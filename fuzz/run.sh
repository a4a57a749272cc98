#!/usr/bin/env bash
# Fuzzes what parses untrusted bytes: access tokens, pagination cursors, CSRF tokens,
# every JSON request body, and the checks that turn each admin update body into a change.
# Needs the nightly toolchain and cargo-fuzz (installed here on first use). Each target
# runs FUZZ_SECONDS (default 20: the short run of `make test`); for a long run: FUZZ_SECONDS=3600 fuzz/run.sh token
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-20}
if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(token cursor json_bodies csrf admin_bodies)
for target in "${targets[@]}"; do
  echo "== fuzz $target for ${seconds}s"
  mkdir -p "corpus/$target"
  log=$(mktemp)
  if ! cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=65536 >"$log" 2>&1; then
    tail -60 "$log" >&2
    echo "fuzz target $target failed (a crash is kept under fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E "^#[0-9]+ +DONE" "$log" || tail -3 "$log"
  rm -f "$log"
done
