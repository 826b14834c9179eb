#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md, from one run: apply of 100 new bindings at
# --parallelism 8 versus 1, and refresh of 1,000 bindings in bulk versus per
# resource, against moto and the Kubernetes test API server, each behind the
# fault proxy adding 50 ms to every round trip. Takes about 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import moto, importlib.metadata as m; assert m.version("moto") == "5.2.5"' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/moto-requirements.txt
fi
cargo build --release --tests --quiet
out=$(cargo test --release --test it bench_ -- --ignored --nocapture --test-threads 1 2>&1 | grep '^BENCH ' | sed 's/^BENCH //')
{
  echo "| what | how | wall time | calls | result |"
  echo "|---|---|---:|---|---|"
  echo "$out"
} > target/bench-table.md
cat target/bench-table.md
