#!/usr/bin/env bash
# Validates docs/openapi.json against the OpenAPI specification with
# openapi-spec-validator (installed into target/py-venv on first use). The Rust tests
# check that the committed document matches the routes; this checks that it is valid.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/py-venv
if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'openapi-spec-validator>=0.7,<0.8'
fi
"$venv/bin/openapi-spec-validator" docs/openapi.json
