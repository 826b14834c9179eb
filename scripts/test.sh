#!/usr/bin/env bash
# The whole test suite, on a fresh machine: the one command the README gives
# and .ci/run calls. Installs what the tests need before running them.
set -euo pipefail
cd "$(dirname "$0")/.."

# The IAM emulator the AWS tests start on 127.0.0.1 (pinned; see NOTES in the README).
if ! python3 -c 'import moto, importlib.metadata as m; assert m.version("moto") == "5.2.5"' 2>/dev/null; then
  echo "installing moto[server] (tests/moto-requirements.txt)"
  python3 -m pip install --quiet --disable-pip-version-check -r tests/moto-requirements.txt
fi

# Doctests first: nextest does not run them, and its summary should close the log.
cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast
else
  cargo test --workspace --all-targets --no-fail-fast
fi
