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

# The example pipelines' test (tests/it/examples.rs) runs their steps as a
# GitHub runner would: `gh --jq` goes to jq, and the terminal test needs
# util-linux `script`; both are on GitHub's runners and in Debian.
if ! command -v jq >/dev/null || ! command -v script >/dev/null; then
  echo "installing jq and util-linux (apt-get)"
  apt-get update -qq && apt-get install -y -qq jq util-linux >/dev/null
fi

# Doctests first: nextest does not run them, and its summary should close the log.
cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast
else
  cargo test --workspace --all-targets --no-fail-fast
fi
