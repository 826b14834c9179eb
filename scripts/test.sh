#!/usr/bin/env bash
# The whole test suite, on a fresh machine: the one command the README gives
# and .ci/run calls. Installs what the tests need before running them.
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo-nextest gives per-test output and parallelism; plain cargo test works too.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast
  # nextest does not run doctests.
  cargo test --workspace --doc
else
  cargo test --workspace --all-targets --no-fail-fast
  cargo test --workspace --doc
fi
