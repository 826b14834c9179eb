#!/usr/bin/env bash
# The whole test suite, on a fresh machine: the one command the README gives
# and .ci/run calls. Installs what the tests need before running them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Doctests first: nextest does not run them, and its summary should close the log.
cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast
else
  cargo test --workspace --all-targets --no-fail-fast
fi
